-- Pure helpers of the codetier plugin: LSP positions from buffer positions, JSON-safe settings,
-- result formatting. No client or server state lives here, so test/unit.lua checks it headless.

local M = {}

M.ACTIONS = { "explain", "generate", "review" }

M.TITLES = { explain = "Explain bug", generate = "Generate function", review = "Review selection" }

-- The design's default tiers, offered when picking a tier; `settings.tiers` is merged over them.
M.DEFAULT_TIERS = {
  flash = { model = "deepseek-v4-flash", label = "Flash" },
  coder = { model = "qwen3-coder-30b", label = "Qwen3-Coder-30B" },
  pro = { model = "deepseek-v4-pro", label = "DeepSeek V4 Pro" },
  reasoning = { model = "deepseek-r1", label = "DeepSeek-R1" },
}

M.DEFAULT_ACTIONS = {
  explain = { tier = "flash", escalate = { "reasoning" } },
  generate = { tier = "flash", escalate = { "pro", "reasoning" } },
  review = { tier = "flash", escalate = { "coder", "reasoning" } },
}

--- Index in `line` (a string) of byte `byte` (0-based), counted in `encoding` units.
function M.char_index(line, byte, encoding)
  byte = math.max(0, math.min(byte, #line))
  if encoding == "utf-8" then
    return byte
  end
  -- Count code points up to `byte`; astral ones are two UTF-16 units.
  local units, i = 0, 1
  while i <= byte do
    local b = line:byte(i)
    local len = (b < 0x80 and 1) or (b >= 0xF0 and 4) or (b >= 0xE0 and 3) or (b >= 0xC0 and 2) or 1
    if i + len - 1 > byte then
      break -- `byte` points inside this character: stop at its start
    end
    units = units + ((encoding == "utf-16" and len == 4) and 2 or 1)
    i = i + len
  end
  return units
end

--- Length in bytes of the character starting at byte `col` (1-based) of `line`; 0 past the end.
function M.char_len_at(line, col)
  if col < 1 or col > #line then
    return 0
  end
  local ch = line:sub(col):match("^[%z\1-\127\194-\244][\128-\191]*")
  return ch and #ch or 1
end

--- LSP position of 0-based `row` and 0-based byte `col`, given the buffer's lines.
function M.position(lines, row, col, encoding)
  local line = lines[row + 1]
  if line == nil then
    return { line = row, character = 0 }
  end
  return { line = row, character = M.char_index(line, col, encoding) }
end

--- LSP range of a selection. `mode` is "v" (characters), "V" (lines), "\22" (block, treated as characters)
--- or "n" (cursor only). `start` and `finish` are {row, col} as getpos() returns them: 1-based row and
--- 1-based byte column, the end inclusive. `get_lines(first_row0, last_row0_exclusive)` reads the buffer.
function M.selection_range(mode, start, finish, get_lines, encoding)
  local a, b = start, finish
  if b[1] < a[1] or (b[1] == a[1] and b[2] < a[2]) then
    a, b = b, a
  end
  local first, last = a[1] - 1, b[1] - 1
  local lines = {}
  for i, l in ipairs(get_lines(first, last + 1)) do
    lines[first + i] = l
  end
  if mode == "V" then
    return { start = { line = first, character = 0 }, ["end"] = { line = last + 1, character = 0 } }
  end
  if mode == "n" then
    local pos = M.position(lines, first, a[2] - 1, encoding)
    return { start = pos, ["end"] = pos }
  end
  local last_line = lines[last + 1] or ""
  local end_col = math.min(b[2], #last_line) -- `$` in visual mode reports a huge column
  local end_byte = end_col - 1 + M.char_len_at(last_line, end_col)
  return {
    start = M.position(lines, first, a[2] - 1, encoding),
    ["end"] = M.position(lines, last, math.max(end_byte, 0), encoding),
  }
end

--- Range of whole lines `line1`..`line2` (1-based, inclusive), as a `:'<,'>Command` gives them.
function M.line_range(line1, line2)
  local a, b = math.min(line1, line2), math.max(line1, line2)
  return { start = { line = a - 1, character = 0 }, ["end"] = { line = b, character = 0 } }
end

--- Lua tables become JSON arrays when empty; the server wants objects. Returns a copy that encodes right.
function M.json_object(t)
  if type(t) ~= "table" then
    return t
  end
  if next(t) == nil then
    return vim.empty_dict()
  end
  if (vim.islist or vim.tbl_islist)(t) then
    return vim.tbl_map(function(v)
      return type(v) == "table" and M.json_object(v) or v
    end, t)
  end
  local out = {}
  for k, v in pairs(t) do
    out[k] = M.json_object(v)
  end
  return out
end

--- The argument object of `codetier.explain|generate|review`.
function M.command_argument(uri, range, opts)
  local arg = { uri = uri, range = range }
  if opts and opts.tier and opts.tier ~= "" then
    arg.tier = opts.tier
  end
  if opts and opts.fresh then
    arg.fresh = true
  end
  if opts and opts.diagnostics and #opts.diagnostics > 0 then
    arg.diagnostics = opts.diagnostics
  end
  return arg
end

--- Tier names for a pick: the action's tier, its escalations, then every other known tier.
function M.tier_choices(action, settings)
  settings = settings or {}
  local known = vim.deepcopy(M.DEFAULT_TIERS)
  for name, tier in pairs(settings.tiers or {}) do
    if type(tier) == "table" then
      known[name] = vim.tbl_extend("force", known[name] or {}, tier)
    end
  end
  local configured = (settings.actions or {})[action] or {}
  local defaults = M.DEFAULT_ACTIONS[action]
  local first = configured.tier or defaults.tier
  local escalate = configured.escalate or defaults.escalate
  local order, seen = {}, {}
  local function add(name)
    if not seen[name] then
      seen[name] = true
      table.insert(order, name)
    end
  end
  add(first)
  for _, name in ipairs(escalate) do
    add(name)
  end
  local rest = vim.tbl_keys(known)
  table.sort(rest)
  for _, name in ipairs(rest) do
    add(name)
  end
  local choices = {}
  for _, name in ipairs(order) do
    local t = known[name] or {}
    table.insert(choices, { tier = name, label = t.label or name, model = t.model })
  end
  return choices
end

local function usd(x)
  if x == 0 then
    return "$0.00"
  elseif x < 0.00001 then
    -- A few tokens of a cheap model: not "$0.00000", which reads as free.
    return string.format("$%.6f", x)
  elseif x < 0.001 then
    return string.format("$%.5f", x)
  elseif x < 1 then
    return string.format("$%.4f", x)
  end
  return string.format("$%.2f", x)
end
M.usd = usd

local function latency(ms)
  if ms < 1000 then
    return string.format("%d ms", math.floor(ms + 0.5))
  end
  return string.format("%.1f s", ms / 1000)
end
M.latency = latency

local function num(v)
  return type(v) == "number" and v or nil
end

--- One line about an answer: "Flash · 812 ms · $0.00002" (or "· cached").
function M.summary(result)
  local parts = { result.tier_label or result.tier or "?" }
  if result.cached == true then
    table.insert(parts, "cached")
  elseif num(result.latency_ms) then
    table.insert(parts, latency(result.latency_ms))
  end
  if num(result.cost_usd) and result.cached ~= true then
    table.insert(parts, usd(result.cost_usd))
  end
  return table.concat(parts, " · ")
end

--- First non-empty line of a markdown text without heading or emphasis marks.
function M.headline(text)
  for line in (text or ""):gmatch("[^\n]+") do
    local plain = vim.trim((line:gsub("^#+%s*", ""):gsub("%*%*", "")))
    if plain ~= "" and not plain:match("^```") then
      return plain
    end
  end
  return ""
end

--- The first line of `text`, cut (with "…") so that it and `suffix` fit in `width` display cells:
--- one line that needs no "Press ENTER". The suffix (tier, latency, cost) is kept whole.
function M.fit_line(text, width, suffix)
  suffix = suffix or ""
  local line = ((text or ""):match("^[^\n]*") or ""):gsub("%s+$", "")
  width = math.max(tonumber(width) or 0, 1)
  if vim.fn.strdisplaywidth(line .. suffix) <= width then
    return line .. suffix
  end
  local room = width - vim.fn.strdisplaywidth(suffix) - 1
  if room < 1 then
    -- Not even the suffix fits: cut the whole line.
    return vim.fn.strcharpart(line .. suffix, 0, width - 1) .. "…"
  end
  local chars = vim.fn.strchars(line)
  local cut = line
  while chars > 0 and vim.fn.strdisplaywidth(cut) > room do
    chars = chars - 1
    cut = vim.fn.strcharpart(line, 0, chars)
  end
  return cut .. "…" .. suffix
end

local function count(v)
  return type(v) == "number" and string.format("%d", v) or "0"
end

local function money(v)
  return type(v) == "number" and usd(v) or "n/a"
end

--- The `codetier.usage` result as the lines of a table: one row per tier, then the total.
function M.usage_lines(report)
  local rows = { { "tier", "requests", "cached", "tokens in", "tokens out", "cost", "saved" } }
  local totals = { requests = 0, cache_hits = 0, input_tokens = 0, output_tokens = 0 }
  for _, t in ipairs(type(report.per_tier) == "table" and report.per_tier or {}) do
    table.insert(rows, {
      tostring(t.tier or "?"), count(t.requests), count(t.cache_hits), count(t.input_tokens),
      count(t.output_tokens), money(t.cost_usd), money(t.saved_usd),
    })
    for k in pairs(totals) do
      totals[k] = totals[k] + (type(t[k]) == "number" and t[k] or 0)
    end
  end
  if #rows == 1 then
    return { "codetier usage this session", "", "No requests yet." }
  end
  table.insert(rows, {
    "total", count(totals.requests), count(totals.cache_hits), count(totals.input_tokens),
    count(totals.output_tokens), money(report.total_cost_usd), money(report.total_saved_usd),
  })
  local widths = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do
      widths[i] = math.max(widths[i] or 0, vim.fn.strdisplaywidth(cell))
    end
  end
  local lines = { "codetier usage this session", "" }
  for _, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      local pad = string.rep(" ", widths[i] - vim.fn.strdisplaywidth(cell))
      -- The tier name reads left to right; numbers line up on the right.
      table.insert(cells, i == 1 and (cell .. pad) or (pad .. cell))
    end
    table.insert(lines, (table.concat(cells, "  "):gsub("%s+$", "")))
  end
  table.insert(lines, "")
  table.insert(lines, "Cost counts output tokens only: no input prices are known.")
  return lines
end

--- One line about the session: "usage: 3 requests, 1 cached, 992 tokens in / 20 out, $0.00001".
function M.usage_summary(report)
  local requests, hits, input, output = 0, 0, 0, 0
  for _, t in ipairs(type(report.per_tier) == "table" and report.per_tier or {}) do
    requests = requests + (type(t.requests) == "number" and t.requests or 0)
    hits = hits + (type(t.cache_hits) == "number" and t.cache_hits or 0)
    input = input + (type(t.input_tokens) == "number" and t.input_tokens or 0)
    output = output + (type(t.output_tokens) == "number" and t.output_tokens or 0)
  end
  return string.format(
    "usage: %d request%s, %d cached, %d tokens in / %d out, %s",
    requests, requests == 1 and "" or "s", hits, input, output,
    type(report.total_cost_usd) == "number" and usd(report.total_cost_usd) or "cost unknown"
  )
end

--- Status line text from the plugin's session state: last tier, latency, session cost.
function M.status_text(state)
  if not state.last then
    return ""
  end
  local text = "codetier: " .. M.summary(state.last)
  if state.cost_known then
    text = text .. " · session " .. usd(state.session_cost)
  end
  return text
end

return M

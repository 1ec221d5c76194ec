-- Headless end-to-end test: drives the plugin through its own entry points (visual-mode key maps,
-- ranged :Codetier commands, the Lua API with a tier pick, K) against the real server and the fake
-- provider (test/run.sh) or the stand-in server (test/unit.sh), and checks what a user sees: the
-- cursor stays in the code while explanation floats come and go, one message line per answer that
-- fits the screen, hover on the explained range, the usage table in a float, the edited buffer
-- with its doc comment kept, the diagnostics and the server's copy of the text.
-- Results go to $CODETIER_TEST_RESULTS as JSON; Neovim exits 1 on any failure.

local codetier = require("codetier")
local harness = dofile(vim.env.CODETIER_NVIM_DIR .. "/test/harness.lua").new({ notified = {}, answers = {} })
local results, check, finish = harness.results, harness.check, harness.finish
local WAIT = tonumber(vim.env.CODETIER_TEST_WAIT_MS or "") or 30000

-- Nothing may block headless: tier picks answer with the first escalation. Warnings and errors
-- (vim.notify) are recorded; information lines are read back from :messages, as a user sees them.
vim.ui.select = function(items, _, on_choice)
  results.picked = items[2] and items[2].tier
  on_choice(items[2], 2)
end
vim.notify = function(msg, level)
  table.insert(results.notified, { msg = msg, level = level })
  io.stdout:write("notify: " .. tostring(msg) .. "\n")
end

local function messages()
  local text = vim.api.nvim_exec("messages", true)
  return text == "" and {} or vim.split(text, "\n", { plain = true })
end

-- Every answer, whichever entry point started it.
local answers = {}
codetier.config.on_result = function(action, err, result)
  table.insert(answers, { action = action, err = err, result = result })
  table.insert(results.answers, { action = action, err = err and err.message, result = result })
end

local function await_answer(action, before)
  local ok = vim.wait(WAIT, function()
    return #answers > before
  end, 20)
  local a = answers[before + 1]
  check(action .. ": an answer arrived within " .. WAIT .. " ms", ok, not ok and "timeout" or nil)
  if not a then
    return nil
  end
  check(action .. ": no error", a.err == nil, a.err)
  if a.result and a.result.pending then
    check(action .. ": answered (not pending)", false, a.result)
    return nil
  end
  return a.result
end

-- The floating windows open now, with their text.
local function floats()
  local out = {}
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(win).relative ~= "" then
      local buf = vim.api.nvim_win_get_buf(win)
      -- Markdown emphasis marks are left out: Neovim may keep them in the buffer and conceal them.
      local text = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n"):gsub("%*%*", "")
      table.insert(out, { win = win, text = text })
    end
  end
  return out
end

local function close_floats()
  for _, f in ipairs(floats()) do
    pcall(vim.api.nvim_win_close, f.win, true)
  end
end

local ok_run, err_run = pcall(function()
  vim.cmd("edit " .. vim.fn.fnameescape(vim.env.CODETIER_TEST_FILE))
  local bufnr = vim.api.nvim_get_current_buf()
  local source_win = vim.api.nvim_get_current_win()
  local original = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)

  local client = harness.attached(bufnr, WAIT)
  if not client then
    return
  end
  local commands = (client.server_capabilities.executeCommandProvider or {}).commands or {}
  for _, c in ipairs({ "codetier.explain", "codetier.generate", "codetier.review" }) do
    check("server lists " .. c, vim.tbl_contains(commands, c), commands)
  end
  check("key maps are set on the buffer", vim.fn.maparg(",ae", "x") ~= "", vim.fn.maparg(",ae", "x"))

  -- Explain: a visual line selection over `average`, then the ,ae key map.
  local n, before = #answers, #messages()
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.api.nvim_feedkeys("V6j,ae", "x", false)
  local explain = await_answer("explain", n)
  if explain then
    check("explain: result has text", type(explain.text) == "string" and explain.text ~= "", explain)
    check("explain: result names tier and model", type(explain.tier) == "string" and type(explain.model) == "string", explain)
    local headline = require("codetier.util").headline(explain.text)
    check("explain: the float shows the explanation", vim.wait(5000, function()
      return vim.tbl_count(vim.tbl_filter(function(f) return f.text:find(headline, 1, true) ~= nil end, floats())) > 0
    end, 20), floats())
    local new = vim.list_slice(messages(), before + 1)
    check("explain: exactly one message line (the server's copy of the headline is not echoed too)", #new == 1, new)
    check("explain: the message fits the command line, so no Press ENTER",
      new[1] ~= nil and vim.fn.strdisplaywidth(new[1]) <= vim.v.echospace, { line = new[1], echospace = vim.v.echospace })
    check("explain: the message names the tier", new[1] ~= nil and new[1]:find("[", 1, true) ~= nil, new)
  end
  check("explain: the cursor stays in the code", vim.api.nvim_get_current_win() == source_win, vim.api.nvim_get_current_win())

  -- A second explain while the first float is open must not move the cursor into it (the issue's
  -- `Esc`, `:1,3CodetierExplain!`), and ranged commands keep working afterwards.
  n = #answers
  vim.cmd("2,8CodetierExplain!")
  await_answer("explain again (float open)", n)
  check("explain again: the cursor is still in the code window", vim.api.nvim_get_current_win() == source_win,
    { current = vim.api.nvim_get_current_win(), source = source_win })
  check("explain again: the current buffer is still the file", vim.api.nvim_get_current_buf() == bufnr, vim.api.nvim_get_current_buf())
  check("explain again: one explanation float, not two", #floats() == 1, floats())
  n = #answers
  local ok_range, err_range = pcall(vim.cmd, "1,3CodetierExplain!")
  check(":1,3CodetierExplain! runs (no E16 from a float's buffer)", ok_range, err_range)
  await_answer(":1,3CodetierExplain!", n)
  check("explain: no warning that the buffer is not attached", #vim.tbl_filter(function(m)
    return tostring(m.msg):find("not attached", 1, true) ~= nil
  end, results.notified) == 0, results.notified)

  -- Hover on the explained range shows the explanation: Neovim 0.10+ maps K itself; before that
  -- the plugin does (K would run man).
  close_floats()
  if vim.fn.has("nvim-0.10") == 0 then
    local k = vim.fn.maparg("K", "n", false, true)
    check("K is mapped to LSP hover on this buffer (Neovim < 0.10)", k.buffer == 1 and (k.desc or ""):find("hover", 1, true) ~= nil, k)
  end
  vim.api.nvim_win_set_cursor(0, { 4, 4 })
  vim.api.nvim_feedkeys("K", "x", false)
  local hovered = vim.wait(5000, function()
    for _, f in ipairs(floats()) do
      if answers[#answers] and f.text:find(require("codetier.util").headline(answers[#answers].result.text), 1, true) then
        return true
      end
    end
    return false
  end, 20)
  check("K over the explained range shows the explanation", hovered, floats())
  check("K: the cursor stays in the code", vim.api.nvim_get_current_win() == source_win)
  close_floats()

  -- Review: the :2,8CodetierReview command.
  n = #answers
  vim.cmd("2,8CodetierReview")
  local review = await_answer("review", n)
  if review then
    local from_codetier = {}
    local got = vim.wait(5000, function()
      from_codetier = vim.tbl_filter(function(d)
        return d.source == "codetier"
      end, vim.diagnostic.get(bufnr))
      return #from_codetier > 0
    end, 20)
    local findings = type(review.findings) == "table" and #review.findings or 0
    check("review: codetier diagnostics published or findings returned", got or findings > 0,
      { diagnostics = #from_codetier, findings = findings })
  end

  -- Generate over the doc comment and the stub of `largest`, tier picked through vim.ui.select,
  -- through the Lua API: the comment stays, the stub becomes the model's code.
  local doc = 10 -- 1-based line of `/// The largest of `values`.`
  n = #answers
  vim.api.nvim_win_set_cursor(0, { doc + 2, 4 })
  codetier.generate({ pick_tier = true, line1 = doc, line2 = doc + 3 })
  local generate = await_answer("generate", n)
  check("generate: vim.ui.select was asked for a tier", results.picked ~= nil, results.picked)
  if generate then
    check("generate: answered by the picked tier", generate.tier == results.picked, { tier = generate.tier, picked = results.picked })
    local changed = vim.wait(5000, function()
      return not vim.deep_equal(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), original)
    end, 20)
    local now = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
    check("generate: the buffer changed", changed, generate)
    check("generate: the model's code is in the buffer",
      table.concat(now, "\n"):find("*values.iter().max().unwrap()", 1, true) ~= nil, now)
    check("generate: the stub is gone", table.concat(now, "\n"):find("todo!()", 1, true) == nil, now)
    check("generate: the doc comment above the stub is kept", now[doc] == original[doc], { now = now[doc], was = original[doc] })
    check("generate: lines before the target function are untouched",
      vim.deep_equal(vim.list_slice(now, 1, doc), vim.list_slice(original, 1, doc)),
      { now = vim.list_slice(now, 1, doc) })
    results.buffer_after_generate = now
  end

  -- The server's copy of the text equals the buffer after all of that.
  local view
  codetier.server_text(bufnr, function(err, result)
    view = { err = err, result = result }
  end)
  vim.wait(5000, function()
    return view ~= nil
  end, 20)
  local text = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n") .. "\n"
  check("codetier/viewFileText equals the buffer", view and view.result and view.result.text == text,
    view and (view.err or (view.result and view.result.text)) or "no reply")

  -- Usage: the table in a float, one summary line, the cursor where it was.
  before = #messages()
  vim.cmd("CodetierUsage")
  local table_float
  vim.wait(5000, function()
    for _, f in ipairs(floats()) do
      if f.text:find("total", 1, true) then
        table_float = f
        return true
      end
    end
    return false
  end, 20)
  check(":CodetierUsage shows the table in a float", table_float ~= nil and table_float.text:find("tier", 1, true) ~= nil, floats())
  results.usage_float = table_float and table_float.text
  local new = vim.list_slice(messages(), before + 1)
  check(":CodetierUsage: one summary line that fits", #new == 1 and vim.fn.strdisplaywidth(new[1]) <= vim.v.echospace, new)
  check(":CodetierUsage: the cursor stays in the code", vim.api.nvim_get_current_win() == source_win)
  local usage
  codetier.usage({
    silent = true,
    callback = function(err, result)
      usage = { err = err, result = result }
    end,
  })
  vim.wait(5000, function()
    return usage ~= nil
  end, 20)
  check("usage: per-tier report", usage and usage.err == nil and type(usage.result) == "table", usage)

  -- Neovim 0.12: inline completion is on exactly when the server offers it.
  if vim.lsp.inline_completion then
    local offers = client:supports_method("textDocument/inlineCompletion", bufnr)
    check("inline completion enabled iff the server offers it",
      vim.lsp.inline_completion.is_enabled({ bufnr = bufnr }) == offers, { offers = offers })
    results.inline_completion_offered = offers
  end

  results.status = codetier.status()
  check("status line text names the last tier", results.status ~= "", results.status)
end)

if not ok_run then
  check("test script ran without a Lua error", false, err_run)
end
finish()

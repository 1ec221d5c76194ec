-- codetier for Neovim: starts the codetier language server per buffer and runs its AI actions
-- (explain bug, generate function, review selection) on the selection or the cursor.
-- Works on Neovim 0.7 (vim.lsp.start_client + buf_attach_client) and later (vim.lsp.start).

local util = require("codetier.util")

local M = {}

local defaults = {
  -- The server command; point it at a debug build with { "/path/to/codetier/target/debug/codetier", "--stdio" }.
  cmd = { "codetier", "--stdio" },
  -- Filetypes codetier attaches to; "*" attaches to every file buffer with a filetype.
  filetypes = {
    "c", "cpp", "cs", "go", "haskell", "java", "javascript", "javascriptreact", "kotlin", "lua",
    "ocaml", "php", "python", "ruby", "rust", "scala", "sh", "swift", "typescript", "typescriptreact", "zig",
  },
  -- Files or directories marking a project root; the file's directory when none is found.
  root_markers = { ".codetier.toml", ".git" },
  -- true: the default maps below; false: none; a table: your own lhs per action (false skips one).
  keys = true,
  -- Server configuration in the server's own (snake_case) schema, e.g. { tiers = { flash = { model = "..." } } }.
  -- Sent as initializationOptions and as workspace/didChangeConfiguration { codetier = settings }.
  settings = {},
  -- Extra environment for the server process, e.g. { CODETIER_LOG = "debug" }.
  cmd_env = nil,
  -- didChange debounce: the server must see an edit before the command that follows it.
  flags = { debounce_text_changes = 50 },
  -- Show explanations in a floating window (else only the headline is echoed).
  float = true,
  on_attach = nil,
  -- Called after every action with (action, err, result), e.g. to refresh a status line.
  on_result = nil,
}

local default_keys = {
  explain = "<leader>ae",
  generate = "<leader>ag",
  review = "<leader>ar",
  explain_tier = "<leader>aE",
  generate_tier = "<leader>aG",
  review_tier = "<leader>aR",
  usage = "<leader>au",
}

M.config = vim.deepcopy(defaults)

-- Session state for the status line: last answer and the cost of answers seen.
M.state = { last = nil, session_cost = 0, cost_known = false, busy = 0 }

local has_011 = vim.fn.has("nvim-0.11") == 1

local function notify(msg, level)
  vim.notify("codetier: " .. msg, level or vim.log.levels.INFO)
end

local function request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

--- The codetier client attached to `bufnr`, if any.
function M.client(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ bufnr = bufnr, name = "codetier" })[1]
  end
  for _, client in pairs(vim.lsp.buf_get_clients(bufnr)) do
    if client.name == "codetier" then
      return client
    end
  end
  return nil
end

local function find_root(path)
  local dir = vim.fn.fnamemodify(path, ":p:h")
  local current = dir
  while current and current ~= "" do
    for _, marker in ipairs(M.config.root_markers) do
      if (vim.uv or vim.loop).fs_stat(current .. "/" .. marker) then
        return current
      end
    end
    local parent = vim.fn.fnamemodify(current, ":h")
    if parent == current then
      break
    end
    current = parent
  end
  return dir
end

local warned_missing = false

local function client_config(root)
  local settings = util.json_object(M.config.settings or {})
  return {
    name = "codetier",
    cmd = M.config.cmd,
    cmd_env = M.config.cmd_env,
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    init_options = settings,
    -- Neovim sends these as workspace/didChangeConfiguration once initialized and answers
    -- workspace/configuration from them.
    settings = { codetier = settings },
    flags = M.config.flags,
    on_attach = M.config.on_attach,
  }
end

--- Starts (or reuses) the codetier client for `bufnr` and attaches it. Returns the client id.
function M.attach(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" then
    return nil
  end
  if vim.fn.executable(M.config.cmd[1]) ~= 1 then
    if not warned_missing then
      warned_missing = true
      notify(
        string.format(
          "`%s` not found. Install it with `cargo install --path server --locked` from a codetier checkout, "
            .. "or pass cmd = { '/path/to/codetier', '--stdio' } to setup(). See :help codetier.",
          M.config.cmd[1]
        ),
        vim.log.levels.ERROR
      )
    end
    return nil
  end
  local root = find_root(name)
  local config = client_config(root)
  if vim.lsp.start then
    return vim.lsp.start(config, { bufnr = bufnr })
  end
  -- Neovim 0.7: one client per root, shared by the buffers under it.
  for _, client in pairs(vim.lsp.get_active_clients()) do
    if client.name == "codetier" and client.config.root_dir == root and not client.is_stopped() then
      vim.lsp.buf_attach_client(bufnr, client.id)
      return client.id
    end
  end
  local id = vim.lsp.start_client(config)
  if id then
    vim.lsp.buf_attach_client(bufnr, id)
  end
  return id
end

local function filetype_enabled(ft)
  local fts = M.config.filetypes
  if fts == "*" then
    return ft ~= ""
  end
  return vim.tbl_contains(fts, ft)
end

--- The range the action works on: `opts.range` when given, else the visual selection when called
--- from visual mode, else `opts.line1`/`opts.line2` of a ranged command, else the cursor.
local function current_range(bufnr, client, opts)
  if opts.range then
    return opts.range
  end
  local encoding = client.offset_encoding or "utf-16"
  local get_lines = function(a, b)
    return vim.api.nvim_buf_get_lines(bufnr, a, b, false)
  end
  local mode = vim.fn.mode()
  if mode == "v" or mode == "V" or mode == "\22" then
    local v, dot = vim.fn.getpos("v"), vim.fn.getpos(".")
    local range = util.selection_range(mode, { v[2], v[3] }, { dot[2], dot[3] }, get_lines, encoding)
    vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<Esc>", true, false, true), "nx", false)
    return range
  end
  if opts.line1 and opts.line2 then
    return util.line_range(opts.line1, opts.line2)
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  return util.selection_range("n", { cursor[1], cursor[2] + 1 }, { cursor[1], cursor[2] + 1 }, get_lines, encoding)
end

-- Messages of other servers' diagnostics on the range, kept as context for the model.
local function diagnostics_on(bufnr, range)
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    local source = d.source or ""
    if source ~= "codetier" and d.lnum <= range["end"].line and (d.end_lnum or d.lnum) >= range.start.line then
      table.insert(out, source ~= "" and (source .. ": " .. d.message) or d.message)
    end
  end
  return out
end

local function show_explanation(text)
  local lines = vim.split(text, "\n", { plain = true })
  vim.lsp.util.open_floating_preview(lines, "markdown", { border = "rounded", focus_id = "codetier", max_width = 100 })
end

local function on_result(action, err, result, opts)
  M.state.busy = math.max(0, M.state.busy - 1)
  if err then
    notify(string.format("%s failed: %s", util.TITLES[action], err.message or vim.inspect(err)), vim.log.levels.ERROR)
  elseif type(result) ~= "table" then
    notify(util.TITLES[action] .. ": the server returned no answer", vim.log.levels.WARN)
  elseif result.pending then
    notify(result.message or "still working; the answer will appear when it is ready")
  else
    M.state.last = result
    if type(result.cost_usd) == "number" and result.cached ~= true then
      M.state.session_cost = M.state.session_cost + result.cost_usd
      M.state.cost_known = true
    end
    local summary = util.summary(result)
    if action == "explain" then
      if M.config.float and not opts.silent then
        show_explanation(result.text or "")
      end
      notify(util.headline(result.text) .. "  [" .. summary .. "]")
    elseif action == "review" then
      local n = type(result.findings) == "table" and #result.findings or 0
      notify(string.format("review: %d finding%s  [%s]", n, n == 1 and "" or "s", summary))
    elseif action == "generate" and result.applied ~= false then
      notify("generated  [" .. summary .. "]")
    end
  end
  if M.config.on_result then
    M.config.on_result(action, err, result)
  end
  if opts.callback then
    opts.callback(err, result)
  end
end

--- Runs `action` ("explain" | "generate" | "review") on the selection or cursor of the current buffer.
--- opts: bufnr, range (LSP range), tier, fresh, pick_tier (ask with vim.ui.select), line1/line2,
--- silent (no floating window), callback(err, result).
function M.run(action, opts)
  opts = opts or {}
  local bufnr = (opts.bufnr == nil or opts.bufnr == 0) and vim.api.nvim_get_current_buf() or opts.bufnr
  local client = M.client(bufnr)
  if not client then
    notify(
      string.format("not attached to this buffer (filetype `%s`); see :help codetier", vim.bo[bufnr].filetype),
      vim.log.levels.WARN
    )
    if opts.callback then
      opts.callback({ message = "codetier is not attached" }, nil)
    end
    return
  end
  local range = current_range(bufnr, client, opts)
  local function send(tier)
    local arg = util.command_argument(vim.uri_from_bufnr(bufnr), range, {
      tier = tier,
      fresh = opts.fresh,
      diagnostics = diagnostics_on(bufnr, range),
    })
    M.state.busy = M.state.busy + 1
    request(client, "workspace/executeCommand", { command = "codetier." .. action, arguments = { arg } }, function(err, result)
      on_result(action, err, result, opts)
    end, bufnr)
  end
  if opts.pick_tier then
    local choices = util.tier_choices(action, M.config.settings)
    vim.ui.select(choices, {
      prompt = util.TITLES[action] .. " with which tier?",
      format_item = function(c)
        return c.model and string.format("%s (%s, %s)", c.label, c.tier, c.model) or c.label
      end,
    }, function(choice)
      if choice then
        send(choice.tier)
      elseif opts.callback then
        opts.callback({ message = "no tier chosen" }, nil)
      end
    end)
  else
    send(opts.tier)
  end
end

function M.explain(opts)
  M.run("explain", opts)
end

function M.generate(opts)
  M.run("generate", opts)
end

function M.review(opts)
  M.run("review", opts)
end

--- Asks the server for this session's tokens and cost per tier (it also shows them as a message).
function M.usage(opts)
  opts = opts or {}
  local bufnr = vim.api.nvim_get_current_buf()
  local client = M.client(bufnr)
  if not client then
    notify("not attached to this buffer", vim.log.levels.WARN)
    return
  end
  request(client, "workspace/executeCommand", { command = "codetier.usage", arguments = {} }, function(err, result)
    if err then
      notify("usage failed: " .. (err.message or ""), vim.log.levels.ERROR)
    elseif type(result) == "table" and type(result.total_cost_usd) == "number" then
      M.state.session_cost = result.total_cost_usd
      M.state.cost_known = true
    end
    if opts.callback then
      opts.callback(err, result)
    end
  end, bufnr)
end

--- The server's own copy of the buffer (`codetier/viewFileText`), to debug document sync.
function M.server_text(bufnr, callback)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local client = M.client(bufnr)
  if not client then
    callback({ message = "codetier is not attached" }, nil)
    return
  end
  request(client, "codetier/viewFileText", { uri = vim.uri_from_bufnr(bufnr) }, function(err, result)
    callback(err, result)
  end, bufnr)
end

--- Text for a status line: "codetier: Flash · 812 ms · $0.00002 · session $0.0001".
function M.status()
  return util.status_text(M.state)
end

local function map_keys(bufnr)
  if M.config.keys == false then
    return
  end
  local keys = M.config.keys == true and default_keys or vim.tbl_extend("force", default_keys, M.config.keys)
  local function map(lhs, fn, desc, modes)
    if lhs then
      vim.keymap.set(modes or { "n", "x" }, lhs, fn, { buffer = bufnr, silent = true, desc = "codetier: " .. desc })
    end
  end
  for _, action in ipairs(util.ACTIONS) do
    map(keys[action], function()
      M.run(action)
    end, util.TITLES[action])
    map(keys[action .. "_tier"], function()
      M.run(action, { pick_tier = true })
    end, util.TITLES[action] .. " with tier…")
  end
  map(keys.usage, M.usage, "usage and cost", { "n" })
end

local function tier_complete()
  return vim.tbl_map(function(c)
    return c.tier
  end, util.tier_choices("explain", M.config.settings))
end

--- Defines :CodetierExplain, :CodetierGenerate, :CodetierReview (optional tier argument, ranges
--- allowed), :CodetierUsage and :CodetierServerText. plugin/codetier.lua calls it at start-up.
function M.create_commands()
  for _, action in ipairs(util.ACTIONS) do
    local name = "Codetier" .. action:sub(1, 1):upper() .. action:sub(2)
    vim.api.nvim_create_user_command(name, function(c)
      local opts = { tier = c.args ~= "" and c.args or nil, fresh = c.bang }
      if c.range > 0 then
        opts.line1, opts.line2 = c.line1, c.line2
      end
      M.run(action, opts)
    end, {
      nargs = "?",
      range = true,
      bang = true,
      complete = tier_complete,
      desc = "codetier: " .. util.TITLES[action] .. " ([tier]; ! skips the cache)",
    })
  end
  vim.api.nvim_create_user_command("CodetierUsage", function()
    M.usage()
  end, { desc = "codetier: tokens and cost per tier this session" })
  vim.api.nvim_create_user_command("CodetierServerText", function()
    M.server_text(0, function(err, result)
      if err then
        notify("viewFileText failed: " .. (err.message or ""), vim.log.levels.ERROR)
        return
      end
      local same = result and result.text == table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n") .. "\n"
      notify(string.format("server has version %s; %s", tostring(result and result.version), same and "same text as the buffer" or "text DIFFERS from the buffer"))
    end)
  end, { desc = "codetier: compare the server's copy of this buffer with the buffer" })
end

--- setup({ cmd, filetypes, keys, settings, cmd_env, flags, root_markers, float, on_attach })
function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts or {})
  -- Lists replace the defaults rather than merging into them index by index.
  for _, key in ipairs({ "cmd", "filetypes", "root_markers" }) do
    if opts and opts[key] ~= nil then
      M.config[key] = opts[key]
    end
  end
  if type(M.config.cmd) == "string" then
    M.config.cmd = { M.config.cmd, "--stdio" }
  end
  M.create_commands()
  local group = vim.api.nvim_create_augroup("codetier", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    callback = function(args)
      if filetype_enabled(vim.bo[args.buf].filetype) then
        local id = M.attach(args.buf)
        if id then
          map_keys(args.buf)
        end
      end
    end,
  })
  -- Buffers already open when setup() runs.
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and filetype_enabled(vim.bo[bufnr].filetype) then
      if M.attach(bufnr) then
        map_keys(bufnr)
      end
    end
  end
end

return M

-- codetier for Neovim: starts the codetier language server per buffer and runs its AI actions
-- (explain bug, generate function, review selection) on the selection or the cursor.
-- Neovim 0.7 uses vim.lsp.start_client + buf_attach_client, 0.8-0.10 vim.lsp.start, 0.11 and later
-- vim.lsp.config + vim.lsp.enable (lsp/codetier.lua holds the same configuration for users who
-- call vim.lsp.enable("codetier") themselves).

local util = require("codetier.util")

local M = {}

local defaults = {
  -- The server command; point it at a debug build with { "/path/to/codetier/target/debug/codetier", "--stdio" }.
  cmd = { "codetier", "--stdio" },
  -- Filetypes codetier attaches to; "*" attaches to every file buffer with a filetype.
  filetypes = {
    "bash", "c", "cpp", "cs", "go", "haskell", "java", "javascript", "javascriptreact", "kotlin", "lua",
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
  -- Messages: false echoes each one on one line that fits the screen (no "Press ENTER"; errors
  -- and warnings go through vim.notify in full); true sends all of them to vim.notify, for a
  -- notification plugin that shows long text well.
  notify = false,
  -- Neovim 0.12+: turn on vim.lsp.inline_completion for codetier's buffers when the server offers
  -- textDocument/inlineCompletion; keys.accept_inline (<M-l>) accepts the ghost text.
  inline_completion = true,
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
  -- Insert mode, Neovim 0.12+: accept codetier's inline suggestion (the key itself when there is none).
  accept_inline = "<M-l>",
  -- Hover (the full explanation of an explained range). Mapped only where Neovim does not map K to
  -- LSP hover itself (before 0.10), and only when K has no mapping of yours.
  hover = "K",
}

M.config = vim.deepcopy(defaults)

-- Session state for the status line: last answer and the cost of answers seen. `busy` counts the
-- plugin's own requests in flight; `float` is the last explanation or usage window.
M.state = { last = nil, session_cost = 0, cost_known = false, busy = 0, float = nil }

local has_010 = vim.fn.has("nvim-0.10") == 1
local has_011 = vim.fn.has("nvim-0.11") == 1
-- LspAttach exists from 0.8; 0.7 runs the attach-time set-up from on_attach.
local has_lsp_attach = vim.fn.exists("##LspAttach") == 1
local INFO, WARN = vim.log.levels.INFO, vim.log.levels.WARN

--- Shows `text` to the user. Information is echoed on one line that fits the command line, so it
--- never stops Neovim at "Press ENTER"; warnings and errors go to vim.notify in full.
function M.message(text, level)
  level = level or INFO
  if M.config.notify or level >= WARN then
    vim.notify(text, level)
    return
  end
  local line = util.fit_line(text, vim.v.echospace)
  vim.api.nvim_echo({ { line } }, true, {})
end

local function notify(msg, level)
  M.message("codetier: " .. msg, level)
end

-- Information messages the server sends about an answer the plugin reports itself: each entry is
-- a message text (or, ending in "*", a prefix) that is dropped once when it comes.
-- `swallowed` holds those that came while the request still ran, so none is expected twice.
local echoes, swallowed = {}, {}

local function matches(text, message)
  local prefix = text:sub(-1) == "*" and text:sub(1, -2)
  return message == text or (prefix and message:sub(1, #prefix) == prefix) or false
end

local function push(list, value)
  table.insert(list, value)
  if #list > 8 then
    table.remove(list, 1)
  end
end

local function expect_echo(text)
  for i, message in ipairs(swallowed) do
    if matches(text, message) then
      table.remove(swallowed, i)
      return
    end
  end
  push(echoes, text)
end

local function is_echo(message)
  for i, text in ipairs(echoes) do
    if matches(text, message) then
      table.remove(echoes, i)
      return true
    end
  end
  return false
end

--- `window/showMessage` from codetier. The plugin reports its own answers in one line (headline,
--- tier, latency, cost), so the server's information message about the same answer would be a
--- second line that forces "Press ENTER": it is dropped, whether it comes before the reply (while
--- the request runs) or after it. Answers that arrive later (a command that replied "pending")
--- and anything the plugin did not ask for are shown; warnings and errors always are.
function M.on_show_message(_, result)
  if type(result) ~= "table" or type(result.message) ~= "string" then
    return
  end
  local t = result.type or 4
  if t == 1 or t == 2 then
    vim.notify(result.message, t == 1 and vim.log.levels.ERROR or WARN)
  elseif M.state.busy > 0 then
    -- Ours: the plugin says it when the reply comes.
    push(swallowed, result.message)
  elseif not is_echo(result.message) then
    M.message(result.message, INFO)
  end
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

-- False (and says so, once) when the server binary cannot be run.
local function server_found(cmd)
  if vim.fn.executable(cmd[1]) == 1 then
    return true
  end
  if not warned_missing then
    warned_missing = true
    notify(
      string.format(
        "`%s` not found. Install it with `cargo install --path server --locked` from a codetier checkout, "
          .. "or pass cmd = { '/path/to/codetier', '--stdio' } to setup(). See :help codetier.",
        cmd[1]
      ),
      vim.log.levels.ERROR
    )
  end
  return false
end

-- What every way of starting the client shares.
local function common_config()
  local settings = util.json_object(M.config.settings or {})
  return {
    name = "codetier",
    cmd = M.config.cmd,
    cmd_env = M.config.cmd_env,
    init_options = settings,
    -- Neovim sends these as workspace/didChangeConfiguration once initialized and answers
    -- workspace/configuration from them.
    settings = { codetier = settings },
    flags = M.config.flags,
    handlers = { ["window/showMessage"] = M.on_show_message },
    on_attach = M.config.on_attach,
  }
end

local function client_config(root)
  local config = common_config()
  config.root_dir = root
  config.workspace_folders = { { uri = vim.uri_from_fname(root), name = root } }
  if not has_lsp_attach then
    local user = config.on_attach
    config.on_attach = function(client, bufnr)
      M.on_client_attach(client, bufnr)
      if user then
        user(client, bufnr)
      end
    end
  end
  return config
end

--- The configuration for vim.lsp.config("codetier", ...) (Neovim 0.11+): lsp/codetier.lua returns
--- it, and setup() passes it with the options given. The root is the nearest directory with one of
--- `root_markers`, else the file's own directory, as on older versions.
function M.lsp_config()
  local config = common_config()
  config.filetypes = M.config.filetypes ~= "*" and M.config.filetypes or nil
  config.root_dir = function(bufnr, on_dir)
    local name = vim.api.nvim_buf_get_name(bufnr)
    -- The command in force: vim.lsp.config("codetier", { cmd = ... }) may have replaced ours. A
    -- missing binary is said once here; Neovim itself would only write it to the LSP log.
    local cmd = (vim.lsp.config.codetier or {}).cmd or M.config.cmd
    if name ~= "" and (type(cmd) ~= "table" or server_found(cmd)) then
      on_dir(find_root(name))
    end
  end
  return config
end

--- Starts (or reuses) the codetier client for `bufnr` and attaches it (Neovim before 0.11; on
--- 0.11+ vim.lsp.enable does it). Returns the client id.
function M.attach(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" or not server_found(M.config.cmd) then
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

-- A float beside the cursor that never takes the cursor: with the default focus, opening it again
-- while the last one is open would move the cursor into it (and every command after that would
-- run on the float's buffer).
local function show_float(lines, syntax, focus_id)
  local _, win = vim.lsp.util.open_floating_preview(lines, syntax, {
    border = "rounded",
    focus_id = focus_id,
    focus = false,
    max_width = 100,
  })
  M.state.float = win
  return win
end

local function show_explanation(text)
  show_float(vim.split(text, "\n", { plain = true }), "markdown", "codetier")
end

local function on_result(action, err, result, opts)
  M.state.busy = math.max(0, M.state.busy - 1)
  if err then
    notify(string.format("%s failed: %s", util.TITLES[action], err.message or vim.inspect(err)), vim.log.levels.ERROR)
  elseif type(result) ~= "table" then
    notify(util.TITLES[action] .. ": the server returned no answer", WARN)
  elseif result.pending then
    notify(result.message or "still working; the answer will appear when it is ready")
  else
    M.state.last = result
    if type(result.cost_usd) == "number" and result.cached ~= true then
      M.state.session_cost = M.state.session_cost + result.cost_usd
      M.state.cost_known = true
    end
    local summary = util.summary(result)
    -- What the server may still say about this answer, after its reply.
    if action == "explain" and type(result.headline) == "string" then
      expect_echo("codetier: " .. result.headline)
    elseif action == "review" then
      expect_echo("codetier review*")
    end
    if action == "explain" then
      if M.config.float and not opts.silent then
        show_explanation(result.text or "")
      end
      -- One line: the headline, cut to fit, then what it cost (the float has the whole text).
      M.message(util.fit_line("codetier: " .. util.headline(result.text), vim.v.echospace, "  [" .. summary .. "]"))
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

--- Asks the server for this session's tokens and cost per tier and shows them as a table in a
--- float (and one summary line). opts: silent (no float), callback(err, result).
function M.usage(opts)
  opts = opts or {}
  local bufnr = vim.api.nvim_get_current_buf()
  local client = M.client(bufnr)
  if not client then
    notify("not attached to this buffer", WARN)
    if opts.callback then
      opts.callback({ message = "codetier is not attached" }, nil)
    end
    return
  end
  M.state.busy = M.state.busy + 1
  request(client, "workspace/executeCommand", { command = "codetier.usage", arguments = {} }, function(err, result)
    M.state.busy = math.max(0, M.state.busy - 1)
    if err then
      notify("usage failed: " .. (err.message or ""), vim.log.levels.ERROR)
    elseif type(result) == "table" then
      expect_echo("codetier usage*")
      if type(result.total_cost_usd) == "number" then
        M.state.session_cost = result.total_cost_usd
        M.state.cost_known = true
      end
      if not opts.silent then
        show_float(util.usage_lines(result), "", "codetier-usage")
      end
      notify(util.usage_summary(result))
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
  map(keys.usage, function()
    M.usage()
  end, "usage and cost", { "n" })
  -- Neovim 0.10 maps K to LSP hover itself; before that K runs 'keywordprg' (man), so the
  -- explanation on hover would never be seen. A K of the user's own is left alone.
  if not has_010 and keys.hover and vim.fn.maparg(keys.hover, "n") == "" then
    map(keys.hover, vim.lsp.buf.hover, "hover (the full explanation)", { "n" })
  end
end

-- Buffers whose keys are mapped already (a client can attach twice to a buffer after a restart).
local mapped = {}

--- Attach-time set-up for a codetier client on `bufnr`: key maps and, on Neovim 0.12+, inline
--- completion when the server offers it. Runs from LspAttach (0.8+) or on_attach (0.7), for
--- clients started by setup() or by vim.lsp.enable("codetier").
function M.on_client_attach(client, bufnr)
  if not client or client.name ~= "codetier" then
    return
  end
  if not mapped[bufnr] then
    mapped[bufnr] = true
    map_keys(bufnr)
    vim.api.nvim_buf_attach(bufnr, false, {
      on_detach = function()
        mapped[bufnr] = nil
      end,
    })
  end
  local inline = vim.lsp.inline_completion
  if inline and M.config.inline_completion ~= false then
    local offers = client.supports_method and client:supports_method("textDocument/inlineCompletion", bufnr)
    if offers then
      inline.enable(true, { bufnr = bufnr })
      local keys = M.config.keys == true and default_keys
        or (M.config.keys ~= false and vim.tbl_extend("force", default_keys, M.config.keys))
      local lhs = keys and keys.accept_inline
      if lhs then
        vim.keymap.set("i", lhs, function()
          if not inline.get() then
            return lhs
          end
        end, { buffer = bufnr, expr = true, silent = true, desc = "codetier: accept the inline suggestion" })
      end
    end
  end
end

--- The LspAttach hook (Neovim 0.8+) that sets up codetier's buffers; plugin/codetier.lua installs
--- it at start-up, so vim.lsp.enable("codetier") alone gets the key maps too.
function M.create_autocmds()
  if not has_lsp_attach then
    return
  end
  local group = vim.api.nvim_create_augroup("codetier_attach", { clear = true })
  vim.api.nvim_create_autocmd("LspAttach", {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data and args.data.client_id or -1)
      M.on_client_attach(client, args.buf)
    end,
  })
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

--- setup({ cmd, filetypes, keys, settings, cmd_env, flags, root_markers, float, notify,
--- inline_completion, on_attach, on_result }); see :help codetier-setup.
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
  M.create_autocmds()
  if has_011 then
    -- vim.lsp.enable attaches to matching buffers, those already open included.
    vim.lsp.config("codetier", M.lsp_config())
    vim.lsp.enable("codetier")
    return
  end
  local group = vim.api.nvim_create_augroup("codetier", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    callback = function(args)
      if filetype_enabled(vim.bo[args.buf].filetype) then
        M.attach(args.buf)
      end
    end,
  })
  -- Buffers already open when setup() runs.
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and filetype_enabled(vim.bo[bufnr].filetype) then
      M.attach(bufnr)
    end
  end
end

return M

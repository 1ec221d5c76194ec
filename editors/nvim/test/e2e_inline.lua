-- Headless end-to-end test of inline completions on Neovim 0.12+: type in insert mode, see
-- codetier's suggestion as ghost text (vim.lsp.inline_completion), accept it with the documented
-- key (<M-l>) and find it in the buffer, against the real server and the fake provider
-- (test/run.sh with CODETIER_TEST_LUA=e2e_inline.lua and test/inline-fake-script.json).
-- Results go to $CODETIER_TEST_RESULTS as JSON; Neovim exits 1 on any failure.

local harness = dofile(vim.env.CODETIER_NVIM_DIR .. "/test/harness.lua").new({})
local results, check, finish = harness.results, harness.check, harness.finish
local WAIT = tonumber(vim.env.CODETIER_TEST_WAIT_MS or "") or 30000
local SUGGESTION = "average(&[7, 8, 9]);"

-- The ghost text on the buffer: the text of every inline virtual text and virtual line.
local function ghost_text(bufnr)
  local ns = vim.api.nvim_get_namespaces()["nvim.lsp.inline_completion"]
  if not ns then
    return ""
  end
  local parts = {}
  for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })) do
    for _, chunk in ipairs(mark[4].virt_text or {}) do
      table.insert(parts, chunk[1])
    end
  end
  return table.concat(parts)
end

-- Set once the steps run from timers: they finish the test themselves.
local async = false
local ok_run, err_run = pcall(function()
  check("Neovim 0.12 or later has vim.lsp.inline_completion", vim.lsp.inline_completion ~= nil, results.version)
  if not vim.lsp.inline_completion then
    return
  end
  vim.cmd("edit " .. vim.fn.fnameescape(vim.env.CODETIER_TEST_FILE))
  local bufnr = vim.api.nvim_get_current_buf()
  local client = harness.attached(bufnr, WAIT)
  if not client then
    return
  end
  check("server offers textDocument/inlineCompletion", client.server_capabilities.inlineCompletionProvider ~= nil,
    client.server_capabilities)
  check("inline completion is enabled on the buffer", vim.lsp.inline_completion.is_enabled({ bufnr = bufnr }))
  check("<M-l> is mapped in insert mode", vim.fn.maparg("<M-l>", "i") ~= "", vim.fn.maparg("<M-l>", "i"))

  -- Typing goes through the main loop (insert mode waits for keys, so a blocking `x` feed
  -- would never return): the keys are queued, and each step polls from a timer.
  local main = vim.fn.search("^fn main")
  check("the fixture has fn main", main > 0)
  vim.api.nvim_win_set_cursor(0, { main, 0 })
  local function line_text()
    return vim.api.nvim_buf_get_lines(bufnr, main, main + 1, false)[1] or ""
  end
  local function poll(cond, timeout, next_step)
    local deadline = vim.uv.now() + timeout
    local function tick()
      local ok = cond()
      if ok or vim.uv.now() >= deadline then
        local step_ok, step_err = pcall(next_step, ok)
        if not step_ok then
          check("the test ran without a Lua error", false, step_err)
          finish()
        end
        return
      end
      vim.defer_fn(tick, 20)
    end
    vim.defer_fn(tick, 20)
  end
  async = true
  vim.api.nvim_feedkeys("o    let s = ", "t", false)
  poll(function()
    return ghost_text(bufnr):find(SUGGESTION, 1, true) ~= nil
  end, WAIT, function(shown)
    check("in insert mode after typing", vim.api.nvim_get_mode().mode == "i", vim.api.nvim_get_mode())
    check("the suggestion is shown as ghost text", shown, { ghost = ghost_text(bufnr), line = line_text() })
    vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<M-l>", true, false, true), "t", false)
    local want = "let s = " .. SUGGESTION
    poll(function()
      return vim.trim(line_text()) == want
    end, WAIT, function(accepted)
      check("<M-l> accepts the suggestion into the buffer", accepted, line_text())
      poll(function()
        return ghost_text(bufnr) == ""
      end, 2000, function(gone)
        check("no ghost text left after accepting", gone, ghost_text(bufnr))
        vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<Esc>", true, false, true), "t", false)
        vim.schedule(finish)
      end)
    end)
  end)
end)
if not ok_run then
  check("the test ran without a Lua error", false, err_run)
end
if not ok_run or not async then
  finish()
end

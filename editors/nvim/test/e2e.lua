-- Headless end-to-end test: drives one action of each kind through the plugin's own entry points
-- (a visual-mode key map, a ranged :Codetier command, the Lua API with a tier pick) against the real
-- server and the fake provider, then checks the buffer, the diagnostics and the server's copy of the text.
-- Results go to $CODETIER_TEST_RESULTS as JSON; Neovim exits 1 on any failure.

local codetier = require("codetier")
local results = { checks = {}, messages = {}, answers = {} }
local failed = false
local WAIT = tonumber(vim.env.CODETIER_TEST_WAIT_MS or "") or 30000

local function check(name, ok, detail)
  table.insert(results.checks, { name = name, ok = ok and true or false, detail = detail and vim.inspect(detail) or nil })
  if ok then
    io.stdout:write("ok   " .. name .. "\n")
  else
    failed = true
    io.stderr:write("FAIL " .. name .. (detail and (": " .. vim.inspect(detail)) or "") .. "\n")
  end
end

local function finish()
  local f = io.open(vim.env.CODETIER_TEST_RESULTS, "w")
  if f then
    f:write(vim.fn.json_encode(results))
    f:close()
  end
  if failed then
    vim.cmd("cquit 1")
  else
    vim.cmd("qall!")
  end
end

-- Nothing may block headless: tier picks answer with the first escalation, messages are recorded.
vim.ui.select = function(items, _, on_choice)
  results.picked = items[2] and items[2].tier
  on_choice(items[2], 2)
end
vim.notify = function(msg, level)
  table.insert(results.messages, { msg = msg, level = level })
  io.stdout:write("notify: " .. tostring(msg) .. "\n")
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
  return a.result
end

local ok_run, err_run = pcall(function()
  vim.cmd("edit " .. vim.fn.fnameescape(vim.env.CODETIER_TEST_FILE))
  local bufnr = vim.api.nvim_get_current_buf()
  local original = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)

  local attached = vim.wait(WAIT, function()
    local c = codetier.client(bufnr)
    return c ~= nil and c.initialized == true
  end, 20)
  check("server started and attached to the buffer", attached, vim.bo[bufnr].filetype)
  if not attached then
    return
  end
  local client = codetier.client(bufnr)
  local commands = (client.server_capabilities.executeCommandProvider or {}).commands or {}
  for _, c in ipairs({ "codetier.explain", "codetier.generate", "codetier.review" }) do
    check("server lists " .. c, vim.tbl_contains(commands, c), commands)
  end

  -- Explain: a visual line selection over `average`, then the ,ae key map.
  local n = #answers
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.api.nvim_feedkeys("V6j,ae", "x", false)
  local explain = await_answer("explain", n)
  if explain then
    if explain.pending then
      check("explain: answered (not pending)", false, explain)
    else
      check("explain: result has text", type(explain.text) == "string" and explain.text ~= "", explain)
      check("explain: result names tier and model", type(explain.tier) == "string" and type(explain.model) == "string", explain)
    end
  end

  -- Review: the :2,8CodetierReview command.
  n = #answers
  vim.cmd("2,8CodetierReview")
  local review = await_answer("review", n)
  if review and not review.pending then
    local from_codetier = vim.tbl_filter(function(d)
      return d.source == "codetier"
    end, vim.diagnostic.get(bufnr))
    local got = vim.wait(5000, function()
      from_codetier = vim.tbl_filter(function(d)
        return d.source == "codetier"
      end, vim.diagnostic.get(bufnr))
      return #from_codetier > 0
    end, 20)
    local findings = type(review.findings) == "table" and #review.findings or 0
    check("review: codetier diagnostics published or findings returned", got or findings > 0,
      { diagnostics = #from_codetier, findings = findings })
  elseif review then
    check("review: answered (not pending)", false, review)
  end

  -- Generate: cursor inside `largest`, tier picked through vim.ui.select, Lua API.
  local target = 11 -- 1-based line of `    todo!()`
  n = #answers
  vim.api.nvim_win_set_cursor(0, { target, 4 })
  codetier.generate({ pick_tier = true })
  local generate = await_answer("generate", n)
  check("generate: vim.ui.select was asked for a tier", results.picked ~= nil, results.picked)
  if generate and not generate.pending then
    check("generate: answered by the picked tier", generate.tier == results.picked, { tier = generate.tier, picked = results.picked })
    local changed = vim.wait(5000, function()
      return not vim.deep_equal(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), original)
    end, 20)
    local now = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
    check("generate: the buffer changed", changed, generate)
    check("generate: the model's code is in the buffer",
      table.concat(now, "\n"):find("*values.iter().max().unwrap()", 1, true) ~= nil, now)
    check("generate: lines before the target function are untouched",
      vim.deep_equal(vim.list_slice(now, 1, target - 3), vim.list_slice(original, 1, target - 3)),
      { now = vim.list_slice(now, 1, target - 3) })
    results.buffer_after_generate = now
  elseif generate then
    check("generate: answered (not pending)", false, generate)
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

  -- Usage reports the requests made.
  local usage
  codetier.usage({
    callback = function(err, result)
      usage = { err = err, result = result }
    end,
  })
  vim.wait(5000, function()
    return usage ~= nil
  end, 20)
  check("usage: per-tier report", usage and usage.err == nil and type(usage.result) == "table", usage)
  results.status = codetier.status()
  check("status line text names the last tier", results.status ~= "", results.status)
end)

if not ok_run then
  check("test script ran without a Lua error", false, err_run)
end
finish()

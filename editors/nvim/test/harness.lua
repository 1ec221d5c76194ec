-- What the headless end-to-end tests share: named checks printed as they pass or fail, and the
-- results written to $CODETIER_TEST_RESULTS as JSON when the test finishes (Neovim exits 1 on
-- any failure). Loaded with dofile from $CODETIER_NVIM_DIR/test/harness.lua.
local M = {}

-- A harness whose results table starts with `fields` (and the Neovim version).
function M.new(fields)
  local h = { results = fields or {}, failed = false }
  h.results.checks = {}
  h.results.version = vim.fn.matchstr(vim.fn.execute("version"), "NVIM v\\S\\+")

  function h.check(name, ok, detail)
    table.insert(h.results.checks, { name = name, ok = ok and true or false, detail = detail and vim.inspect(detail) or nil })
    if ok then
      io.stdout:write("ok   " .. name .. "\n")
    else
      h.failed = true
      io.stderr:write("FAIL " .. name .. (detail and (": " .. vim.inspect(detail)) or "") .. "\n")
    end
  end

  function h.finish()
    local f = io.open(vim.env.CODETIER_TEST_RESULTS, "w")
    if f then
      f:write(vim.fn.json_encode(h.results))
      f:close()
    end
    if h.failed then
      vim.cmd("cquit 1")
    else
      vim.cmd("qall!")
    end
  end

  -- Waits (up to `wait` ms) until codetier's client is initialized on `bufnr` and checks it;
  -- the client, or nil when it never attached.
  function h.attached(bufnr, wait)
    local codetier = require("codetier")
    local ok = vim.wait(wait, function()
      local c = codetier.client(bufnr)
      return c ~= nil and c.initialized == true
    end, 20)
    h.check("server started and attached to the buffer", ok, vim.bo[bufnr].filetype)
    return ok and codetier.client(bufnr) or nil
  end

  return h
end

return M

-- Minimal init for the headless end-to-end test: only this plugin, the server from $CODETIER_BIN.
-- CODETIER_TEST_MODE=enable (Neovim 0.11+) starts it the built-in way, vim.lsp.config +
-- vim.lsp.enable with the plugin's lsp/codetier.lua, instead of require("codetier").setup().
local plugin_dir = vim.env.CODETIER_NVIM_DIR
assert(plugin_dir and plugin_dir ~= "", "CODETIER_NVIM_DIR is not set (run test/run.sh)")
vim.opt.runtimepath:prepend(plugin_dir)
vim.opt.swapfile = false
vim.opt.shadafile = "NONE"
vim.g.mapleader = ","
require("vim.lsp.log").set_level("debug")
vim.cmd("runtime plugin/codetier.lua")

local cmd = { vim.env.CODETIER_BIN, "--stdio" }
-- Small debounce: every edit reaches the server before the command that follows it.
local flags = { debounce_text_changes = 0 }
if vim.env.CODETIER_TEST_MODE == "enable" then
  assert(vim.lsp.config and vim.lsp.enable, "CODETIER_TEST_MODE=enable needs Neovim 0.11+")
  vim.lsp.config("codetier", { cmd = cmd, filetypes = { "rust" }, flags = flags })
  vim.lsp.enable("codetier")
else
  require("codetier").setup({ cmd = cmd, filetypes = { "rust" }, keys = true, flags = flags, float = true })
end

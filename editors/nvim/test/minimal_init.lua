-- Minimal init for the headless end-to-end test: only this plugin, the server from $CODETIER_BIN.
local plugin_dir = vim.env.CODETIER_NVIM_DIR
assert(plugin_dir and plugin_dir ~= "", "CODETIER_NVIM_DIR is not set (run test/run.sh)")
vim.opt.runtimepath:prepend(plugin_dir)
vim.opt.swapfile = false
vim.opt.shadafile = "NONE"
vim.g.mapleader = ","
require("vim.lsp.log").set_level("debug")
vim.cmd("runtime plugin/codetier.lua")

require("codetier").setup({
  cmd = { vim.env.CODETIER_BIN, "--stdio" },
  filetypes = { "rust" },
  keys = true,
  -- Small debounce: every edit reaches the server before the command that follows it.
  flags = { debounce_text_changes = 0 },
  float = true,
})

-- Loader: defines the :Codetier* commands and the LspAttach hook (key maps) at start-up. The server
-- starts after require("codetier").setup({...}), or on Neovim 0.11+ after vim.lsp.enable("codetier")
-- (see :help codetier).
if vim.g.loaded_codetier then
  return
end
vim.g.loaded_codetier = true

if vim.fn.has("nvim-0.7") ~= 1 then
  vim.api.nvim_echo({ { "codetier needs Neovim 0.7 or later", "ErrorMsg" } }, true, {})
  return
end

require("codetier").create_commands()
require("codetier").create_autocmds()

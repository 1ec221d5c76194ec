-- Loader: defines the :Codetier* commands at start-up. The server starts only after
-- require("codetier").setup({...}) (see :help codetier).
if vim.g.loaded_codetier then
  return
end
vim.g.loaded_codetier = true

if vim.fn.has("nvim-0.7") ~= 1 then
  vim.api.nvim_echo({ { "codetier needs Neovim 0.7 or later", "ErrorMsg" } }, true, {})
  return
end

require("codetier").create_commands()

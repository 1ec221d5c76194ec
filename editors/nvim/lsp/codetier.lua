-- Neovim 0.11+: the codetier server's configuration for vim.lsp.enable("codetier"), without
-- calling setup(). Override any field with vim.lsp.config("codetier", { cmd = { ... } }).
return require("codetier").lsp_config()

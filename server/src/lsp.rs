//! TODO: lsp

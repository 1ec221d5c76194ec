//! Entry points for the fuzz targets in `fuzz/` into seams that are otherwise private; not an API.
//!
//! Everything else the targets exercise (the document store, the SSE decoder, the findings
//! parser) is public already and is fuzzed through its ordinary API.

use crate::lsp::framing::Decoder;

pub use crate::lsp::framing::{INVALID_MESSAGE, MAX_MESSAGE_BYTES};

/// Headers longer than this (before their blank line) are refused.
pub const MAX_HEADER_BYTES: usize = crate::lsp::framing::MAX_HEADER_BYTES;

/// The stdin guard's decoder, fed chunk by chunk as reads would deliver them.
#[derive(Default)]
pub struct LspDecoder(Decoder);

impl LspDecoder {
    /// Appends `chunk` to the input and returns each frame the guard would now hand the
    /// framework, exactly as written (`Content-Length` header and body).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.0.buf.extend_from_slice(chunk);
        std::iter::from_fn(|| self.0.next_frame())
            .map(|frame| {
                let mut out = Vec::new();
                frame.write_to(&mut out);
                out
            })
            .collect()
    }
}

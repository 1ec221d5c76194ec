//! `codetier/viewFileText`: the server's own copy of a document, for debugging sync and tests.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{done, Handled};
use crate::lsp::error::LspError;
use crate::lsp::session::Session;

/// The request, in the shape of `ls_types`' own.
pub enum ViewFileText {}

impl tower_lsp_server::ls_types::request::Request for ViewFileText {
    type Params = Params;
    type Result = FileText;
    const METHOD: &'static str = "codetier/viewFileText";
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Params {
    uri: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FileText {
    version: i32,
    text: String,
}

pub fn handle(session: &Arc<Session>, params: Params) -> Handled<ViewFileText> {
    done::<ViewFileText>(match session.docs.snapshot(&params.uri) {
        Some(snap) => Ok(FileText {
            version: snap.version,
            text: snap.text.to_string(),
        }),
        None => Err(LspError::unknown_document(&params.uri)),
    })
}

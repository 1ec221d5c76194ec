//! `codetier/viewFileText`: the server's own copy of a document, for debugging sync and tests.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::{ready, unknown_document, Reply};
use crate::lsp::session::Session;

#[derive(Deserialize)]
pub struct Params {
    uri: String,
}

pub fn handle(session: &Arc<Session>, params: Params) -> Reply {
    let result = match session.docs.snapshot(&params.uri) {
        Some(snap) => Ok(json!({ "version": snap.version, "text": snap.text.to_string() })),
        None => Err(unknown_document(&params.uri)),
    };
    ready(result)
}

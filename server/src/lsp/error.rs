//! Errors at the protocol edge: one type with named JSON-RPC codes, and the one function that
//! decides whether the user reads an error in the reply or, once the reply went out, in a
//! message.

use tower_lsp_server::jsonrpc::{self, ErrorCode};
use tower_lsp_server::ls_types as lsp;
use tower_lsp_server::Client;

use super::editor;

/// The JSON-RPC and LSP error codes codetier answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The bytes are not JSON.
    ParseError,
    /// JSON that is not a JSON-RPC message, or a request after `shutdown`.
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    /// A bug or an impossible state; the server keeps running.
    InternalError,
    /// A request before `initialize`.
    ServerNotInitialized,
    /// The request was understood but could not be done (the provider failed, the
    /// configuration is unusable, the earlier answer is gone).
    RequestFailed,
    RequestCancelled,
}

impl Code {
    pub fn number(self) -> i64 {
        match self {
            Code::ParseError => -32700,
            Code::InvalidRequest => -32600,
            Code::MethodNotFound => -32601,
            Code::InvalidParams => -32602,
            Code::InternalError => -32603,
            Code::ServerNotInitialized => -32002,
            Code::RequestFailed => -32803,
            Code::RequestCancelled => -32800,
        }
    }

    /// The code of a number read off the wire (the framing guard's notes); unknown numbers are
    /// internal errors.
    pub fn from_number(n: i64) -> Code {
        [
            Code::ParseError,
            Code::InvalidRequest,
            Code::MethodNotFound,
            Code::InvalidParams,
            Code::ServerNotInitialized,
            Code::RequestFailed,
            Code::RequestCancelled,
        ]
        .into_iter()
        .find(|c| c.number() == n)
        .unwrap_or(Code::InternalError)
    }
}

/// A failed request: its code and the sentence the user reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LspError {
    pub code: Code,
    pub message: String,
}

pub type LspResult<T> = Result<T, LspError>;

impl LspError {
    pub fn new(code: Code, message: impl Into<String>) -> LspError {
        LspError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid_params(message: impl Into<String>) -> LspError {
        LspError::new(Code::InvalidParams, message)
    }

    pub fn request_failed(message: impl Into<String>) -> LspError {
        LspError::new(Code::RequestFailed, message)
    }

    pub fn internal(message: impl Into<String>) -> LspError {
        LspError::new(Code::InternalError, message)
    }

    pub fn cancelled() -> LspError {
        LspError::new(Code::RequestCancelled, "canceled")
    }

    pub fn unknown_document(uri: &str) -> LspError {
        LspError::invalid_params(format!(
            "codetier has no open document {uri}: open it first (textDocument/didOpen)"
        ))
    }
}

impl std::fmt::Display for LspError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<LspError> for jsonrpc::Error {
    fn from(e: LspError) -> jsonrpc::Error {
        let code = match e.code {
            Code::ParseError => ErrorCode::ParseError,
            Code::InvalidRequest => ErrorCode::InvalidRequest,
            Code::MethodNotFound => ErrorCode::MethodNotFound,
            Code::InvalidParams => ErrorCode::InvalidParams,
            Code::InternalError => ErrorCode::InternalError,
            Code::RequestCancelled => ErrorCode::RequestCancelled,
            other => ErrorCode::ServerError(other.number()),
        };
        jsonrpc::Error {
            code,
            message: e.message.into(),
            data: None,
        }
    }
}

/// Where the user can still read a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The request's reply has not gone out: the error is the reply (editors show a failed
    /// command's error themselves).
    Reply,
    /// The reply went out already (`{ "pending": true }`): only a message reaches the user.
    Detached,
}

/// Tells the user of `error` the one way that reaches them, and gives back the error for the
/// reply (ignored once the reply went out). A cancellation is never shown: the user asked for
/// it.
pub async fn tell(client: &Client, error: LspError, audience: Audience) -> LspError {
    if audience == Audience::Detached && error.code != Code::RequestCancelled {
        editor::show_message(client, lsp::MessageType::ERROR, error.message.clone()).await;
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_their_numbers_on_the_wire() {
        for code in [
            Code::ParseError,
            Code::InvalidRequest,
            Code::MethodNotFound,
            Code::InvalidParams,
            Code::InternalError,
            Code::ServerNotInitialized,
            Code::RequestFailed,
            Code::RequestCancelled,
        ] {
            assert_eq!(Code::from_number(code.number()), code);
            let wire: jsonrpc::Error = LspError::new(code, "x").into();
            assert_eq!(wire.code.code(), code.number(), "{code:?}");
        }
        assert_eq!(Code::from_number(7), Code::InternalError);
    }
}

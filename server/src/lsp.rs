//! LSP protocol layer: the only module that sees `ls_types` and JSON-RPC; handlers only translate.

mod backend;
mod commands;
mod dispatch;
mod editor;
mod error;
pub(crate) mod framing;
mod handlers;
mod proto;
mod session;
#[cfg(unix)]
mod stdio;

use std::path::PathBuf;
use std::sync::Arc;

use tower_lsp_server::{LspService, Server};

pub use session::Session;

/// How many handler futures the framework polls at once. Far above the number of AI
/// commands that may wait in a slot ([`MAX_WAITING_COMMANDS`]), so typing and
/// `codeAction` always find a free slot.
pub const CONCURRENCY_LEVEL: usize = 128;

/// AI commands allowed to hold a slot while waiting for their answer; beyond this a
/// command replies `{ "pending": true }` at once and delivers its answer later.
pub const MAX_WAITING_COMMANDS: usize = 32;

/// Options the binary passes to the server.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// `--config FILE`: replaces the user configuration file.
    pub config_file: Option<PathBuf>,
    /// `--tier NAME`: default tier for every action.
    pub tier: Option<String>,
}

/// How the session ended, which decides the exit code (LSP: `exit` without a `shutdown` before
/// it exits with 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `shutdown` then `exit`, or the editor closed the pipe.
    Orderly,
    /// `exit` arrived without `shutdown`.
    ExitWithoutShutdown,
}

/// Serves LSP on stdin/stdout until the client sends `exit` or closes the pipe.
pub async fn serve_stdio(options: ServeOptions) -> anyhow::Result<Ending> {
    let session = Arc::new(Session::new(options));
    let publisher = session.clone();
    let (service, socket) = LspService::build(|client| {
        publisher.attach_client(client.clone());
        backend::Backend::new(publisher.clone())
    })
    .finish();
    let service = dispatch::Dispatch::new(service, session.clone());
    #[cfg(unix)]
    let (input, output, _restore) = stdio::open();
    #[cfg(not(unix))]
    let (input, output) = (tokio::io::stdin(), tokio::io::stdout());
    Server::new(framing::guard(input), output, socket)
        .concurrency_level(CONCURRENCY_LEVEL)
        .serve(service)
        .await;
    session.shutdown_background();
    if session.exit_received() && !session.shutdown_requested() {
        return Ok(Ending::ExitWithoutShutdown);
    }
    Ok(Ending::Orderly)
}

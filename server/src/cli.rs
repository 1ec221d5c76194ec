//! Command line: argument parsing and dispatch to the LSP server or a shell subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FINDINGS: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const PROVIDER: u8 = 3;
}

#[derive(Parser, Debug)]
#[command(
    name = "codetier",
    version,
    about = "AI code actions (explain bug, generate function, review selection) for any LSP editor and for CI",
    long_about = "codetier serves LSP over stdio when run without a subcommand (or with `lsp` / `--stdio`).\n\
                  The API key is read from the environment variable named by `api_key_env` (default GLOBAL_API_KEY)."
)]
pub struct Cli {
    /// Configuration file to use instead of $XDG_CONFIG_HOME/codetier/config.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Tier to use instead of each action's configured tier (flash, coder, pro, reasoning, ...).
    #[arg(long, global = true, value_name = "NAME")]
    pub tier: Option<String>,
    /// Serve LSP over stdio (what VS Code passes); the same as no subcommand.
    #[arg(long)]
    pub stdio: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve LSP over stdio.
    Lsp {
        /// Accepted for clients that pass it.
        #[arg(long)]
        stdio: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            report(&format!("codetier: cannot start the async runtime: {e}"));
            return ExitCode::from(exit::USAGE);
        }
    };
    match cli.command {
        None | Some(Command::Lsp { .. }) => {
            let _log = init_logging(cli.config.as_deref());
            let options = crate::lsp::ServeOptions { config_file: cli.config, tier: cli.tier };
            match runtime.block_on(crate::lsp::serve_stdio(options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::from(exit::USAGE)
                }
            }
        }
    }
}

/// Logging for the server: level and file from the user configuration when it is readable.
fn init_logging(config_file: Option<&std::path::Path>) -> Option<crate::logging::Guard> {
    let early = crate::config::Loader::new()
        .with_user_file(config_file)
        .and_then(|l| l.resolve())
        .ok();
    let (level, file) = early.map(|c| (c.log.level, c.log.file)).unwrap_or_else(|| ("info".into(), None));
    match crate::logging::init(&level, file.as_deref()) {
        Ok(guard) => Some(guard),
        Err(e) => {
            report(&format!("codetier: {e}; logging to stderr only"));
            crate::logging::init("info", None).ok()
        }
    }
}

/// Writes a line to stderr (the server's stdout carries the protocol).
pub fn report(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

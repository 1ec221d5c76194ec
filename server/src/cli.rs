//! Command line: argument parsing and dispatch to the LSP server or a shell subcommand.

mod answer;
mod bucket;
mod cache;
mod doctor;
mod files;
mod report;
mod review;
mod sarif;
mod setup;
mod team;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use bucket::TokenBucket;
pub use setup::Failure;

/// Exit codes, documented in `codetier --help` and the README (section CI).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FINDINGS: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const PROVIDER: u8 = 3;
    /// `review` did not cover what it was given: every file was skipped, or `--max-cost`
    /// stopped it before the end.
    pub const INCOMPLETE: u8 = 4;
}

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  2  usage or configuration error (bad arguments, bad config, no API key)
  3  provider failure (unreachable, key rejected, unknown model, timeout, ...)

The API key is read from the environment variable named by `api_key_env`
(default GLOBAL_API_KEY): export GLOBAL_API_KEY=...";

const REVIEW_AFTER_HELP: &str = "\
Exit codes:
  0  success: no finding at or above --fail-on
  1  a finding at or above --fail-on
  2  usage or configuration error (bad arguments, bad config, no API key)
  3  provider failure (unreachable, key rejected, unknown model, timeout, ...)
  4  incomplete: every file was skipped (excluded, binary, over 2 MiB), or --max-cost
     stopped the review before the end; stderr says which and why

The API key is read from the environment variable named by `api_key_env`
(default GLOBAL_API_KEY): export GLOBAL_API_KEY=...";

#[derive(Parser, Debug)]
#[command(
    name = "codetier",
    version,
    about = "AI code actions (explain bug, generate function, review selection) for any LSP editor and for CI",
    long_about = "codetier serves LSP over stdio when run without a subcommand (or with `lsp` / `--stdio`).\n\
                  The API key is read from the environment variable named by `api_key_env` (default GLOBAL_API_KEY).",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Configuration file to use instead of $XDG_CONFIG_HOME/codetier/config.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Tier to use instead of each action's configured tier (flash, coder, pro, reasoning, ...).
    #[arg(long, global = true, value_name = "NAME")]
    pub tier: Option<String>,
    /// Do not check the model's code (by default generated code and proposed fixes must
    /// parse, generated code must define the function asked for, and a failed generate is
    /// asked again on the next tier).
    #[arg(long, global = true)]
    pub no_verify: bool,
    /// No progress line on stderr (it only ever shows when stderr is a terminal).
    #[arg(long, short, global = true)]
    pub quiet: bool,
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
    /// Review files, line ranges (FILE:START-END) or whole directories.
    #[command(after_help = REVIEW_AFTER_HELP)]
    Review(ReviewArgs),
    /// Explain the code in FILE:START-END (1-based, inclusive lines); prints markdown.
    #[command(after_help = AFTER_HELP)]
    Explain {
        /// FILE:START-END, or FILE:LINE for the block around that line.
        #[arg(value_name = "FILE:START-END")]
        target: String,
        /// Skip the cache read (the answer is still stored).
        #[arg(long)]
        fresh: bool,
    },
    /// Generate the code for the block at FILE:LINE; prints it, or rewrites the file with --write.
    #[command(after_help = AFTER_HELP)]
    Generate {
        /// FILE:LINE (1-based); the enclosing block is what gets generated.
        #[arg(value_name = "FILE:LINE")]
        target: String,
        /// Replace the block in the file (atomically) instead of printing the code.
        #[arg(long)]
        write: bool,
        /// Skip the cache read (the answer is still stored).
        #[arg(long)]
        fresh: bool,
    },
    /// Check configuration, key, reachability and latency of each tier (never prints the key).
    #[command(after_help = AFTER_HELP)]
    Doctor {
        /// Also print the effective configuration.
        #[arg(long, short)]
        verbose: bool,
    },
    /// The response cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// The team tier (Redis): today's shared spend, requests and hit rate per tier.
    Team {
        #[command(subcommand)]
        action: TeamAction,
    },
}

#[derive(Subcommand, Debug, Clone, Copy)]
pub enum TeamAction {
    /// Today's shared spend, requests and hit rate per tier (UTC day).
    Stats {
        /// JSON on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug, Clone, Copy)]
pub enum CacheAction {
    /// Entries, size, hit rate and oldest entry of the response cache.
    Stats,
    /// Delete every cached answer.
    Clear,
}

#[derive(Args, Debug, Clone)]
pub struct ReviewArgs {
    /// Files, FILE:START-END ranges (1-based, inclusive) or directories (walked, honouring .gitignore).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 1 when a finding has at least this severity.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Stop starting new files once the money spent plus the worst case of the next file would exceed this (USD).
    #[arg(long, value_name = "USD", value_parser = parse_non_negative)]
    pub max_cost: Option<f64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Requests started per second at most (a token bucket shared by all jobs).
    #[arg(long, value_name = "R", default_value_t = 5.0, value_parser = parse_positive)]
    pub rate: f64,
    /// Skip the cache read (answers are still stored).
    #[arg(long)]
    pub fresh: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Compiler style: path:line:col: severity: message.
    Text,
    /// One JSON document.
    Json,
    /// SARIF 2.1.0, for GitHub code scanning.
    Sarif,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    Error,
    Warning,
    Info,
    Never,
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

fn parse_non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of USD (0 or more)")),
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report(&format!("codetier: cannot start the async runtime: {e}"));
            return ExitCode::from(exit::USAGE);
        }
    };
    let Cli {
        config,
        tier,
        no_verify,
        quiet,
        command,
        ..
    } = cli;
    match command {
        None | Some(Command::Lsp { .. }) => {
            let _log = init_logging(config.as_deref());
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                // Someone typed `codetier` in a shell: say what is going on instead of waiting
                // in silence (an editor never runs it on a terminal).
                report(
                    "codetier: waiting for an LSP client on stdin (your editor starts this for you). \
                     From the shell, try `codetier review FILE` or `codetier --help`; Ctrl-D quits.",
                );
            }
            let options = crate::lsp::ServeOptions {
                config_file: config,
                tier,
            };
            let code = match runtime.block_on(crate::lsp::serve_stdio(options)) {
                Ok(crate::lsp::Ending::Orderly) => ExitCode::SUCCESS,
                Ok(crate::lsp::Ending::ExitWithoutShutdown) => ExitCode::from(1),
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::from(exit::USAGE)
                }
            };
            // A blocking read of stdin may still be pending when `exit` arrives; it must
            // not keep the process alive.
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            code
        }
        Some(command) => {
            let _log = setup::init_logging();
            let global = Global {
                config,
                tier,
                no_verify,
                quiet,
            };
            let code = match runtime.block_on(run(global, command)) {
                Ok(code) => code,
                Err(failure) => {
                    report(&failure.message);
                    failure.code
                }
            };
            // Spawned requests that lost a race must not keep the process alive.
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            ExitCode::from(code)
        }
    }
}

/// The global options every subcommand takes.
#[derive(Clone, Debug)]
pub struct Global {
    pub config: Option<PathBuf>,
    pub tier: Option<String>,
    /// `--no-verify`: the model's code is not checked, and nothing is escalated for it.
    pub no_verify: bool,
    /// `--quiet`: no progress line.
    pub quiet: bool,
}

async fn run(global: Global, command: Command) -> Result<u8, Failure> {
    match command {
        Command::Lsp { .. } => Ok(exit::OK),
        Command::Review(args) => review::run(&global, args).await,
        Command::Explain { target, fresh } => answer::explain(&global, &target, fresh).await,
        Command::Generate {
            target,
            write,
            fresh,
        } => answer::generate(&global, &target, write, fresh).await,
        Command::Doctor { verbose } => doctor::run(&global, verbose).await,
        Command::Cache { action } => cache::run(&global, action),
        Command::Team { action } => team::run(&global, action).await,
    }
}

/// Logging for the server: level and file from the user configuration when it is readable.
fn init_logging(config_file: Option<&std::path::Path>) -> Option<crate::logging::Guard> {
    let early = crate::config::Loader::new()
        .with_user_file(config_file)
        .and_then(|l| l.resolve())
        .ok();
    let (level, file) = early
        .map(|c| (c.log.level, c.log.file))
        .unwrap_or_else(|| ("info".into(), None));
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

/// Writes `text` to stdout as is; a closed pipe (`| head`) is not an error worth reporting.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_documents_exit_codes_and_review_parses() {
        let help = Cli::command_for_test().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("3  provider failure"), "{help}");
        let cli = Cli::try_parse_from([
            "codetier",
            "review",
            "--format",
            "sarif",
            "--fail-on",
            "never",
            "--jobs",
            "2",
            "--rate",
            "0.5",
            "--max-cost",
            "0.25",
            "--tier",
            "pro",
            "src",
            "a.rs:1-3",
        ])
        .expect("parses");
        let Some(Command::Review(args)) = cli.command else {
            panic!("not review")
        };
        assert_eq!(args.format, Format::Sarif);
        assert_eq!(args.fail_on, FailOn::Never);
        assert_eq!(args.jobs, 2);
        assert_eq!(args.max_cost, Some(0.25));
        assert_eq!(cli.tier.as_deref(), Some("pro"));
        assert_eq!(args.paths, ["src", "a.rs:1-3"]);
    }

    #[test]
    fn bad_numbers_are_usage_errors() {
        for bad in [
            ["--rate", "0"],
            ["--rate", "x"],
            ["--jobs", "0"],
            ["--max-cost", "-1"],
        ] {
            let err = Cli::try_parse_from(["codetier", "review", bad[0], bad[1], "."])
                .expect_err("rejected");
            assert!(err.use_stderr(), "{bad:?}");
        }
    }

    impl Cli {
        fn command_for_test() -> clap::Command {
            <Cli as clap::CommandFactory>::command()
        }
    }
}

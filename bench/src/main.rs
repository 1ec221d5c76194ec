//! `codetier-bench`: runs every benchmark and writes one markdown report (`BENCHMARKS.md`).
//!
//! `cargo run --release -p codetier-bench` (or `scripts/bench`) runs the full set and writes
//! `BENCHMARKS.md` at the repository root. `--quick` is the short CI version: fewer samples and
//! a coarser latency simulation, written to `--out PATH` or stdout. Either exits non-zero only
//! when a benchmark could not run; timings never fail it. `CODETIER_BIN` picks the server
//! binary; otherwise `codetier` is built in this profile next to this executable.

mod client;
mod completion;
mod in_process;
mod instructions;
mod machine;
mod over_lsp;
mod report;
mod routing;
mod source;
mod stats;
mod syntax;
mod team;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context};

use report::{Report, Run};

/// What every benchmark gets.
pub struct Ctx {
    /// The `codetier` binary to spawn.
    pub bin: PathBuf,
    pub quick: bool,
    /// Runs the fake provider, the router and `Cache::share`.
    pub rt: tokio::runtime::Runtime,
}

impl Ctx {
    /// `full` in a full run, `quick` in a quick one.
    pub fn scaled(&self, full: usize, quick: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

type Bench = fn(&Ctx, &mut Report) -> anyhow::Result<()>;

const BENCHES: &[(&str, Bench)] = &[
    ("startup and idle memory", over_lsp::startup_and_rss),
    (
        "document sync and codeAction over LSP",
        over_lsp::sync_and_code_action,
    ),
    ("document sync in process", in_process::doc_sync),
    ("cache hit over LSP", over_lsp::cache_hit),
    ("cache hit in process", in_process::cache_hit),
    (
        "inline completions: typing replay",
        completion::typing_replay,
    ),
    ("router overhead", routing::router_overhead),
    ("latency budget under a heavy tail", routing::latency_budget),
    ("syntax trees in process", syntax::parse_in_process),
    ("syntax trees over LSP", syntax::over_lsp),
    ("verified answers and their cost", syntax::verified_cost),
    ("team tier (Redis)", team::team_tier),
    (
        "instructions per request and per edit (callgrind)",
        instructions::instruction_counts,
    ),
];

struct Args {
    quick: bool,
    out: Option<PathBuf>,
    only: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        quick: false,
        out: None,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--out" => args.out = Some(it.next().context("--out needs a path")?.into()),
            "--only" => args.only.push(it.next().context("--only needs a name")?),
            "-h" | "--help" => {
                println!(
                    "usage: codetier-bench [--quick] [--out PATH|-] [--only NAME]...\n\
                     Full run: writes BENCHMARKS.md at the repository root. --quick: short run, \
                     to --out or stdout. --only runs benchmarks whose name contains NAME.\n\
                     Benchmarks: {}",
                    BENCHES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("codetier-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `Ok(false)` when some benchmark failed to run.
fn run() -> anyhow::Result<bool> {
    let args = parse_args()?;
    // The bench's own provider client reads its (fake) key from here; set before any thread starts.
    std::env::set_var(routing::KEY_ENV, "sk-codetier-bench-not-a-real-key");
    let started = Instant::now();
    let machine = machine::Machine::describe();
    let bin = server_binary()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let ctx = Ctx {
        bin,
        quick: args.quick,
        rt,
    };
    let mut report = Report::default();
    for (name, bench) in BENCHES {
        if !args.only.is_empty() && !args.only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        eprintln!("== {name}");
        let t = Instant::now();
        if let Err(e) = bench(&ctx, &mut report) {
            eprintln!("  FAILED: {e:#}");
            report.failures.push(format!("{name}: {e:#}"));
        }
        eprintln!("  ({:.1} s)", t.elapsed().as_secs_f64());
    }

    let mut command = "cargo run --release -p codetier-bench".to_owned();
    let rest: Vec<String> = std::env::args().skip(1).collect();
    if !rest.is_empty() {
        command.push_str(" -- ");
        command.push_str(&rest.join(" "));
    }
    let binary = ctx.bin.display().to_string();
    let md = report.markdown(
        &machine,
        &Run {
            command: &command,
            quick: args.quick,
            binary: &binary,
            elapsed: started.elapsed(),
        },
    );
    let out = match (&args.out, args.quick) {
        (Some(p), _) if p.as_os_str() == "-" => None,
        (Some(p), _) => Some(p.clone()),
        (None, true) => None,
        (None, false) => Some(repo_root().join("BENCHMARKS.md")),
    };
    match out {
        Some(path) => {
            std::fs::write(&path, &md).with_context(|| format!("write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{md}"),
    }
    Ok(report.failures.is_empty())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `CODETIER_BIN`, or `codetier` built (up to date) in the profile this executable was built in.
fn server_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("CODETIER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("own path")?;
    let dir = exe.parent().context("own directory")?;
    let release = dir.ends_with("release");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // Built together with this crate so dependency features are unified the same way as for
    // `cargo run -p codetier-bench`: `-p codetier` alone resolves them differently, and the two
    // would rebuild each other's dependencies every time.
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "codetier",
        "-p",
        "codetier-bench",
        "--bins",
    ])
    .current_dir(repo_root());
    if release {
        cmd.arg("--release");
    } else {
        eprintln!(
            "warning: a debug build of the benchmarks spawns a debug `codetier`; use --release"
        );
    }
    let status = cmd.status().context("run cargo build")?;
    if !status.success() {
        bail!("building codetier failed");
    }
    let bin = dir.join("codetier");
    if !bin.exists() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}

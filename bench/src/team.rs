//! The team tier against a real redis-server: four LSP processes sharing one Redis, team hits over stdio, the added cost of Redis on a miss, and the shared spending cap.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Script};
use codetier_tests::redis::RedisServer;
use serde_json::{json, Value};

use crate::client::{Lsp, Options};
use crate::report::{Report, Row, Target};
use crate::stats::Summary;
use crate::Ctx;

const GROUP: &str = "Team tier (Redis)";

/// One action as a client saw it: how long it took, `cached`, `team_hit`.
type Seen = (Duration, bool, bool);
const URL_VAR: &str = "CODETIER_BENCH_REDIS_URL";
const KEY: &str = "sk-codetier-bench-team-not-a-real-key";
const ANSWER: &str = "The loop reads one past the end of the slice: use `0..values.len()`.";

/// A document of `n` one-line functions; line `i` is function `i`, a distinct prompt each.
fn functions(n: usize, salt: &str) -> String {
    (0..n)
        .map(|i| format!("fn f{i}_{salt}(x: i32) -> i32 {{ x * {i} + {} }}\n", i % 7))
        .collect()
}

fn explain(lsp: &mut Lsp, uri: &str, line: usize) -> anyhow::Result<Value> {
    lsp.request(
        "workspace/executeCommand",
        json!({
            "command": "codetier.explain",
            "arguments": [{
                "uri": uri,
                "range": { "start": { "line": line, "character": 0 }, "end": { "line": line, "character": 10 } },
            }],
        }),
    )
}

/// A server with its own home (so its own disk cache), on `fake`, with the user file `toml`.
fn server(
    ctx: &Ctx,
    fake: &FakeProvider,
    config_dir: &Path,
    redis_url: &str,
) -> anyhow::Result<Lsp> {
    let opts = Options {
        env: vec![
            ("CODETIER_BASE_URL", fake.base_url()),
            ("GLOBAL_API_KEY", KEY.to_owned()),
            ("XDG_CONFIG_HOME", config_dir.display().to_string()),
            (URL_VAR, redis_url.to_owned()),
        ],
        ..Options::default()
    };
    let mut lsp = Lsp::spawn(&ctx.bin, &opts)?;
    lsp.initialize()?;
    Ok(lsp)
}

/// A user configuration directory holding `toml` as `codetier/config.toml`.
fn config_dir(toml: &str) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("codetier"))?;
    std::fs::write(dir.path().join("codetier/config.toml"), toml)?;
    Ok(dir)
}

pub fn team_tier(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        bail!("redis-server is not installed (scripts/deps installs it)");
    };
    let fake = ctx.rt.block_on(FakeProvider::start(Script {
        default: Behavior {
            answer: Answer::Text(ANSWER.into()),
            ..Behavior::default()
        },
        ..Script::default()
    }))?;
    shared_processes(ctx, report, &fake, &redis)?;
    miss_cost(ctx, report, &fake, &redis)?;
    spend_cap(ctx, report, &fake, &redis)?;
    Ok(())
}

/// 4 processes × `actions` explains over 50 distinct prompts, all at once.
fn shared_processes(
    ctx: &Ctx,
    report: &mut Report,
    fake: &FakeProvider,
    redis: &RedisServer,
) -> anyhow::Result<()> {
    const PROCESSES: usize = 4;
    const PROMPTS: usize = 50;
    let actions = ctx.scaled(200, 100);
    fake.clear();
    // Redis gets two seconds here, as in the tests that count requests: under the default
    // 50 ms a loaded machine can turn the team tier off for a moment, and a process that
    // answers on its own then is the design working, not a second request to count against it.
    let dir = config_dir(&format!(
        "[team]\nredis_url_env = \"{URL_VAR}\"\nkey_prefix = \"bench-share\"\ntimeout_ms = 2000\n"
    ))?;
    let uri = "file:///bench/src/team.rs";
    let text = functions(PROMPTS, "share");
    let mut servers = Vec::new();
    for _ in 0..PROCESSES {
        let mut lsp = server(ctx, fake, dir.path(), &redis.url())?;
        lsp.open(uri, &text)?;
        servers.push(lsp);
    }
    // Each process walks the prompts in its own order, so they race for the same ones.
    let results: Vec<anyhow::Result<(Lsp, Vec<Seen>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = servers
            .into_iter()
            .enumerate()
            .map(|(p, mut lsp)| {
                s.spawn(move || {
                    let mut seen = Vec::with_capacity(actions);
                    for i in 0..actions {
                        let line = (i * (2 * p + 1) + 13 * p) % PROMPTS;
                        let started = Instant::now();
                        let reply = explain(&mut lsp, uri, line)?;
                        let took = started.elapsed();
                        ensure!(reply["text"] == ANSWER, "process {p}, action {i}: {reply}");
                        seen.push((took, reply["cached"] == true, reply["team_hit"] == true));
                    }
                    Ok((lsp, seen))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let mut team_hits = Vec::new();
    let mut local_hits = 0usize;
    for result in results {
        let (lsp, seen) = result?;
        lsp.shutdown()?;
        for (took, cached, team) in seen {
            if team {
                team_hits.push(took);
            } else if cached {
                local_hits += 1;
            }
        }
    }
    // A fifth process, after the race: every answer is already in Redis.
    let mut late = server(ctx, fake, dir.path(), &redis.url())?;
    late.open(uri, &text)?;
    let mut stored_hits = Vec::with_capacity(PROMPTS);
    for line in 0..PROMPTS {
        let started = Instant::now();
        let reply = explain(&mut late, uri, line)?;
        stored_hits.push(started.elapsed());
        ensure!(
            reply["team_hit"] == true,
            "prompt {line} was no team hit: {reply}"
        );
    }
    late.shutdown()?;
    let upstream = fake.requests().len();
    report.push(Row::count_plain(
        GROUP,
        format!("upstream requests for {PROCESSES} processes × {actions} explains over {PROMPTS} distinct prompts (target: exactly {PROMPTS})"),
        upstream as u64,
    ));
    ensure!(
        upstream == PROMPTS,
        "{upstream} upstream requests, expected exactly {PROMPTS}"
    );
    report.push(Row::timing(
        GROUP,
        "executeCommand answered from the team's Redis, the answer already there (a fifth process after the race), over stdio",
        &Summary::of(&stored_hits).context("no team hits")?,
        Target::P99Below(Duration::from_millis(20)),
    ));
    report.push(Row::timing(
        GROUP,
        format!(
            "team hits during the race: the answer stored, or in flight in another process and waited for (polled every 20 ms); {} team hits, {local_hits} local hits",
            team_hits.len()
        ),
        &Summary::of(&team_hits).context("no team hits")?,
        Target::None,
    ));
    Ok(())
}

/// The median miss with and without the team tier, over distinct prompts.
fn miss_cost(
    ctx: &Ctx,
    report: &mut Report,
    fake: &FakeProvider,
    redis: &RedisServer,
) -> anyhow::Result<()> {
    let n = ctx.scaled(200, 60);
    let with_team = config_dir(&format!(
        "[team]\nredis_url_env = \"{URL_VAR}\"\nkey_prefix = \"bench-miss\"\n"
    ))?;
    let without = config_dir("")?;
    let mut lsp_team = server(ctx, fake, with_team.path(), &redis.url())?;
    let mut lsp_local = server(ctx, fake, without.path(), &redis.url())?;
    let (uri_a, uri_b) = ("file:///bench/src/miss_a.rs", "file:///bench/src/miss_b.rs");
    lsp_team.open(uri_a, &functions(n, "team"))?;
    lsp_local.open(uri_b, &functions(n, "local"))?;
    let (mut team, mut local) = (Vec::with_capacity(n), Vec::with_capacity(n));
    // Alternating, so both see the same machine.
    for line in 0..n {
        let started = Instant::now();
        let reply = explain(&mut lsp_team, uri_a, line)?;
        team.push(started.elapsed());
        ensure!(reply["cached"] == false, "a miss was a hit: {reply}");
        let started = Instant::now();
        let reply = explain(&mut lsp_local, uri_b, line)?;
        local.push(started.elapsed());
        ensure!(reply["cached"] == false, "a miss was a hit: {reply}");
    }
    lsp_team.shutdown()?;
    lsp_local.shutdown()?;
    let (t, l) = (
        Summary::of(&team).context("samples")?,
        Summary::of(&local).context("samples")?,
    );
    report.push(Row::timing(
        GROUP,
        "a miss (fake provider answering at once) with the team tier: lookup, lock, gate, write, over stdio",
        &t,
        Target::None,
    ));
    report.push(Row::timing(
        GROUP,
        "the same miss without a team tier",
        &l,
        Target::None,
    ));
    report.push(Row::derived(
        GROUP,
        "added by the team tier on a miss (difference of the medians)",
        t.p50.saturating_sub(l.p50),
        Target::P50Below(Duration::from_millis(5)),
    ));
    Ok(())
}

/// Two processes asking distinct prompts until the shared daily budget refuses them.
fn spend_cap(
    ctx: &Ctx,
    report: &mut Report,
    fake: &FakeProvider,
    redis: &RedisServer,
) -> anyhow::Result<()> {
    fake.clear();
    // Learn one answer's cost from a first request with no cap.
    let probe = config_dir(&format!(
        "[team]\nredis_url_env = \"{URL_VAR}\"\nkey_prefix = \"bench-probe\"\n"
    ))?;
    let mut lsp = server(ctx, fake, probe.path(), &redis.url())?;
    lsp.open("file:///bench/src/probe.rs", &functions(1, "probe"))?;
    let reply = explain(&mut lsp, "file:///bench/src/probe.rs", 0)?;
    lsp.shutdown()?;
    let per_request = reply["cost_usd"].as_f64().context("no cost in the reply")?;
    ensure!(per_request > 0.0, "the answer cost nothing: {reply}");

    let budget = per_request * 10.5;
    let dir = config_dir(&format!(
        "[team]\nredis_url_env = \"{URL_VAR}\"\nkey_prefix = \"bench-cap\"\ndaily_budget_usd = {budget}\n"
    ))?;
    let mut a = server(ctx, fake, dir.path(), &redis.url())?;
    let mut b = server(ctx, fake, dir.path(), &redis.url())?;
    let (uri_a, uri_b) = ("file:///bench/src/cap_a.rs", "file:///bench/src/cap_b.rs");
    a.open(uri_a, &functions(40, "cap_a"))?;
    b.open(uri_b, &functions(40, "cap_b"))?;
    fake.clear();
    let mut refused = 0;
    for line in 0..40 {
        for (lsp, uri) in [(&mut a, uri_a), (&mut b, uri_b)] {
            if explain(lsp, uri, line).is_err() {
                refused += 1;
            }
        }
        // Bookings land in the background; give them a moment, as people between actions do.
        std::thread::sleep(Duration::from_millis(20));
    }
    a.shutdown()?;
    b.shutdown()?;
    let spent = redis_spent(redis, "bench-cap")?;
    let answered = fake.requests().len();
    let overshoot = (spent - budget) / per_request;
    report.push(Row::count_plain(
        GROUP,
        format!(
            "requests answered under a shared daily budget of 10.5 requests' cost, 2 processes, 80 asks ({refused} refused; spent {:.2} requests' cost, {overshoot:+.2} over the cap; target: under +1)",
            spent / per_request
        ),
        answered as u64,
    ));
    ensure!(
        overshoot < 1.0,
        "the cap was overshot by {overshoot:.2} requests' cost"
    );
    Ok(())
}

fn redis_spent(redis: &RedisServer, prefix: &str) -> anyhow::Result<f64> {
    let day = codetier::team::day_of(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    );
    let out = redis
        .cli(&["HGET", &format!("{prefix}:day:{day}"), "cost_usd"])
        .context("redis-cli HGET")?;
    out.trim().parse::<f64>().context("the day's cost")
}

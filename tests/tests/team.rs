//! The team tier against a real redis-server (password, random loopback port or a Unix socket):
//! several codetier processes (LSP over stdio and the CLI) sharing answers, one upstream call
//! for identical requests, the day's spend and budget, rate limits and cooldowns, and Redis
//! killed, hung, restarted or refusing mid-run.
//!
//! Each test starts its own redis-server (`codetier_tests::redis`); without one installed the
//! tests print why and pass, except under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use codetier_tests::bench::Bench;
use codetier_tests::client::{codetier_bin, TestServer};
use codetier_tests::fake::{Answer, Behavior, FakeProvider, Latency, Requests, Rule, Script};
use codetier_tests::redis::{RedisServer, PASSWORD};
use serde_json::{json, Value};

const KEY: &str = "sk-team-test-91d0-SECRET";
const URL_VAR: &str = "CODETIER_TEAM_TEST_REDIS_URL";
const URI: &str = "file:///tmp/codetier-team/src/lib.rs";
const WAIT: Duration = Duration::from_secs(20);
const ANSWER: &str = "The loop reads one past the end of the slice.";
const FLASH: &str = "deepseek-v4-flash";

const LIB: &str = "fn average(values: &[i32]) -> i32 {\n    let mut sum = 0;\n    for i in 0..=values.len() {\n        sum += values[i];\n    }\n    sum / values.len() as i32\n}\n\nfn largest(values: &[i32]) -> i32 {\n    values[0]\n}\n\nfn smallest(values: &[i32]) -> i32 {\n    values[1]\n}\n";

fn text(answer: &str) -> Behavior {
    Behavior {
        answer: Answer::Text(answer.to_owned()),
        ..Behavior::default()
    }
}

fn script(default: Behavior) -> Script {
    Script {
        default,
        ..Script::default()
    }
}

/// The team options an editor passes (user-trusted, like the user file). Tests that count
/// requests give Redis two seconds (`timeout_ms`), so a loaded machine cannot turn the team
/// tier off under them; the fault tests keep the default 50 ms.
fn team_options(extra: Value) -> Value {
    let mut options = json!({ "team": { "redis_url_env": URL_VAR, "timeout_ms": 2000 } });
    merge(&mut options, extra);
    options
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A bench (fake provider + one LSP server) whose server uses `redis`.
fn bench(redis: &RedisServer, s: Script, extra: Value) -> Bench {
    let url = redis.url();
    Bench::start(s, KEY, |b| {
        b.env(URL_VAR, &url).init_options(team_options(extra))
    })
}

/// Another LSP server (its own home, so its own disk cache) on the same fake and Redis.
fn another(fake: &FakeProvider, url: &str, extra: Value) -> TestServer {
    TestServer::builder()
        .env("CODETIER_BASE_URL", &fake.base_url())
        .env("GLOBAL_API_KEY", KEY)
        .env(URL_VAR, url)
        .init_options(team_options(extra))
        .start()
}

fn range(sl: u32, el: u32) -> Value {
    json!({ "start": { "line": sl, "character": 0 }, "end": { "line": el, "character": 1 } })
}

/// Runs explain on lines `sl..=el`; the reply (the shown headline is read when it succeeds).
fn explain(server: &mut TestServer, sl: u32, el: u32) -> Result<Value, Value> {
    let id = server.send(
        "workspace/executeCommand",
        json!({
            "command": "codetier.explain",
            "arguments": [{ "uri": URI, "range": range(sl, el) }],
        }),
    );
    let reply = server.response(id, WAIT);
    if let Ok(result) = &reply {
        let headline = result["text"].as_str().unwrap_or_default().to_owned();
        let first = headline
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        server.wait_notification("window/showMessage", WAIT, |m| {
            m["message"].as_str().is_some_and(|s| s.contains(&first))
        });
    }
    reply
}

fn upstream(fake: &FakeProvider) -> usize {
    fake.requests().len()
}

fn no_secret_in(what: &str, text: &str) {
    assert!(!text.contains(KEY), "the API key leaked into {what}");
    assert!(
        !text.contains(PASSWORD),
        "the Redis password leaked into {what}"
    );
}

/// A temporary repository and home for CLI runs, with a user configuration.
struct Project {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Project {
    fn new(config_toml: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir .git");
        std::fs::create_dir_all(dir.path().join("src")).expect("mkdir src");
        std::fs::write(dir.path().join("src/lib.rs"), LIB).expect("write lib.rs");
        let config = dir.path().join("user-config.toml");
        let toml =
            format!("[team]\nredis_url_env = \"{URL_VAR}\"\ntimeout_ms = 2000\n{config_toml}");
        std::fs::write(&config, toml).expect("write config");
        Project { dir, config }
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `codetier ARGS` in `p` with a fresh home (its own disk cache), the key, the fake and Redis.
async fn cli(p: &Project, base_url: &str, redis_url: &str, args: &[&str]) -> Run {
    let home = tempfile::tempdir().expect("home");
    cli_in(p, home.path(), base_url, redis_url, args).await
}

async fn cli_in(p: &Project, home: &Path, base_url: &str, redis_url: &str, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(codetier_bin());
    cmd.arg("--config")
        .arg(&p.config)
        .args(args)
        .current_dir(p.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("CODETIER_LOG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("GLOBAL_API_KEY", KEY)
        .env("CODETIER_BASE_URL", base_url)
        .env(URL_VAR, redis_url)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("codetier finished within 60 s")
        .expect("run codetier");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    no_secret_in("the CLI's output", &format!("{run:?}"));
    run
}

/// `codetier team stats --json`, polled until `ready` holds (bookings land in the background).
async fn stats_until(
    p: &Project,
    base_url: &str,
    redis_url: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let run = cli(p, base_url, redis_url, &["team", "stats", "--json"]).await;
        assert_eq!(run.code, 0, "{run:?}");
        last = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
        if ready(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("team stats never got there: {last:#}");
}

fn tier<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["per_tier"]
        .as_array()
        .and_then(|tiers| tiers.iter().find(|t| t["tier"] == name))
        .unwrap_or(&Value::Null)
}

fn fake_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

// ---- sharing between editors ------------------------------------------------------------------

#[test]
fn two_editors_share_an_answer_through_redis_and_it_is_marked_a_team_hit() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut a = bench(&redis, script(text(ANSWER)), json!({}));
    a.server.open(URI, "rust", LIB);
    let first = explain(&mut a.server, 0, 6).expect("A's answer");
    assert_eq!(first["cached"], false);
    assert!(first.get("team_hit").is_none(), "{first}");
    assert_eq!(upstream(&a.fake), 1);

    // B has its own disk cache: only Redis can give it A's answer.
    let mut b = another(&a.fake, &redis.url(), json!({}));
    b.open(URI, "rust", LIB);
    let second = explain(&mut b, 0, 6).expect("B's answer");
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(second["team_hit"], true, "{second}");
    assert_eq!(second["text"], first["text"]);
    assert_eq!(second["cost_usd"], 0.0);
    assert_eq!(upstream(&a.fake), 1, "B asked upstream");

    // What Redis holds: one entry under a hashed key, sealed, without the key, the password or
    // the prompt's code.
    let keys = redis.keys("codetier:cache:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let value = redis.cli(&["GET", &keys[0]]).expect("GET");
    assert!(value.starts_with("ctv1"), "{value}");
    no_secret_in("Redis", &value);
    assert!(!keys[0].contains("average"), "{}", keys[0]);
    for k in redis.keys("codetier:*") {
        no_secret_in("a Redis key", &k);
    }
    no_secret_in("A's log", &a.server.stderr());
    no_secret_in("B's log", &b.stderr());
}

#[test]
fn a_damaged_team_entry_is_never_served() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut a = bench(&redis, script(text(ANSWER)), json!({}));
    a.server.open(URI, "rust", LIB);
    explain(&mut a.server, 0, 6).expect("A's answer");
    let keys = redis.keys("codetier:cache:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    // Overwrite a few bytes of the stored answer: the checksum no longer matches.
    redis
        .cli(&["SETRANGE", &keys[0], "60", "XXXX"])
        .expect("SETRANGE");

    let mut b = another(&a.fake, &redis.url(), json!({}));
    b.open(URI, "rust", LIB);
    let second = explain(&mut b, 0, 6).expect("B's answer");
    assert_eq!(
        second["cached"], false,
        "a damaged entry was served: {second}"
    );
    assert_eq!(second["text"], ANSWER);
    assert_eq!(upstream(&a.fake), 2);
}

// ---- one upstream call across processes ---------------------------------------------------------

#[test]
fn identical_cli_runs_in_parallel_make_one_upstream_request() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rt = fake_rt();
    rt.block_on(async {
        // Slow enough that the runs overlap: the first takes the lock, the others wait for it.
        let slow = Behavior {
            ttft: Latency::Fixed { ms: 1500 },
            ..text(ANSWER)
        };
        let fake = FakeProvider::start(script(slow)).await.expect("fake");
        let p = Project::new("");
        let url = redis.url();
        let base = fake.base_url();
        let runs = futures::future::join_all(
            (0..3).map(|_| cli(&p, &base, &url, &["explain", "src/lib.rs:1-7"])),
        )
        .await;
        for run in &runs {
            assert_eq!(run.code, 0, "{run:?}");
            assert!(run.stdout.contains("one past the end"), "{run:?}");
        }
        assert_eq!(
            fake.requests().len(),
            1,
            "identical runs each asked upstream"
        );

        let stats = stats_until(&p, &base, &url, |s| {
            tier(s, "flash")["hits"].as_u64().unwrap_or(0)
                + tier(s, "flash")["misses"].as_u64().unwrap_or(0)
                >= 3
        })
        .await;
        let flash = tier(&stats, "flash");
        assert_eq!(stats["requests"], 1, "{stats:#}");
        assert_eq!(flash["requests"], 1, "{stats:#}");
        assert_eq!(flash["misses"], 1, "{stats:#}");
        assert_eq!(flash["hits"], 2, "{stats:#}");
        assert_eq!(flash["team_hits"], 2, "{stats:#}");
        assert!(stats["cost_usd"].as_f64().unwrap_or(0.0) > 0.0, "{stats:#}");

        // The text form says the same for people.
        let table = cli(&p, &base, &url, &["team", "stats"]).await;
        assert_eq!(table.code, 0, "{table:?}");
        assert!(table.stdout.contains("flash"), "{table:?}");
        assert!(table.stdout.contains("hit rate 66.7%"), "{table:?}");
    });
}

#[test]
fn a_unix_socket_redis_serves_the_cli_too() {
    let Some(redis) = RedisServer::start_unix() else {
        return;
    };
    let rt = fake_rt();
    rt.block_on(async {
        let fake = FakeProvider::start(script(text(ANSWER)))
            .await
            .expect("fake");
        let p = Project::new("");
        let (base, url) = (fake.base_url(), redis.url());
        let first = cli(&p, &base, &url, &["explain", "src/lib.rs:9-11"]).await;
        let second = cli(&p, &base, &url, &["explain", "src/lib.rs:9-11"]).await;
        assert_eq!((first.code, second.code), (0, 0), "{first:?}\n{second:?}");
        assert_eq!(first.stdout, second.stdout);
        assert_eq!(fake.requests().len(), 1);
    });
}

// ---- spend ----------------------------------------------------------------------------------------

#[test]
fn the_daily_budget_refuses_new_requests_and_cached_answers_still_come() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rt = fake_rt();
    rt.block_on(async {
        let fake = FakeProvider::start(script(text(ANSWER)))
            .await
            .expect("fake");
        // One answer of a dozen tokens at Flash's price spends more than this.
        let p = Project::new("daily_budget_usd = 0.000001\n");
        let (base, url) = (fake.base_url(), redis.url());
        let first = cli(&p, &base, &url, &["explain", "src/lib.rs:1-7"]).await;
        assert_eq!(first.code, 0, "{first:?}");

        let refused = cli(&p, &base, &url, &["explain", "src/lib.rs:9-11"]).await;
        assert_eq!(refused.code, 3, "{refused:?}");
        assert!(
            refused.stderr.contains("team's daily budget"),
            "{refused:?}"
        );
        assert!(
            refused.stderr.contains("team.daily_budget_usd"),
            "{refused:?}"
        );
        assert!(refused.stderr.contains("00:00 UTC"), "{refused:?}");

        // The answer already paid for still comes, from the team's Redis.
        let cached = cli(&p, &base, &url, &["explain", "src/lib.rs:1-7"]).await;
        assert_eq!(cached.code, 0, "{cached:?}");
        assert_eq!(cached.stdout, first.stdout);
        assert_eq!(
            fake.requests().len(),
            1,
            "a request went out past the budget"
        );

        // An editor on the same Redis is under the same budget: the CLI spent it.
        let mut editor = another(
            &fake,
            &url,
            json!({ "team": { "daily_budget_usd": 0.000001 } }),
        );
        editor.open(URI, "rust", LIB);
        let refused = explain(&mut editor, 12, 14).expect_err("over the team's budget");
        assert!(
            refused.to_string().contains("team's daily budget"),
            "{refused}"
        );
        assert_eq!(fake.requests().len(), 1);
        editor.take_messages();
    });
}

// ---- rate limits and cooldowns ------------------------------------------------------------------

#[test]
fn two_editors_stay_under_a_shared_requests_per_minute_together() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let limit = json!({ "tiers": { "flash": { "requests_per_minute": 2 } } });
    let mut a = bench(&redis, script(text(ANSWER)), limit.clone());
    let mut b = another(&a.fake, &redis.url(), limit);
    a.server.open(URI, "rust", LIB);
    b.open(URI, "rust", LIB);
    explain(&mut a.server, 0, 6).expect("first slot");
    explain(&mut b, 8, 10).expect("second slot");
    // The bucket is empty for the next 30 s, past Flash's 2.5 s deadline: refused at once.
    let refused = explain(&mut a.server, 12, 14).expect_err("over the shared limit");
    let message = refused.to_string();
    assert!(message.contains("requests a minute"), "{message}");
    assert!(message.contains("requests_per_minute"), "{message}");
    assert_eq!(upstream(&a.fake), 2);
    a.server.take_messages();
}

#[test]
fn a_breaker_opened_in_one_editor_makes_the_other_skip_the_model() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let failing_flash = Script {
        default: text(ANSWER),
        rules: vec![Rule {
            model: Some(FLASH.to_owned()),
            requests: None,
            behavior: Behavior::status(500, None),
        }],
        ..Script::default()
    };
    let options = json!({
        "breaker": { "failure_threshold": 1, "open_ms": 60000 },
        "retry": { "max_attempts": 1 },
    });
    let mut a = bench(&redis, failing_flash, options.clone());
    a.server.open(URI, "rust", LIB);
    // Flash fails once: A's breaker opens, and A goes to the fallback next time.
    let _ = explain(&mut a.server, 0, 6);
    a.server.take_messages();
    let flash_before: Vec<_> = a
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.model == FLASH)
        .collect();
    assert_eq!(flash_before.len(), 1);
    // Wait for the cooldown to reach Redis (it is written in the background).
    let cooled = (0..100).any(|_| {
        let found = !redis.keys("codetier:cooldown:*").is_empty();
        if !found {
            std::thread::sleep(Duration::from_millis(50));
        }
        found
    });
    assert!(cooled, "the cooldown never reached Redis");

    // B never saw flash fail, yet skips it for the fallback.
    let mut b = another(&a.fake, &redis.url(), options);
    b.open(URI, "rust", LIB);
    let answer = explain(&mut b, 8, 10).expect("the fallback answers");
    assert_eq!(answer["model"], "deepseek-coder", "{answer}");
    let flash_after = a
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.model == FLASH)
        .count();
    assert_eq!(flash_after, 1, "B asked the model A's breaker had opened");
    b.take_messages();
}

// ---- faults ---------------------------------------------------------------------------------------

#[test]
fn redis_killed_mid_run_then_restarted_loses_no_answer_and_is_told_once() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mut a = bench(&redis, script(text(ANSWER)), json!({}));
    a.server.open(URI, "rust", LIB);
    explain(&mut a.server, 0, 6).expect("with Redis");
    assert_eq!(redis.keys("codetier:cache:*").len(), 1);

    redis.kill();
    let during = explain(&mut a.server, 8, 10).expect("an answer without Redis");
    assert_eq!(during["text"], ANSWER);
    let told = a.server.told("team tier", &[]);
    assert_eq!(told.len(), 1, "{told:?}");
    // Still down: answered again, not told again. A repeat comes from the local tiers.
    explain(&mut a.server, 12, 14).expect("another answer without Redis");
    let repeat = explain(&mut a.server, 8, 10).expect("a local hit");
    assert_eq!(repeat["cached"], true);
    assert_eq!(upstream(&a.fake), 3);

    // Back (empty): after the pause, new answers reach it again.
    redis.restart();
    std::thread::sleep(codetier::team::RETRY_AFTER + Duration::from_millis(500));
    let mut stored = false;
    for line in [1u32, 2, 3, 4, 5] {
        explain(&mut a.server, line, 6).expect("an answer after the restart");
        if !redis.keys("codetier:cache:*").is_empty() {
            stored = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(stored, "nothing reached the restarted Redis");
    let rest = a.server.take_messages();
    assert!(
        rest.iter().all(|m| !m.contains("team tier")),
        "told twice: {rest:?}"
    );
    no_secret_in("the log", &a.server.stderr());
}

#[test]
fn a_hung_redis_is_given_up_on_and_actions_still_answer() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // The default bound: 50 ms for all of an action's Redis calls.
    let mut a = bench(
        &redis,
        script(text(ANSWER)),
        json!({ "team": { "timeout_ms": 50 } }),
    );
    a.server.open(URI, "rust", LIB);
    explain(&mut a.server, 0, 6).expect("with Redis");
    // DEBUG SLEEP blocks the whole server: connections stay open, nothing answers.
    let hang = {
        let port_args = redis_cli_target(&redis);
        std::thread::spawn(move || {
            let _ = std::process::Command::new("redis-cli")
                .args(&port_args)
                .env("REDISCLI_AUTH", PASSWORD)
                .args(["DEBUG", "SLEEP", "4"])
                .output();
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let during = explain(&mut a.server, 8, 10).expect("an answer while Redis hangs");
    assert_eq!(during["text"], ANSWER);
    assert_eq!(during["cached"], false);
    a.server.told("team tier", &[]);
    let _ = hang.join();
}

/// `-h 127.0.0.1 -p PORT` of a TCP test server, read from its URL.
fn redis_cli_target(redis: &RedisServer) -> Vec<String> {
    let url = redis.url();
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .unwrap_or_default()
        .to_owned();
    vec!["-h".into(), "127.0.0.1".into(), "-p".into(), port]
}

#[test]
fn a_redis_that_refuses_the_password_leaves_the_local_tiers_working() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let wrong = redis.url().replace(PASSWORD, "not-the-password");
    let mut server = Bench::start(script(text(ANSWER)), KEY, |b| {
        b.env(URL_VAR, &wrong).init_options(team_options(json!({})))
    });
    server.server.open(URI, "rust", LIB);
    let first = explain(&mut server.server, 0, 6).expect("answered without Redis");
    assert_eq!(first["text"], ANSWER);
    server.server.told("team tier", &[]);
    let again = explain(&mut server.server, 0, 6).expect("a local hit");
    assert_eq!(again["cached"], true);
    assert!(redis.keys("codetier:*").is_empty());
    let log = server.server.stderr();
    assert!(
        !log.contains("not-the-password"),
        "the password leaked into the log"
    );
}

#[test]
fn doctor_says_whether_the_team_redis_is_there_without_showing_its_url() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rt = fake_rt();
    rt.block_on(async {
        let fake = FakeProvider::start(script(text(ANSWER)))
            .await
            .expect("fake");
        let p = Project::new("");
        let run = cli(&p, &fake.base_url(), &redis.url(), &["doctor"]).await;
        assert!(run.stdout.contains("Team tier (Redis):"), "{run:?}");
        assert!(
            run.stdout.contains(&format!("present in ${URL_VAR}")),
            "{run:?}"
        );
        assert!(run.stdout.contains("PING answered"), "{run:?}");
        let down = cli(
            &p,
            &fake.base_url(),
            "redis://:pw@127.0.0.1:1/0",
            &["doctor"],
        )
        .await;
        assert!(down.stdout.contains("did not answer"), "{down:?}");
        assert!(!down.stdout.contains(":pw@"), "{down:?}");
    });
}

#[test]
fn a_cancelled_computation_releases_its_lock_for_the_other_processes() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let slow = Behavior {
        ttft: Latency::Fixed { ms: 8000 },
        ..text(ANSWER)
    };
    let mut a = bench(&redis, script(slow), json!({}));
    a.server.open(URI, "rust", LIB);
    let id = a.server.send(
        "workspace/executeCommand",
        json!({
            "command": "codetier.explain",
            "arguments": [{ "uri": URI, "range": range(0, 6) }],
        }),
    );
    let locked = (0..200).any(|_| {
        let found = !redis.keys("codetier:lock:*").is_empty();
        if !found {
            std::thread::sleep(Duration::from_millis(25));
        }
        found
    });
    assert!(locked, "the computation never took its lock");
    a.server.cancel(id);
    let err = a.server.response(id, WAIT).expect_err("cancelled");
    assert_eq!(err["code"], -32800, "{err}");
    // Released now, not when it expires (15 s): the wait here stays well under that.
    let released = (0..100).any(|_| {
        let gone = redis.keys("codetier:lock:*").is_empty();
        if !gone {
            std::thread::sleep(Duration::from_millis(50));
        }
        gone
    });
    assert!(released, "the cancelled computation kept its lock");
    a.server.take_messages();
}

#[test]
fn a_computation_longer_than_the_lock_keeps_it_and_the_other_process_still_waits() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // 17 s to the first token, past the lock's 15 s life: the holder must extend it.
    let slow = Behavior {
        ttft: Latency::Fixed { ms: 17_000 },
        ..text(ANSWER)
    };
    let long = json!({ "latency_budget_ms": 60000, "command_reply_ms": 60000 });
    let mut a = bench(&redis, script(slow), long.clone());
    let mut b = another(&a.fake, &redis.url(), long);
    a.server.open(URI, "rust", LIB);
    b.open(URI, "rust", LIB);
    let params = json!({
        "command": "codetier.explain",
        "arguments": [{ "uri": URI, "range": range(0, 6) }],
    });
    let id_a = a.server.send("workspace/executeCommand", params.clone());
    let locked = (0..200).any(|_| {
        let found = !redis.keys("codetier:lock:*").is_empty();
        if !found {
            std::thread::sleep(Duration::from_millis(25));
        }
        found
    });
    assert!(locked, "A never took the lock");
    let id_b = b.send("workspace/executeCommand", params);
    let long_wait = Duration::from_secs(90);
    let first = a.server.response(id_a, long_wait).expect("A's answer");
    let second = b.response(id_b, long_wait).expect("B's answer");
    assert_eq!(first["cached"], false);
    assert_eq!(second["team_hit"], true, "{second}");
    assert_eq!(
        upstream(&a.fake),
        1,
        "B asked upstream once A's lock expired"
    );
    a.server.take_messages();
    b.take_messages();
}

#[test]
fn a_lock_holder_killed_with_sigkill_is_outwaited_and_the_other_process_asks_itself() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // The first request hangs (its process is killed while it waits); any later one answers.
    let s = Script {
        default: text(ANSWER),
        rules: vec![Rule {
            model: None,
            requests: Some(Requests::First(1)),
            behavior: Behavior {
                ttft: Latency::Fixed { ms: 120_000 },
                ..text(ANSWER)
            },
        }],
        ..Script::default()
    };
    let long = json!({ "latency_budget_ms": 60000, "command_reply_ms": 60000 });
    let mut a = bench(&redis, s, long.clone());
    let mut b = another(&a.fake, &redis.url(), long);
    a.server.open(URI, "rust", LIB);
    b.open(URI, "rust", LIB);
    let params = json!({
        "command": "codetier.explain",
        "arguments": [{ "uri": URI, "range": range(0, 6) }],
    });
    a.server.send("workspace/executeCommand", params.clone());
    // A holds the lock and its request reached the provider (the one that hangs). Killed
    // between the two, A would leave the hanging first request to B.
    let asked = (0..200).any(|_| {
        let found = !redis.keys("codetier:lock:*").is_empty() && upstream(&a.fake) == 1;
        if !found {
            std::thread::sleep(Duration::from_millis(25));
        }
        found
    });
    assert!(asked, "A never took the lock and asked upstream");
    // No release, no more extensions: the lock can only expire (15 s after its last extension).
    a.server.kill();
    let id_b = b.send("workspace/executeCommand", params);
    let answer = b
        .response(id_b, Duration::from_secs(60))
        .expect("B answers once the dead holder's lock expired");
    assert_eq!(answer["cached"], false, "B asked upstream itself: {answer}");
    assert_eq!(upstream(&a.fake), 2, "A's hung request and B's own");
    b.take_messages();
}

#[test]
fn with_share_cache_off_answers_stay_local_and_the_spend_is_still_shared() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rt = fake_rt();
    rt.block_on(async {
        let fake = FakeProvider::start(script(text(ANSWER)))
            .await
            .expect("fake");
        let p = Project::new("share_cache = false\n");
        let (base, url) = (fake.base_url(), redis.url());
        for _ in 0..2 {
            let run = cli(&p, &base, &url, &["explain", "src/lib.rs:1-7"]).await;
            assert_eq!(run.code, 0, "{run:?}");
        }
        assert_eq!(fake.requests().len(), 2, "an answer was shared");
        assert!(redis.keys("codetier:cache:*").is_empty());
        assert!(redis.keys("codetier:lock:*").is_empty());
        let stats = stats_until(&p, &base, &url, |s| s["requests"] == 2).await;
        assert_eq!(tier(&stats, "flash")["misses"], 2, "{stats:#}");
    });
}

#[test]
fn the_bucket_lock_and_ledger_scripts_hold_against_a_real_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    use codetier::team::{Bound, Lock, Team};
    let var = "CODETIER_TEAM_TEST_API_URL";
    std::env::set_var(var, redis.url());
    let cfg = codetier::config::TeamConfig {
        redis_url_env: Some(var.to_owned()),
        timeout_ms: 2000,
        ..codetier::config::TeamConfig::default()
    };
    let team = Team::from_config(&cfg)
        .expect("a usable URL")
        .expect("a team tier");
    fake_rt().block_on(async {
        // A bucket of 3 a minute starts full: 3 tokens at once, then one every 20 s.
        for i in 0..3 {
            assert_eq!(team.take_token("m", 3).await, Some(0), "token {i}");
        }
        let wait = team.take_token("m", 3).await.expect("Redis answers");
        assert!((1..=20_000).contains(&wait), "{wait} ms to the next token");
        // Another model has a bucket of its own.
        assert_eq!(team.take_token("other", 3).await, Some(0));

        // The lock: one holder; another token cannot release or extend it.
        let Lock::Acquired(token) = team.lock("k", Duration::from_secs(5)).await else {
            panic!("the first lock is ours");
        };
        assert_eq!(team.lock("k", Duration::from_secs(5)).await, Lock::Held);
        team.unlock("k", "not-the-token").await;
        assert_eq!(team.locked("k", Bound::Call).await, Some(true));
        assert!(
            !team
                .extend("k", "not-the-token", Duration::from_secs(30))
                .await
        );
        assert!(team.extend("k", &token, Duration::from_secs(30)).await);
        team.unlock("k", &token).await;
        assert_eq!(team.locked("k", Bound::Call).await, Some(false));

        // Sealed values round-trip; a foreign value is not one.
        team.put("v", b"payload", 60).await;
        assert_eq!(
            team.get("v", Bound::Call).await.as_deref(),
            Some(&b"payload"[..])
        );
        redis
            .cli(&["SET", "codetier:cache:w", "plain"])
            .expect("SET");
        assert_eq!(team.get("w", Bound::Call).await, None);

        // The day's ledger adds up across bookings.
        team.book_request("flash", Some(0.5));
        team.book_request("flash", Some(0.25));
        team.book_lookup("flash", true, true);
        team.flush(Duration::from_secs(5)).await;
        let day = team.day_stats().await.expect("stats");
        assert_eq!(day.requests, 2);
        assert_eq!(day.cost_usd, 0.75);
        assert_eq!((day.hits, day.team_hits, day.misses), (1, 1, 0));
        assert_eq!(team.spent_today().await, Some(0.75));
        assert!(team.is_up());
    });
}

#[test]
fn processes_racing_over_the_same_keys_compute_each_once() {
    // Two caches on one Redis stand for two processes. The window this closes: a process
    // misses in Redis, the other stores the answer and lets its lock go, and only then does
    // the first take the lock: it must find the answer under the lock, not compute it again.
    let Some(redis) = RedisServer::start() else {
        return;
    };
    use codetier::cache::{key, Cache, Entry};
    use codetier::config::{CacheConfig, TeamConfig};
    use codetier::provider::Answer;
    use codetier::team::Team;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    const KEYS: usize = 200;
    let var = "CODETIER_TEAM_TEST_RACE_URL";
    std::env::set_var(var, redis.url());
    let cfg = TeamConfig {
        redis_url_env: Some(var.to_owned()),
        timeout_ms: 2000,
        key_prefix: "race".to_owned(),
        ..TeamConfig::default()
    };
    let caches: Vec<Cache> = (0..2)
        .map(|_| {
            let cache = Cache::memory_only(&CacheConfig::default());
            cache.set_team(Team::from_config(&cfg).expect("a usable URL"));
            cache
        })
        .collect();
    let computed = Arc::new(AtomicUsize::new(0));
    fake_rt().block_on(async {
        let mut tasks = Vec::new();
        for (p, cache) in caches.iter().enumerate() {
            for i in 0..KEYS {
                // The second process walks the keys backwards, so the two meet in the middle
                // of each other's computations as often as possible.
                let i = if p == 0 { i } else { KEYS - 1 - i };
                let cache = cache.clone();
                let computed = Arc::clone(&computed);
                tasks.push(tokio::spawn(async move {
                    let compute = async move {
                        computed.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Ok::<_, String>(Entry::new(Answer {
                            text: format!("answer {i}"),
                            ..Answer::default()
                        }))
                    };
                    let k = key("explain", FLASH, 1, &format!("prompt {i}"));
                    let served = cache.share_served(k, false, compute).await?;
                    assert_eq!(served.entry.answer.text, format!("answer {i}"));
                    Ok::<_, String>(())
                }));
                tokio::task::yield_now().await;
            }
        }
        for task in tasks {
            task.await.expect("no panic").expect("an answer");
        }
    });
    assert_eq!(
        computed.load(Ordering::SeqCst),
        KEYS,
        "each key computed once across both processes"
    );
}

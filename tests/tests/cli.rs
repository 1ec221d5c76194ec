//! The `codetier` command line end to end: the real binary against the fake provider over real
//! HTTP, one test per behaviour (formats, privacy, spending cap, rate limit, exit codes, doctor,
//! cache, explain, generate --write).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use codetier_tests::client::codetier_bin;
use serde_json::Value;

mod fake {
    //! The few things these tests need from the fake provider, in one place.
    pub use codetier_tests::fake::FakeProvider;
    use codetier_tests::fake::{Answer, Behavior, Fault, Script};

    pub async fn start(script: Script) -> FakeProvider {
        FakeProvider::start(script)
            .await
            .expect("the fake provider starts")
    }

    /// Every request answered with `text`.
    pub fn text(text: &str) -> Script {
        Script::always(Behavior {
            answer: Answer::Text(text.to_owned()),
            ..Behavior::default()
        })
    }

    /// Every request answered with HTTP `status`.
    pub fn status(status: u16) -> Script {
        Script::always(Behavior {
            fault: Some(Fault::Status {
                status,
                body: None,
                retry_after: None,
            }),
            ..Behavior::default()
        })
    }

    /// A provider that expects another key: 401 on every request, `/models` included.
    pub fn other_key(text: &str) -> Script {
        Script {
            expected_key: Some("sk-some-other-key".to_owned()),
            ..self::text(text)
        }
    }
}

const KEY: &str = "sk-test-cli-7f3a9c-SECRET";

/// A review answer with one warning (with a fix) on line 2 and one error on line 4.
const FINDINGS: &str = r#"[
  {"line": 2, "severity": "warning", "message": "the value is never used", "replacement": "    let _unused = 1;"},
  {"line": 4, "severity": "error", "message": "this divides by zero"}
]"#;

const LIB_RS: &str =
    "fn main() {\n    let unused = 1;\n    let d = 0;\n    println!(\"{}\", 1 / d);\n}\n";

/// A temporary repository (it has a `.git`, so it is the root) and a temporary home.
struct Project {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Project {
    fn new(files: &[(&str, &str)]) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = tempfile::tempdir().expect("home");
        std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir .git");
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, text).expect("write");
        }
        Project { dir, home }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A user configuration file outside the repository, for `--config`.
    fn config(&self, toml: &str) -> String {
        let path = self.home.path().join("cli-config.toml");
        std::fs::write(&path, toml).expect("write config");
        path.to_string_lossy().into_owned()
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

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Runs the binary in the project with the key set (unless `key` is false) and the base URL of
/// `base_url` (the fake's).
async fn codetier(p: &Project, base_url: Option<&str>, key: bool, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(codetier_bin());
    cmd.args(args)
        .current_dir(p.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("GLOBAL_API_KEY")
        .env_remove("CODETIER_BASE_URL")
        .env_remove("CODETIER_LOG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("HOME", p.home.path())
        .env("XDG_CONFIG_HOME", p.home.path().join("config"))
        .env("XDG_CACHE_HOME", p.home.path().join("cache"))
        .kill_on_drop(true);
    if key {
        cmd.env("GLOBAL_API_KEY", KEY);
    }
    if let Some(url) = base_url {
        cmd.env("CODETIER_BASE_URL", url);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("codetier finished within 60 s")
        .expect("run codetier");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(KEY) && !run.stderr.contains(KEY),
        "the key leaked: {run:?}"
    );
    run
}

/// Validates a SARIF document with the vendored schema (python3 + jsonschema).
fn assert_valid_sarif(doc: &str) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("sarif");
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), doc).expect("write sarif");
    let out = std::process::Command::new("python3")
        .arg(fixtures.join("validate.py"))
        .arg(file.path())
        .output()
        .expect("python3 runs (the SARIF check needs python3 with the jsonschema package)");
    assert!(
        out.status.success(),
        "SARIF does not validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every request body the fake received, as text.
fn bodies(fake: &fake::FakeProvider) -> Vec<String> {
    fake.requests().iter().map(|r| r.body.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_exits_2_with_the_command_to_set_it_and_sends_nothing() {
    let fake = fake::start(fake::text(FINDINGS)).await;
    let p = Project::new(&[("src/lib.rs", LIB_RS)]);
    for args in [
        &["review", "src/lib.rs"][..],
        &["explain", "src/lib.rs:1-3"],
        &["generate", "src/lib.rs:2"],
    ] {
        let run = codetier(&p, Some(&fake.base_url()), false, args).await;
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains("GLOBAL_API_KEY is not set"), "{run:?}");
        assert!(run.stderr.contains("export GLOBAL_API_KEY=..."), "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
    }
    assert!(
        fake.requests().is_empty(),
        "nothing may be sent without a key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_prints_text_json_and_valid_sarif_with_fail_on_exit_codes() {
    let fake = fake::start(fake::text(FINDINGS)).await;
    let p = Project::new(&[("src/lib.rs", LIB_RS)]);
    let url = fake.base_url();

    let text = codetier(&p, Some(&url), true, &["review", "src/lib.rs"]).await;
    assert_eq!(
        text.code, 1,
        "an error finding fails the default --fail-on error: {text:?}"
    );
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(
        lines[0], "src/lib.rs:2:1: warning: the value is never used",
        "{text:?}"
    );
    assert!(
        lines.contains(&"src/lib.rs:4:1: error: this divides by zero"),
        "{text:?}"
    );
    assert!(
        !text.stdout.contains('\x1b'),
        "no colour when piped: {text:?}"
    );
    assert!(text.stderr.contains("reviewed 1 file"), "{text:?}");

    let json = codetier(
        &p,
        Some(&url),
        true,
        &[
            "review",
            "--format",
            "json",
            "--fail-on",
            "never",
            "src/lib.rs",
        ],
    )
    .await;
    assert_eq!(json.code, 0, "{json:?}");
    let doc = json.json();
    assert_eq!(
        doc["findings"].as_array().map(Vec::len),
        Some(2),
        "{json:?}"
    );
    assert_eq!(doc["findings"][0]["path"], "src/lib.rs");
    assert_eq!(doc["findings"][0]["start_line"], 2);
    assert_eq!(doc["findings"][0]["severity"], "warning");
    assert_eq!(doc["findings"][0]["replacement"], "    let _unused = 1;");
    assert_eq!(doc["files"][0]["tier"], "flash");
    assert_eq!(doc["files"][0]["model"], "deepseek-v4-flash");
    assert_eq!(
        doc["files"][0]["cached"], true,
        "the second identical review comes from the cache: {json:?}"
    );
    assert_eq!(doc["summary"]["findings"], 2);

    let sarif = codetier(
        &p,
        Some(&url),
        true,
        &[
            "review",
            "--format",
            "sarif",
            "--fail-on",
            "warning",
            "src/lib.rs",
        ],
    )
    .await;
    assert_eq!(sarif.code, 1, "{sarif:?}");
    assert_valid_sarif(&sarif.stdout);
    let doc: Value = serde_json::from_str(&sarif.stdout).expect("sarif json");
    let result = &doc["runs"][0]["results"][0];
    assert_eq!(result["level"], "warning");
    assert_eq!(
        result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "src/lib.rs"
    );
    assert_eq!(
        result["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"],
        "%SRCROOT%"
    );
    assert_eq!(
        result["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );
    assert_eq!(doc["runs"][0]["results"][1]["level"], "error");

    let never = codetier(
        &p,
        Some(&url),
        true,
        &["review", "--fail-on", "never", "src/lib.rs"],
    )
    .await;
    assert_eq!(never.code, 0, "{never:?}");
    assert_eq!(
        fake.requests().len(),
        1,
        "later runs were answered from the cache"
    );

    // A range sends only those lines as the selection, and findings stay inside it.
    let range = codetier(
        &p,
        Some(&url),
        true,
        &[
            "review",
            "--format",
            "json",
            "--fail-on",
            "never",
            "src/lib.rs:1-2",
        ],
    )
    .await;
    assert_eq!(range.code, 0, "{range:?}");
    for f in range.json()["findings"].as_array().expect("findings") {
        assert!(
            f["start_line"]
                .as_u64()
                .is_some_and(|l| (1..=2).contains(&l)),
            "{f}"
        );
        assert!(
            f["end_line"].as_u64().is_some_and(|l| (1..=2).contains(&l)),
            "{f}"
        );
    }
    assert_eq!(
        fake.requests().len(),
        2,
        "a different selection is a new request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_review_sends_nothing_from_excluded_or_ignored_files() {
    let fake = fake::start(fake::text("[]")).await;
    let p = Project::new(&[
        ("src/main.rs", "fn main() { run(); }\n"),
        (
            "src/secrets/token.rs",
            "const TOKEN: &str = \"MARKER_SECRET_DIR\";\n",
        ),
        ("deploy/server.pem", "-----BEGIN MARKER_PEM-----\n"),
        ("build/generated.rs", "fn MARKER_IGNORED() {}\n"),
        (".gitignore", "build/\n"),
    ]);
    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["review", "--format", "json", "."],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let reviewed: Vec<&str> = doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(reviewed, ["src/main.rs"], "{run:?}");
    let mut skipped: Vec<&str> = doc["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .filter_map(|s| s["path"].as_str())
        .collect();
    skipped.sort_unstable();
    assert_eq!(
        skipped,
        ["deploy/server.pem", "src/secrets/token.rs"],
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("skipped deploy/server.pem: matches privacy.exclude"),
        "{run:?}"
    );
    let sent = bodies(&fake);
    assert_eq!(sent.len(), 1, "one request, for src/main.rs");
    for marker in [
        "MARKER_SECRET_DIR",
        "MARKER_PEM",
        "MARKER_IGNORED",
        "secrets/token.rs",
        "server.pem",
    ] {
        assert!(
            !sent.iter().any(|b| b.contains(marker)),
            "{marker} was sent to the provider"
        );
    }
    assert!(sent[0].contains("run()"), "the reviewed file was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_cost_stops_starting_files_and_says_which_were_skipped() {
    let fake = fake::start(fake::text(FINDINGS)).await;
    let p = Project::new(&[("a.rs", LIB_RS), ("b.rs", LIB_RS), ("c.rs", LIB_RS)]);
    // Each request may cost up to 100 tokens x $10000/M = $1; the answer itself costs more
    // than $0.05, so after the first file nothing else fits under $1.05.
    let config = p.config("[tiers.flash]\noutput_usd_per_million = 10000.0\nmax_tokens = 100\n");
    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &[
            "review",
            "--config",
            &config,
            "--format",
            "json",
            "--fail-on",
            "never",
            "--max-cost",
            "1.05",
            "a.rs",
            "b.rs",
            "c.rs",
        ],
    )
    .await;
    // Stopped before the end: never quietly green, whatever --fail-on says.
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stderr
            .contains("incomplete: --max-cost stopped the review before 2 file(s)"),
        "{run:?}"
    );
    let doc = run.json();
    assert_eq!(doc["summary"]["exit_code"], 4, "{run:?}");
    assert_eq!(doc["files"].as_array().map(Vec::len), Some(1), "{run:?}");
    assert_eq!(doc["files"][0]["path"], "a.rs");
    let skipped = doc["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 2, "{run:?}");
    for s in skipped {
        assert!(
            s["reason"]
                .as_str()
                .is_some_and(|r| r.contains("--max-cost 1.05 USD reached")),
            "{s}"
        );
    }
    assert!(
        doc["notes"][0]
            .as_str()
            .is_some_and(|n| n.contains("--max-cost")),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("skipped b.rs: not started: --max-cost"),
        "{run:?}"
    );
    assert_eq!(fake.requests().len(), 1);

    // SARIF carries the same skips as notifications, and stays valid.
    let sarif = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &[
            "review",
            "--config",
            &config,
            "--format",
            "sarif",
            "--fail-on",
            "never",
            "--max-cost",
            "0.5",
            "b.rs",
        ],
    )
    .await;
    assert_eq!(sarif.code, 4, "{sarif:?}");
    assert_valid_sarif(&sarif.stdout);
    assert!(
        sarif
            .stdout
            .contains("skipped b.rs: not started: --max-cost 0.5 USD reached"),
        "{sarif:?}"
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "nothing may start when one request could exceed the cap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_bucket_spaces_request_starts() {
    let fake = fake::start(fake::text("[]")).await;
    let files: Vec<(String, String)> = (0..5)
        .map(|i| (format!("f{i}.rs"), format!("fn f{i}() {{}}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let p = Project::new(&refs);
    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["review", "--jobs", "5", "--rate", "5", "."],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let mut arrivals: Vec<std::time::Instant> =
        fake.requests().iter().map(|r| r.received_at).collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 5, "{run:?}");
    // At 5 per second with no burst, start k comes at least k x 200 ms after the first. Only
    // this lower bound is checked: a slow machine spaces requests more, never less.
    for (k, at) in arrivals.iter().enumerate() {
        let since_first = at.duration_since(arrivals[0]);
        let floor = Duration::from_millis(200 * k as u64).saturating_sub(Duration::from_millis(30));
        assert!(
            since_first >= floor,
            "request {k} started {since_first:?} after the first (floor {floor:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failures_exit_3_and_usage_errors_exit_2() {
    let fake = fake::start(fake::other_key("[]")).await;
    let p = Project::new(&[("src/lib.rs", LIB_RS), ("src/b.rs", LIB_RS)]);
    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["review", "--jobs", "1", "src"],
    )
    .await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.to_lowercase().contains("key"), "{run:?}");
    assert!(
        run.stderr
            .contains("not started: an earlier request failed"),
        "a rejected key stops the run: {run:?}"
    );

    let down = fake::start(fake::status(503)).await;
    let failed = codetier(
        &p,
        Some(&down.base_url()),
        true,
        &["review", "--format", "json", "src/lib.rs"],
    )
    .await;
    assert_eq!(failed.code, 3, "{failed:?}");
    assert!(failed.stderr.contains("503"), "{failed:?}");
    assert_eq!(failed.json()["summary"]["files_failed"], 1, "{failed:?}");

    for (args, needle) in [
        (&["review", "missing.rs"][..], "missing.rs"),
        (
            &["review", "--tier", "nope", "src/lib.rs"],
            "unknown tier `nope`",
        ),
        (&["review", "src/lib.rs:9-2"], "ends before it starts"),
        (&["review", "--format", "xml", "src/lib.rs"], "xml"),
        (&["explain", "src/lib.rs"], "FILE:START-END"),
    ] {
        let run = codetier(&p, Some(&fake.base_url()), true, args).await;
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(needle), "{args:?}: {run:?}");
    }
    let config = p.config("[tiers.flash]\nmodle = \"x\"\n");
    let bad = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["review", "--config", &config, "src/lib.rs"],
    )
    .await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr.contains("tiers.flash.modle"),
        "the error names the key: {bad:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_prints_markdown_and_generate_writes_only_the_target_atomically() {
    let explanation = "**Division by zero** on line 4.\n\n`d` is always 0, so `1 / d` panics.";
    let fake = fake::start(fake::text(explanation)).await;
    let p = Project::new(&[("src/lib.rs", LIB_RS)]);
    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["explain", "src/lib.rs:3-4"],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("`1 / d` panics"), "{run:?}");

    let source =
        "fn keep() -> u32 {\n    1\n}\n\nfn answer() -> u32 {\n    todo!()\n}\n\nfn tail() {}\n";
    let generated = "```rust\nfn answer() -> u32 {\n    42\n}\n```";
    fake.set_script(fake::text(generated));
    let p = Project::new(&[("src/gen.rs", source)]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p.path("src/gen.rs"), std::fs::Permissions::from_mode(0o640))
            .expect("chmod");
    }
    let printed = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["generate", "src/gen.rs:6"],
    )
    .await;
    assert_eq!(printed.code, 0, "{printed:?}");
    assert_eq!(
        printed.stdout, "fn answer() -> u32 {\n    42\n}\n",
        "{printed:?}"
    );
    assert_eq!(
        std::fs::read_to_string(p.path("src/gen.rs")).expect("read"),
        source,
        "without --write nothing changes"
    );

    let written = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["generate", "--write", "src/gen.rs:6"],
    )
    .await;
    assert_eq!(written.code, 0, "{written:?}");
    let after = std::fs::read_to_string(p.path("src/gen.rs")).expect("read");
    assert_eq!(
        after,
        "fn keep() -> u32 {\n    1\n}\n\nfn answer() -> u32 {\n    42\n}\n\nfn tail() {}\n"
    );
    let names: Vec<String> = std::fs::read_dir(p.path("src"))
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["gen.rs"], "no temporary file left behind");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p.path("src/gen.rs"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640, "permissions kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_sources_values_and_tier_latency_and_diagnoses_failures() {
    let serves = |models: &[&str]| codetier_tests::fake::Script {
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        ..fake::text("OK")
    };
    let all = [
        "deepseek-v4-flash",
        "qwen3-coder-30b",
        "deepseek-v4-pro",
        "deepseek-r1",
    ];
    let fake = fake::start(serves(&all)).await;
    let p = Project::new(&[(".codetier.toml", "[context]\nsurrounding_lines = 3\n")]);
    let ok = codetier(&p, Some(&fake.base_url()), true, &["doctor", "--verbose"]).await;
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(
        ok.stdout.starts_with("codetier doctor: all checks passed"),
        "the verdict comes first: {ok:?}"
    );
    assert!(ok.stdout.contains(".codetier.toml: applied"), "{ok:?}");
    assert!(ok.stdout.contains("CODETIER_BASE_URL: applied"), "{ok:?}");
    assert!(ok.stdout.contains("surrounding_lines = 3"), "{ok:?}");
    assert!(ok.stdout.contains("key: present"), "{ok:?}");
    assert!(ok.stdout.contains("ok    reachability"), "{ok:?}");
    for tier in [
        "flash (deepseek-v4-flash)",
        "coder (qwen3-coder-30b)",
        "pro (deepseek-v4-pro)",
        "reasoning (deepseek-r1)",
    ] {
        assert!(
            ok.stdout.contains(&format!("ok    {tier}: first token")),
            "{tier}: {ok:?}"
        );
    }
    assert!(
        fake.requests().iter().all(|r| r.body["max_tokens"] == 8),
        "doctor's requests are tiny"
    );

    let one = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["doctor", "--tier", "pro"],
    )
    .await;
    assert_eq!(one.code, 0, "{one:?}");
    assert!(
        !one.stdout
            .contains("flash (deepseek-v4-flash): first token"),
        "{one:?}"
    );

    let no_key = codetier(&p, Some(&fake.base_url()), false, &["doctor", "--verbose"]).await;
    assert_eq!(no_key.code, 2, "{no_key:?}");
    assert!(
        no_key.stdout.contains("export GLOBAL_API_KEY=..."),
        "{no_key:?}"
    );
    assert!(no_key.stdout.contains("key: absent"), "{no_key:?}");

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let refused = codetier(
        &p,
        Some(&format!("http://127.0.0.1:{port}/v1")),
        true,
        &["doctor"],
    )
    .await;
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(refused.stdout.contains("connection refused"), "{refused:?}");

    // Without --verbose the configuration dump is left out.
    let short = codetier(&p, Some(&fake.base_url()), true, &["doctor"]).await;
    assert!(!short.stdout.contains("surrounding_lines = 3"), "{short:?}");

    // A model the provider does not list is a problem, with the key to change and the choices.
    fake.set_script(serves(&[
        "deepseek-v4-flash",
        "qwen3-coder-30b",
        "deepseek-r1",
    ]));
    let missing = codetier(&p, Some(&fake.base_url()), true, &["doctor"]).await;
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(
        missing
            .stdout
            .starts_with("codetier doctor: 1 problem(s) found"),
        "{missing:?}"
    );
    assert!(
        missing.stdout.contains("Set tiers.pro.model in your user config to one it serves: deepseek-v4-flash, qwen3-coder-30b, deepseek-r1"),
        "{missing:?}"
    );

    fake.set_script(fake::other_key("OK"));
    let rejected = codetier(&p, Some(&fake.base_url()), true, &["doctor"]).await;
    assert_eq!(rejected.code, 3, "{rejected:?}");
    assert!(rejected.stdout.contains("key rejected"), "{rejected:?}");
    // The one cause is reported once, naming every check that hit it.
    let problems = rejected
        .stdout
        .split("Details:")
        .next()
        .unwrap_or_default()
        .matches("key rejected")
        .count();
    assert_eq!(problems, 1, "{rejected:?}");

    // A broken user configuration stops doctor before it probes anything.
    let config = p.config("max_tokens = \"lots\"\n");
    fake.clear();
    let broken = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["--config", &config, "doctor"],
    )
    .await;
    assert_eq!(broken.code, 2, "{broken:?}");
    assert!(broken.stdout.contains("`max_tokens`"), "{broken:?}");
    assert!(
        fake.requests().is_empty() && fake.model_list_peers().is_empty(),
        "doctor probed a provider after a configuration error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_stats_and_clear() {
    let fake = fake::start(fake::text("[]")).await;
    let p = Project::new(&[("a.rs", LIB_RS), ("b.rs", "fn b() {}\n")]);
    let review = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["review", "a.rs", "b.rs"],
    )
    .await;
    assert_eq!(review.code, 0, "{review:?}");
    let stats = codetier(&p, None, false, &["cache", "stats"]).await;
    assert_eq!(stats.code, 0, "cache commands need no key: {stats:?}");
    assert!(stats.stdout.contains("entries:  2"), "{stats:?}");
    assert!(stats.stdout.contains("path:"), "{stats:?}");
    let clear = codetier(&p, None, false, &["cache", "clear"]).await;
    assert_eq!(clear.code, 0, "{clear:?}");
    assert!(
        clear.stdout.contains("removed 2 cached answers"),
        "{clear:?}"
    );
    let again = codetier(&p, None, false, &["cache", "stats"]).await;
    assert!(again.stdout.contains("entries:  0"), "{again:?}");
}

/// The 8-char windows of `secret` found in `text`.
fn leaks(secret: &str, text: &str) -> Vec<String> {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .windows(8)
        .map(|w| w.iter().collect::<String>())
        .filter(|w| text.contains(w.as_str()))
        .collect()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_masked_and_excludes_ignore_case_and_follow_links() {
    let fake = fake::start(fake::text("[]")).await;
    let secrets = [
        "Tr0ub4dor&3-x",
        "s3cr3tPa55w0rd",
        "whsec_5f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "dXNlcjpwYXNzd29yZA==",
    ];
    let db = format!(
        "fn connect() {{\n    let db_password = \"{}\";\n    let url = \"postgres://app:{}@db/app\";\n    let hook = \"{}\";\n    let auth = \"Authorization: Basic {}\";\n}}\n",
        secrets[0], secrets[1], secrets[2], secrets[3]
    );
    let p = Project::new(&[
        ("src/db.rs", db.as_str()),
        ("certs/SERVER.PEM", "MARKER_PEM\n"),
        ("Secrets/db.toml", "MARKER_SECRETS_DIR\n"),
        (".env", "DB_PASSWORD=MARKER_DOTENV\n"),
        (".env.local", "MARKER_ENV_LOCAL\n"),
    ]);
    std::os::unix::fs::symlink(p.path(".env"), p.path("notes.txt")).expect("symlink");

    // explain: the lines go masked, and stderr says how many secrets were.
    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["explain", "src/db.rs:2-5"],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("4 secrets masked"), "{run:?}");
    let sent = bodies(&fake);
    assert_eq!(sent.len(), 1);
    for secret in secrets {
        let leaked = leaks(secret, &sent[0]);
        assert!(
            leaked.is_empty(),
            "{leaked:?} of {secret} was sent: {}",
            sent[0]
        );
    }
    assert!(
        sent[0].contains("let db_password = \\\"[REDACTED:secret]\\\""),
        "{}",
        sent[0]
    );

    // review: excluded by name in another case, by a directory in another case, and by the
    // file a symlink resolves to; the reviewed file's masked secrets are noted.
    fake.clear();
    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &[
            "review",
            "--format",
            "json",
            "--fresh",
            "certs",
            "Secrets",
            "notes.txt",
            "src/db.rs",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let skipped: Vec<(String, String)> = doc["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap_or_default().to_owned(),
                s["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let reason = |path: &str| {
        skipped
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{path} not skipped: {run:?}"))
    };
    assert_eq!(reason("certs/SERVER.PEM"), "matches privacy.exclude");
    assert_eq!(reason("Secrets/db.toml"), "matches privacy.exclude");
    assert_eq!(
        reason("notes.txt"),
        "matches privacy.exclude through the file it resolves to, .env"
    );
    let notes: Vec<&str> = doc["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        notes.contains(&"src/db.rs: 4 secrets masked before sending"),
        "{run:?}"
    );
    let sent = bodies(&fake);
    assert_eq!(sent.len(), 1, "only src/db.rs was sent: {run:?}");
    assert!(!sent[0].contains("MARKER_"), "{}", sent[0]);

    // explain on the link is refused before anything is sent.
    fake.clear();
    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["explain", "notes.txt:1-1"],
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("notes.txt matches privacy.exclude through the file it resolves to, .env"),
        "{run:?}"
    );
    // `.env.*` is among the default excludes.
    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["explain", ".env.local:1-1"],
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(".env.local matches privacy.exclude"),
        "{run:?}"
    );
    assert!(fake.requests().is_empty(), "nothing was sent");
}

/// The number in `text` between `before` and `after`.
fn number_between(text: &str, before: &str, after: &str) -> usize {
    let from = text
        .find(before)
        .map(|i| i + before.len())
        .unwrap_or_else(|| panic!("{before:?} not in {text}"));
    let len = text[from..]
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} not in {text}"));
    text[from..from + len]
        .replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_cut_to_fit_the_budget_is_reported_with_the_lines_sent() {
    let fake = fake::start(fake::text("Looks fine.")).await;
    let big: String = (1..=3000).map(|i| format!("let v{i} = {i};\n")).collect();
    let blob = format!(
        "fn f() {{}}\nconst BLOB: &str = \"{}\";\nfn g() {{}}\n",
        "x".repeat(6000)
    );
    let p = Project::new(&[("src/big.rs", big.as_str()), ("src/blob.rs", blob.as_str())]);
    let config = p.config("[context]\ntoken_budget = 600\n");

    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["explain", "--config", &config, "src/big.rs:1-3000"],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let prefix = "codetier: the selection (lines 1–3,000) was cut to fit context.token_budget: only lines 1–";
    let last = number_between(&run.stderr, prefix, " were sent");
    assert!(last > 10 && last < 3000, "{run:?}");
    let sent = bodies(&fake);
    assert!(
        sent[0].contains(&format!("let v{last} = {last};")),
        "the last line sent"
    );
    assert!(
        !sent[0].contains(&format!("let v{} = ", last + 1)),
        "and no further"
    );

    // review: a line too long for any chunk is cut, and the report's notes say how.
    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &[
            "review",
            "--config",
            &config,
            "--format",
            "json",
            "src/blob.rs",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let notes: Vec<&str> = doc["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let cut = notes
        .iter()
        .find(|n| n.starts_with("src/blob.rs: the selection (line 2) was cut to fit context.token_budget: only the first "))
        .unwrap_or_else(|| panic!("no note for the cut line: {run:?}"));
    let shown = number_between(cut, "only the first ", " characters");
    assert!(shown > 0 && shown < 6000, "{cut}");
    assert!(run.stderr.contains(&format!("codetier: {cut}")), "{run:?}");
}

#[test]
fn codetier_alone_on_a_terminal_says_it_waits_for_an_lsp_client() {
    // util-linux's `script` gives the server a terminal for stdin; its own stdin is empty, so
    // the terminal sees end of input and the server ends as an editor closing the pipe would.
    let home = tempfile::tempdir().expect("home");
    let out = std::process::Command::new("script")
        .args(["-qec", &codetier_bin().display().to_string(), "/dev/null"])
        .env("HOME", home.path())
        .env_remove("CODETIER_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` runs (Debian's bsdutils)");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("waiting for an LSP client on stdin"),
        "{shown}"
    );
    // Piped (as editors run it), it says nothing and serves.
    let piped = std::process::Command::new(codetier_bin())
        .env("HOME", home.path())
        .env_remove("CODETIER_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run codetier");
    assert!(piped.stderr.is_empty(), "{piped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_without_v1_warns_of_the_missing_model_list_and_names_the_path() {
    let fake = fake::start(fake::text("OK")).await;
    let p = Project::new(&[]);
    let root = fake.base_url().trim_end_matches("/v1").to_owned();
    let run = codetier(&p, Some(&root), true, &["doctor"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    let (head, _) = run
        .stdout
        .split_once("Details:")
        .expect("a details section");
    assert!(
        head.contains("Warnings:") && head.contains("/models is not there"),
        "{run:?}"
    );
    assert!(head.contains("/v1"), "the fix names /v1: {run:?}");
    assert_eq!(
        head.matches("  - ").count(),
        2,
        "one problem (all four tiers), one warning: {run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_of_nothing_is_not_green_and_costs_print_what_they_count() {
    let fake = fake::start(fake::text("[]")).await;
    let p = Project::new(&[("lib.rs", LIB_RS)]);
    std::fs::write(p.path("blob.bin"), [0u8, 1, 2, 0, 255]).expect("write");
    let big = "// padding\n".repeat(2 * 1024 * 1024 / 11 + 10);
    std::fs::write(p.path("big.rs"), big).expect("write");

    let run = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["review", "--format", "json", "blob.bin", "big.rs"],
    )
    .await;
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stderr
            .contains("nothing was reviewed: all 2 file(s) were skipped"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("larger than 2 MiB"),
        "the limit is named: {run:?}"
    );
    assert!(
        !run.stdout.contains("-0"),
        "no negative zero: {}",
        run.stdout
    );
    assert_eq!(run.json()["summary"]["cost_usd"], 0.0);
    assert!(fake.requests().is_empty());

    let text = codetier(&p, Some(&fake.base_url()), true, &["review", "lib.rs"]).await;
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stderr
            .contains("(output tokens at known prices; input not priced)"),
        "{text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_past_the_end_and_directories_get_errors_that_say_so() {
    let fake = fake::start(fake::text("Fine.")).await;
    let p = Project::new(&[("lib.rs", LIB_RS)]);
    let explain = codetier(
        &p,
        Some(&fake.base_url()),
        true,
        &["explain", "lib.rs:50-60"],
    )
    .await;
    assert_eq!(explain.code, 2, "{explain:?}");
    assert!(
        explain
            .stderr
            .contains("lib.rs has 5 lines: lines 50-60 reach past its end"),
        "{explain:?}"
    );
    let review = codetier(&p, Some(&fake.base_url()), true, &["review", "lib.rs:2-99"]).await;
    assert_eq!(review.code, 2, "{review:?}");
    assert!(
        review
            .stderr
            .contains("lib.rs has 5 lines: lines 2-99 reach past its end"),
        "{review:?}"
    );
    let generate = codetier(&p, Some(&fake.base_url()), true, &["generate", "lib.rs:9"]).await;
    assert!(
        generate
            .stderr
            .contains("lib.rs has 5 lines: line 9 is past its end"),
        "{generate:?}"
    );
    std::fs::create_dir_all(p.path("src")).expect("mkdir");
    let dir = codetier(&p, Some(&fake.base_url()), true, &["explain", "src"]).await;
    assert_eq!(dir.code, 2, "{dir:?}");
    assert!(dir.stderr.contains("`src` is a directory"), "{dir:?}");
    assert!(fake.requests().is_empty(), "nothing was sent");
    // Within the file, the same commands work.
    let ok = codetier(&p, Some(&fake.base_url()), true, &["explain", "lib.rs:2-5"]).await;
    assert_eq!(ok.code, 0, "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_progress_on_a_terminal_only() {
    let fake = fake::start(codetier_tests::fake::Script::always(
        codetier_tests::fake::Behavior {
            answer: codetier_tests::fake::Answer::Text(
                "Headline: it reads past the end of the slice, one element too far.".to_owned(),
            ),
            tokens_per_second: Some(40.0),
            ..codetier_tests::fake::Behavior::default()
        },
    ))
    .await;
    let p = Project::new(&[("lib.rs", LIB_RS)]);
    // Piped (CI, scripts): the answer and the footer, no progress line.
    let piped = codetier(&p, Some(&fake.base_url()), true, &["explain", "lib.rs:2-5"]).await;
    assert_eq!(piped.code, 0, "{piped:?}");
    assert!(!piped.stderr.contains("tokens ·"), "{piped:?}");
    // On a terminal (util-linux's `script` gives one): tier, tokens and elapsed time.
    let on_tty = |extra: &str| {
        let command = format!(
            "{} explain --fresh {extra} lib.rs:2-5",
            codetier_bin().display()
        );
        let out = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(p.dir.path())
            .env("HOME", p.home.path())
            .env("XDG_CONFIG_HOME", p.home.path().join("config"))
            .env("XDG_CACHE_HOME", p.home.path().join("cache"))
            .env("GLOBAL_API_KEY", KEY)
            .env("CODETIER_BASE_URL", fake.base_url())
            .env_remove("CODETIER_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("util-linux `script` runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = on_tty("");
    assert!(
        shown.contains("codetier: flash · ") && shown.contains(" tokens · "),
        "{shown}"
    );
    assert!(shown.contains("reads past the end"), "{shown}");
    let quiet = on_tty("--quiet");
    assert!(!quiet.contains(" tokens · "), "{quiet}");
    assert!(quiet.contains("reads past the end"), "{quiet}");
}

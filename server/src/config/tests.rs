//! Tests of the configuration: each layer, each rejection, and the last good configuration.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;

/// A loader that ignores the real environment and the real user file.
fn loader() -> Loader {
    Loader::new().with_env_base_url(None)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn user(text: &str) -> (tempfile::TempDir, Loader) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "config.toml", text);
    let loader = loader().with_user_file(Some(&path)).unwrap();
    (dir, loader)
}

fn toml_errors(text: &str) -> ConfigErrors {
    Layer::from_toml(
        text,
        Source::UserFile("/home/u/.config/codetier/config.toml".into()),
    )
    .unwrap_err()
}

fn error_for<'e>(errors: &'e ConfigErrors, key: &str) -> &'e ConfigError {
    errors
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no error for `{key}` in:\n{errors}"))
}

const DESIGN_EXAMPLE: &str = r#"
base_url = "https://global-apis.com/v1"
api_key_env = "GLOBAL_API_KEY"
latency_budget_ms = 2500

[tiers.flash]
model = "deepseek-v4-flash"
output_usd_per_million = 0.25
extra_body = { thinking = { type = "disabled" } }
[tiers.coder]
model = "qwen3-coder-30b"
output_usd_per_million = 0.35
[tiers.pro]
model = "deepseek-v4-pro"
output_usd_per_million = 0.78
[tiers.reasoning]
model = "deepseek-r1"
output_usd_per_million = 2.50
budget_ms = 60000

[actions.explain]
tier = "flash"
escalate = ["reasoning"]
[actions.generate]
tier = "flash"
escalate = ["pro", "reasoning"]
[actions.review]
tier = "flash"
escalate = ["coder", "reasoning"]

[cache]
memory_entries = 512
ttl_days = 7

[privacy]
exclude = [".env", "*.pem", "*.key", "**/secrets/**"]
redact_secrets = true
"#;

#[test]
fn defaults_only() {
    assert_eq!(loader().resolve().unwrap(), Config::default());
}

#[test]
fn the_design_example_is_the_defaults() {
    // The design's example predates `.env.*` among the default excludes; it is otherwise the
    // defaults, written out.
    let (_dir, loader) = user(DESIGN_EXAMPLE);
    let mut expected = Config::default();
    expected.privacy.exclude.retain(|g| g != ".env.*");
    assert_eq!(loader.resolve().unwrap(), expected);
}

#[test]
fn unknown_key_is_named_with_its_full_path_and_source() {
    let errors = toml_errors("[tiers.flash]\nmodle = \"x\"\n");
    let e = error_for(&errors, "tiers.flash.modle");
    assert!(e.message.starts_with("unknown key"), "{e}");
    assert!(e.message.contains("did you mean `model`"), "{e}");
    assert_eq!(
        e.to_string(),
        "codetier config: /home/u/.config/codetier/config.toml: `tiers.flash.modle`: \
         unknown key; did you mean `model`?"
    );
    let errors = toml_errors("colour = 1\n[cache]\nsize = 3\n");
    assert!(
        errors.names("colour") && errors.names("cache.size"),
        "{errors}"
    );
}

#[test]
fn bad_type_names_key_and_value() {
    let errors = toml_errors("latency_budget_ms = \"fast\"\n");
    assert_eq!(
        error_for(&errors, "latency_budget_ms").message,
        "expected a positive integer, got \"fast\""
    );
    let errors = toml_errors(
        "[hedge]\nenabled = \"yes\"\n[privacy]\nexclude = \"*.pem\"\n[tiers]\nflash = 3\n",
    );
    assert!(
        error_for(&errors, "hedge.enabled")
            .message
            .contains("true or false"),
        "{errors}"
    );
    assert!(
        error_for(&errors, "privacy.exclude")
            .message
            .contains("expected a list"),
        "{errors}"
    );
    assert!(
        error_for(&errors, "tiers.flash")
            .message
            .contains("expected a table"),
        "{errors}"
    );
}

#[test]
fn bad_values_are_named_and_all_collected() {
    let errors = toml_errors(
        "latency_budget_ms = 50\nmax_tokens = 0\napi_key_env = \"MY KEY\"\n\
         [retry]\nmax_attempts = 99\n[log]\nlevel = \"loud\"\n\
         [privacy]\nexclude = [\"a[\"]\n[tiers.flash]\noutput_usd_per_million = -1\n",
    );
    assert_eq!(errors.len(), 7, "{errors}");
    assert_eq!(
        error_for(&errors, "latency_budget_ms").message,
        "must be between 100 and 600000, got 50"
    );
    for key in [
        "max_tokens",
        "api_key_env",
        "retry.max_attempts",
        "log.level",
        "privacy.exclude[0]",
        "tiers.flash.output_usd_per_million",
    ] {
        error_for(&errors, key);
    }
}

#[test]
fn toml_syntax_error_says_where() {
    let errors = toml_errors("latency_budget_ms = 2500\nbase_url = \n");
    assert_eq!(errors.len(), 1);
    assert!(errors.0[0].message.contains("line 2"), "{errors}");
}

#[test]
fn json_sources_are_named() {
    let errors = Layer::from_json(
        &json!({ "tiers": { "flash": { "modle": "x" } } }),
        Source::InitializationOptions,
    )
    .unwrap_err();
    assert!(
        errors
            .to_string()
            .starts_with("codetier config: initializationOptions: `tiers.flash.modle`"),
        "{errors}"
    );
    let errors = Layer::from_json(&json!([1]), Source::DidChangeConfiguration).unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("workspace/didChangeConfiguration"),
        "{errors}"
    );
}

#[test]
fn json_nulls_mean_not_set() {
    let layer = Layer::from_json(
        &json!({ "latency_budget_ms": null, "cache": null, "tiers": { "flash": { "model": null } }, "log": { "file": "" } }),
        Source::InitializationOptions,
    )
    .unwrap();
    assert_eq!(layer.get("latency_budget_ms"), None);
    assert_eq!(layer.get("cache"), None);
    assert_eq!(layer.get("log.file"), None);
    assert_eq!(layer.get("tiers.flash"), Some(&json!({})));
}

#[test]
fn user_file_changes_a_model_and_keeps_the_tier_s_other_fields() {
    let (_dir, loader) =
        user("[tiers.flash]\nmodel = \"glm-5\"\n[tiers.reasoning]\nmodel = \"kimi-k2.5\"\n");
    let config = loader.resolve().unwrap();
    let flash = &config.tiers["flash"];
    assert_eq!(flash.model, "glm-5");
    assert_eq!(flash.label, "Flash", "a chosen label stays");
    assert_eq!(
        flash.output_usd_per_million,
        Some(1.92),
        "the price follows the model"
    );
    assert_eq!(flash.fallback.as_deref(), Some("deepseek-coder"));
    assert_eq!(flash.extra_body["thinking"], json!({ "type": "disabled" }));
    let reasoning = &config.tiers["reasoning"];
    assert_eq!(
        reasoning.label, "Kimi K2.5",
        "a label that was the model's name follows the model"
    );
    assert_eq!(reasoning.budget_ms, Some(60_000));
}

#[test]
fn new_tiers_take_known_prices_and_never_invent_one() {
    let (_dir, loader) = user(
        "[tiers.kimi]\nmodel = \"kimi-k2.5\"\n[tiers.local]\nmodel = \"llama3:8b\"\n\
         [tiers.priced]\nmodel = \"mine\"\nlabel = \"Mine\"\noutput_usd_per_million = 1.5\n",
    );
    let config = loader.resolve().unwrap();
    assert_eq!(config.tiers["kimi"].label, "Kimi K2.5");
    assert_eq!(config.tiers["kimi"].output_usd_per_million, Some(3.00));
    assert_eq!(config.tiers["local"].label, "llama3:8b");
    assert_eq!(config.tiers["local"].output_usd_per_million, None);
    assert_eq!(config.tiers["priced"].label, "Mine");
    assert_eq!(config.tiers["priced"].output_usd_per_million, Some(1.5));
    assert_eq!(config.budget_ms("kimi"), config.latency_budget_ms);
}

#[test]
fn a_new_tier_needs_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.toml",
        "[tiers.kimi]\nbudget_ms = 5000\n",
    );
    let errors = loader().with_user_file(Some(&path)).unwrap_err();
    let e = error_for(&errors, "tiers.kimi.model");
    assert_eq!(e.source, Source::UserFile(path));
}

#[test]
fn maps_merge_and_lists_replace_across_layers() {
    let (_dir, mut loader) = user(
        "[actions.review]\nescalate = [\"pro\"]\n[tiers.flash.extra_body]\ntemperature = 0.2\n",
    );
    loader
        .set_init_options(&json!({
            "privacy": { "exclude": ["*.secret"] },
            "tiers": { "flash": { "extra_body": { "thinking": null, "top_p": 0.9 } } }
        }))
        .unwrap();
    let config = loader.resolve().unwrap();
    assert_eq!(config.actions.review.escalate, ["pro"]);
    assert_eq!(config.actions.review.tier, "flash");
    assert_eq!(config.privacy.exclude, ["*.secret"]);
    assert!(config.privacy.redact_secrets);
    let body = &config.tiers["flash"].extra_body;
    assert_eq!(body.get("thinking"), None, "a null removes a key");
    assert_eq!(body["temperature"], json!(0.2));
    assert_eq!(body["top_p"], json!(0.9));
}

#[test]
fn later_layers_win() {
    let dir = tempfile::tempdir().unwrap();
    let user_path = write(
        dir.path(),
        "config.toml",
        "latency_budget_ms = 2000\nmax_tokens = 500\ncommand_reply_ms = 9000\n\
         [context]\nsurrounding_lines = 5\n",
    );
    write(
        dir.path(),
        ".codetier.toml",
        "[context]\nsurrounding_lines = 6\ntoken_budget = 700\n",
    );
    let mut loader = loader()
        .with_user_file(Some(&user_path))
        .unwrap()
        .with_workspace_file(Some(dir.path()))
        .unwrap();
    let config = loader.resolve().unwrap();
    assert_eq!(
        (
            config.context.surrounding_lines,
            config.context.token_budget
        ),
        (6, 700)
    );
    loader
        .set_init_options(&json!({ "max_tokens": 600, "context": { "surrounding_lines": 8 } }))
        .unwrap();
    let config = loader.resolve().unwrap();
    assert_eq!(
        (
            config.latency_budget_ms,
            config.max_tokens,
            config.command_reply_ms,
            config.context.surrounding_lines,
            config.context.token_budget,
        ),
        (2000, 600, 9000, 8, 700)
    );
}

#[test]
fn did_change_accepts_wrapped_and_inner_settings_and_replaces_the_previous_one() {
    let mut loader = loader();
    loader
        .set_did_change(&json!({ "codetier": { "latency_budget_ms": 2000 } }))
        .unwrap();
    assert_eq!(loader.resolve().unwrap().latency_budget_ms, 2000);
    loader
        .set_did_change(&json!({ "max_tokens": 700 }))
        .unwrap();
    let config = loader.resolve().unwrap();
    assert_eq!((config.latency_budget_ms, config.max_tokens), (2500, 700));
    loader.set_did_change(&serde_json::Value::Null).unwrap();
    assert_eq!(
        loader.resolve().unwrap().max_tokens,
        700,
        "null settings change nothing"
    );
}

#[test]
fn last_good_configuration_stays_after_a_bad_did_change() {
    let mut loader = loader();
    loader
        .set_did_change(&json!({ "latency_budget_ms": 2000 }))
        .unwrap();
    let errors = loader
        .set_did_change(
            &json!({ "latency_budget_ms": "fast", "tiers": { "flash": { "modle": "x" } } }),
        )
        .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors}");
    assert_eq!(loader.resolve().unwrap().latency_budget_ms, 2000);
    // Also when the layer parses but breaks the combination.
    let errors = loader
        .set_did_change(&json!({ "actions": { "review": { "tier": "nope" } } }))
        .unwrap_err();
    assert!(errors.names("actions.review.tier"), "{errors}");
    assert_eq!(loader.resolve().unwrap().latency_budget_ms, 2000);
    let info = loader
        .sources()
        .into_iter()
        .find(|s| s.source == Source::DidChangeConfiguration)
        .unwrap();
    assert!(
        matches!(info.state, SourceState::Rejected(_)) && info.in_force,
        "{info}"
    );
}

#[test]
fn bad_init_options_keep_no_layer_and_report() {
    let mut loader = loader();
    let errors = loader
        .set_init_options(&json!({ "max_tokens": -3 }))
        .unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("initializationOptions: `max_tokens`"),
        "{errors}"
    );
    assert_eq!(loader.resolve().unwrap(), Config::default());
}

/// A workspace file with `text` and what the loader made of it.
fn workspace(text: &str) -> (tempfile::TempDir, PathBuf, Loader) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), ".codetier.toml", text);
    let mut loader = loader();
    loader
        .load_workspace_file(Some(dir.path()))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    (dir, path, loader)
}

#[test]
fn workspace_file_may_not_set_user_only_keys_and_the_rest_applies() {
    for (text, key) in [
        ("base_url = \"https://evil.example/v1\"", "base_url"),
        ("api_key_env = \"AWS_SECRET_ACCESS_KEY\"", "api_key_env"),
        ("latency_budget_ms = 600000", "latency_budget_ms"),
        ("command_reply_ms = 100", "command_reply_ms"),
        ("max_tokens = 1000000", "max_tokens"),
        ("[log]\nfile = \"/home/u/.bashrc\"", "log.file"),
        ("[log]\nlevel = \"trace\"", "log.level"),
        ("[cache]\ndir = \"/tmp/x\"", "cache.dir"),
        ("[cache]\nenabled = false", "cache.enabled"),
        ("[hedge]\nenabled = true", "hedge.enabled"),
        ("[retry]\nmax_attempts = 10", "retry.max_attempts"),
        ("[breaker]\nopen_ms = 100", "breaker.open_ms"),
        (
            "[team]\nredis_url_env = \"ATTACKER_REDIS\"",
            "team.redis_url_env",
        ),
        ("[team]\nkey_prefix = \"other\"", "team.key_prefix"),
        ("[team]\nshare_cache = false", "team.share_cache"),
        ("[team]\ndaily_budget_usd = 1000.0", "team.daily_budget_usd"),
        ("[team]\ntimeout_ms = 10000", "team.timeout_ms"),
        (
            "[tiers.flash]\nrequests_per_minute = 100000",
            "tiers.flash.requests_per_minute",
        ),
        (
            "[tiers.flash]\nmodel = \"deepseek-r1\"",
            "tiers.flash.model",
        ),
        (
            "[tiers.flash]\noutput_usd_per_million = 0.000001",
            "tiers.flash.output_usd_per_million",
        ),
        (
            "[tiers.flash]\nextra_body = { n = 64 }",
            "tiers.flash.extra_body",
        ),
        ("[tiers.mine]\nmodel = \"kimi-k2.5\"", "tiers.mine.model"),
        (
            "[privacy]\nredact_secrets = false",
            "privacy.redact_secrets",
        ),
        ("[completion]\nenabled = true", "completion.enabled"),
        ("[completion]\nmenu = true", "completion.menu"),
        ("[completion]\ntier = \"reasoning\"", "completion.tier"),
        ("[completion]\nmode = \"fim\"", "completion.mode"),
        ("[completion]\nbudget_ms = 60000", "completion.budget_ms"),
        ("[completion]\ndebounce_ms = 0", "completion.debounce_ms"),
        ("[completion]\nmax_tokens = 4096", "completion.max_tokens"),
    ] {
        let text = format!("{text}\n[context]\nsurrounding_lines = 7\n");
        let (_dir, path, loader) = workspace(&text);
        let refused = loader.refusals();
        assert_eq!(refused.len(), 1, "{text}: {refused:?}");
        let e = &refused[0];
        assert_eq!(e.key, key, "{text}");
        assert_eq!(e.source, Source::WorkspaceFile(path.clone()));
        let shown = e.to_string();
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert!(shown.contains(&format!("`{key}`")), "{shown}");
        assert!(shown.contains("refused: a workspace file"), "{shown}");
        // The rest of the file applies; the refused key keeps its value.
        let config = loader.resolve().unwrap();
        assert_eq!(config.context.surrounding_lines, 7, "{text}");
        let mut expected = Config::default();
        expected.context.surrounding_lines = 7;
        assert_eq!(config, expected, "{text}");
        let info = loader
            .sources()
            .into_iter()
            .find(|s| s.source == Source::WorkspaceFile(path.clone()))
            .unwrap();
        assert!(info.in_force, "{info}");
        assert!(matches!(info.state, SourceState::Partly(_)), "{info}");
        assert!(info.to_string().contains("refused"), "{info}");
    }
}

#[test]
fn workspace_file_may_tighten_privacy_and_choose_among_the_user_s_tiers() {
    let (_dir, _path, loader) = workspace(
        "[privacy]\nexclude = [\"*.secret\", \".env\"]\nredact_secrets = true\n\
         [actions.review]\ntier = \"coder\"\nescalate = [\"reasoning\"]\n\
         [context]\ntoken_budget = 500\n",
    );
    assert!(loader.refusals().is_empty());
    let config = loader.resolve().unwrap();
    let mut exclude = Config::default().privacy.exclude;
    exclude.push("*.secret".into());
    assert_eq!(
        config.privacy.exclude, exclude,
        "added, never replacing the defaults"
    );
    assert!(config.privacy.redact_secrets);
    assert_eq!(config.actions.review.tier, "coder");
    assert_eq!(config.actions.review.escalate, ["reasoning"]);
    assert_eq!(config.context.token_budget, 500);

    // An empty list removes nothing.
    let (_dir, _path, loader) = workspace("[privacy]\nexclude = []\n");
    assert_eq!(loader.resolve().unwrap().privacy, Config::default().privacy);

    // A tier the user does not have is an error like any unknown tier.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        ".codetier.toml",
        "[actions.review]\ntier = \"mine\"\n",
    );
    let errors = loader_with_workspace_error(dir.path());
    assert!(errors.names("actions.review.tier"), "{errors}");
}

#[test]
fn a_workspace_may_only_turn_completions_off_and_modes_are_checked() {
    let (_dir, _path, off) = workspace("[completion]\nenabled = false\n");
    assert!(off.refusals().is_empty());
    assert!(!off.resolve().unwrap().completion.enabled);
    let (_dir, l) = user("[completion]\nmode = \"FIM\"\nmenu = true\n");
    let config = l.resolve().unwrap();
    assert_eq!(
        (config.completion.mode.as_str(), config.completion.menu),
        ("fim", true)
    );
    let err = toml_errors("[completion]\nmode = \"infill\"\n");
    assert!(
        error_for(&err, "completion.mode")
            .to_string()
            .contains("chat, fim"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "config.toml", "[completion]\ntier = \"nope\"\n");
    let err = loader()
        .with_user_file(Some(&path))
        .expect_err("an unknown tier");
    assert!(err.names("completion.tier"), "{err}");
    let path = write(
        dir.path(),
        "late.toml",
        "[completion]\ndebounce_ms = 2000\nbudget_ms = 1000\n",
    );
    let err = loader()
        .with_user_file(Some(&path))
        .expect_err("a debounce past the budget");
    assert!(err.names("completion.debounce_ms"), "{err}");
}

fn loader_with_workspace_error(root: &Path) -> ConfigErrors {
    loader().load_workspace_file(Some(root)).unwrap_err()
}

#[test]
fn the_user_may_loosen_privacy() {
    let (_dir, alone) = user("[privacy]\nexclude = []\nredact_secrets = false\n");
    let config = alone.resolve().unwrap();
    assert!(config.privacy.exclude.is_empty());
    assert!(!config.privacy.redact_secrets);
    // A workspace then adds to the user's list and may turn redaction back on.
    let dir = tempfile::tempdir().unwrap();
    let user_path = write(
        dir.path(),
        "config.toml",
        "[privacy]\nexclude = []\nredact_secrets = false\n",
    );
    write(
        dir.path(),
        ".codetier.toml",
        "[privacy]\nexclude = [\"*.x\"]\nredact_secrets = true\n",
    );
    let loader = loader()
        .with_user_file(Some(&user_path))
        .unwrap()
        .with_workspace_file(Some(dir.path()))
        .unwrap();
    let config = loader.resolve().unwrap();
    assert_eq!(config.privacy.exclude, ["*.x"]);
    assert!(config.privacy.redact_secrets);
}

#[test]
fn configuration_files_must_be_regular_files_of_at_most_a_mebibyte() {
    let dir = tempfile::tempdir().unwrap();
    // A link to a device: refused before it is opened, so it cannot stream without end.
    for target in ["/dev/zero", "/dev/stdin", "/dev/null"] {
        let link = dir.path().join(".codetier.toml");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).unwrap();
        let errors = loader().load_workspace_file(Some(dir.path())).unwrap_err();
        let shown = errors.to_string();
        assert!(shown.contains("not a regular file"), "{target}: {shown}");
        assert!(shown.contains(&link.display().to_string()), "{shown}");
    }
    let link = dir.path().join(".codetier.toml");
    std::fs::remove_file(&link).unwrap();
    std::fs::create_dir(&link).unwrap();
    let shown = loader()
        .load_workspace_file(Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(shown.contains("not a regular file"), "{shown}");
    std::fs::remove_dir(&link).unwrap();

    // Too large: refused with its size, and the last good configuration stays.
    let big = format!("# {}\n", "x".repeat(MAX_FILE_BYTES as usize));
    let path = write(dir.path(), "config.toml", "max_tokens = 77\n");
    let mut loader = loader().with_user_file(Some(&path)).unwrap();
    std::fs::write(&path, big).unwrap();
    let shown = loader.load_user_file(Some(&path)).unwrap_err().to_string();
    assert!(shown.contains("read up to 1048576 bytes"), "{shown}");
    assert_eq!(loader.resolve().unwrap().max_tokens, 77);
    // Not UTF-8.
    std::fs::write(&path, b"max_tokens = 1\n\xff\xfe\n").unwrap();
    let shown = loader.load_user_file(Some(&path)).unwrap_err().to_string();
    assert!(shown.contains("not UTF-8"), "{shown}");
}

#[test]
fn user_file_and_editor_settings_may_set_the_endpoint() {
    let (_dir, mut loader) =
        user("base_url = \"https://example.com/v1/\"\napi_key_env = \"MY_KEY\"\n");
    let config = loader.resolve().unwrap();
    assert_eq!(config.base_url, "https://example.com/v1");
    assert_eq!(config.api_key_env, "MY_KEY");
    loader
        .set_init_options(&json!({ "base_url": "http://localhost:11434/v1" }))
        .unwrap();
    assert_eq!(
        loader.resolve().unwrap().base_url,
        "http://localhost:11434/v1"
    );
}

#[test]
fn plain_http_only_to_loopback() {
    for ok in [
        "http://127.0.0.1:8080/v1",
        "http://127.9.9.9/v1",
        "http://[::1]:11434/v1",
        "http://localhost:11434/v1",
        "http://LOCALHOST/v1",
        "https://api.openai.com/v1",
    ] {
        assert!(check_base_url(ok).is_ok(), "{ok}");
    }
    for bad in [
        "http://192.168.1.5/v1",
        "http://example.com/v1",
        "http://localhost.evil.com/v1",
        "ftp://x/v1",
        "https://user:pw@example.com/v1",
        "nonsense",
    ] {
        assert!(check_base_url(bad).is_err(), "{bad}");
    }
    let errors = toml_errors("base_url = \"http://api.example.com/v1\"\n");
    assert!(
        error_for(&errors, "base_url")
            .message
            .contains("plain http is refused"),
        "{errors}"
    );
}

#[test]
fn codetier_base_url_overrides_and_is_checked() {
    let (_dir, loader) = user("base_url = \"https://example.com/v1\"\n");
    let config = loader
        .clone()
        .with_env_base_url(Some("http://127.0.0.1:9000/v1".into()))
        .resolve()
        .unwrap();
    assert_eq!(config.base_url, "http://127.0.0.1:9000/v1");
    let errors = loader
        .clone()
        .with_env_base_url(Some("http://example.net/v1".into()))
        .resolve()
        .unwrap_err();
    let e = error_for(&errors, "base_url");
    assert_eq!(e.source, Source::Environment);
    assert!(e.to_string().contains("CODETIER_BASE_URL"), "{e}");
    let sources = loader
        .with_env_base_url(Some("https://x.dev/v1".into()))
        .sources();
    assert_eq!(
        sources.last().map(|s| &s.source),
        Some(&Source::Environment)
    );
}

#[test]
fn escalation_to_an_unknown_tier_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.toml",
        "[actions.review]\nescalate = [\"coder\", \"gpt9\"]\n",
    );
    let errors = loader().with_user_file(Some(&path)).unwrap_err();
    let e = error_for(&errors, "actions.review.escalate[1]");
    assert_eq!(e.source, Source::UserFile(path));
    assert!(e.message.contains("unknown tier `gpt9`"), "{e}");
    assert!(e.message.contains("coder, flash, pro, reasoning"), "{e}");
}

#[test]
fn actions_may_use_tiers_defined_in_the_same_or_a_lower_layer() {
    let (_dir, mut loader) = user("[tiers.kimi]\nmodel = \"kimi-k2.5\"\n");
    loader
        .set_init_options(&json!({ "actions": { "explain": { "escalate": ["kimi"] } } }))
        .unwrap();
    loader
        .set_did_change(&json!({ "tiers": { "glm": { "model": "glm-5" } }, "actions": { "review": { "tier": "glm" } } }))
        .unwrap();
    let config = loader.resolve().unwrap();
    assert_eq!(config.actions.explain.escalate, ["kimi"]);
    assert_eq!(config.actions.review.tier, "glm");
}

#[test]
fn cross_field_and_schema_checks() {
    let errors = Layer::from_json(
        &json!({ "tiers": { "bad name": { "model": "x" }, "flash": { "extra_body": { "model": "y" }, "fallback": "" } } }),
        Source::InitializationOptions,
    )
    .unwrap_err();
    for key in [
        "tiers.bad name",
        "tiers.flash.extra_body.model",
        "tiers.flash.fallback",
    ] {
        error_for(&errors, key);
    }
    let mut loader = loader();
    let errors = loader
        .set_init_options(&json!({ "hedge": { "min_delay_ms": 2000, "max_delay_ms": 1000 } }))
        .unwrap_err();
    error_for(&errors, "hedge.min_delay_ms");
}

#[test]
fn missing_user_file_is_fine_but_a_missing_config_flag_file_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut loader = loader();
    loader.load_workspace_file(Some(dir.path())).unwrap();
    assert_eq!(loader.resolve().unwrap(), Config::default());
    let info = loader.sources();
    assert_eq!(info[1].state, SourceState::NotFound, "{}", info[1]);
    let mut loader = self::loader();
    let missing = dir.path().join("nope.toml");
    // The default user file path may be missing: defaults apply.
    loader.load_user_file_at(&missing, false).unwrap();
    assert_eq!(loader.sources()[1].state, SourceState::NotFound);
    assert_eq!(loader.resolve().unwrap(), Config::default());
    // `--config FILE` names a file that must exist.
    let errors = loader.load_user_file(Some(&missing)).unwrap_err();
    assert!(
        errors.to_string().contains("cannot read the file"),
        "{errors}"
    );
}

#[test]
fn unreadable_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let errors = loader().with_user_file(Some(dir.path())).unwrap_err();
    assert_eq!(
        errors.0[0].source,
        Source::UserFile(dir.path().to_path_buf())
    );
    assert!(
        errors.to_string().contains("not a regular file"),
        "{errors}"
    );
    let path = dir.path().join("binary.toml");
    std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
    let errors = loader().with_user_file(Some(&path)).unwrap_err();
    assert!(
        errors.to_string().contains(&path.display().to_string()),
        "{errors}"
    );
}

#[test]
fn sources_list_what_was_found() {
    let dir = tempfile::tempdir().unwrap();
    let user_path = write(dir.path(), "config.toml", "max_tokens = 900\n");
    let loader = loader()
        .with_user_file(Some(&user_path))
        .unwrap()
        .with_workspace_file(Some(dir.path()))
        .unwrap();
    let lines: Vec<String> = loader.sources().iter().map(ToString::to_string).collect();
    assert_eq!(lines[0], "built-in defaults: applied");
    assert_eq!(
        lines[1],
        format!("user file {}: applied", user_path.display())
    );
    assert_eq!(
        lines[2],
        format!(
            "workspace file {}: not found",
            dir.path().join(".codetier.toml").display()
        )
    );
}

#[test]
fn workspace_file_is_at_the_root() {
    assert_eq!(
        workspace_config_path(Path::new("/repo")),
        PathBuf::from("/repo/.codetier.toml")
    );
}

/// `memory_entries` → `memoryEntries`, as VS Code settings spell keys.
fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn vscode_key(dotted: &str) -> String {
    let parts: Vec<String> = dotted.split('.').map(camel).collect();
    format!("codetier.{}", parts.join("."))
}

/// What VS Code's settings schema must say for one key: the JSON type (nullable: `null` means
/// "not set here, the server's configuration applies"), the bounds, and the scope.
fn check_vscode_setting(
    dotted: &str,
    key: &schema::Key,
    default: &serde_json::Value,
    setting: &serde_json::Value,
) -> Vec<String> {
    let mut problems = Vec::new();
    let name = vscode_key(dotted);
    let types: Vec<&str> = match &setting["type"] {
        serde_json::Value::Array(items) => items.iter().filter_map(|t| t.as_str()).collect(),
        serde_json::Value::String(t) => vec![t.as_str()],
        _ => Vec::new(),
    };
    let want = key.kind.json_type();
    if types != [want, "null"] {
        problems.push(format!(
            "{name}: type should be [\"{want}\", \"null\"], is {types:?}"
        ));
    }
    if !setting["default"].is_null() {
        problems.push(format!(
            "{name}: default should be null (the server's own default applies)"
        ));
    }
    if let schema::Kind::Uint { min, max } = key.kind {
        if setting["minimum"] != json!(min) || setting["maximum"] != json!(max) {
            problems.push(format!(
                "{name}: bounds should be minimum {min}, maximum {max}"
            ));
        }
    }
    let described = setting["markdownDescription"].as_str().unwrap_or("");
    if !matches!(key.kind, schema::Kind::Map { .. }) {
        let shown = match default {
            serde_json::Value::Null => "unset".to_owned(),
            other => other.to_string(),
        };
        let phrase = format!("Server default: `{shown}`");
        if !described.contains(&phrase) {
            problems.push(format!("{name}: description should say {phrase}"));
        }
    }
    if !described.contains(&format!("`{dotted}`")) {
        problems.push(format!(
            "{name}: description should name the server key `{dotted}`"
        ));
    }
    let scope = setting["scope"].as_str().unwrap_or("window");
    let user_scoped = matches!(scope, "machine" | "application");
    match key.trust {
        schema::Trust::User if !user_scoped => problems.push(format!(
            "{name}: only the user may set it, so its scope must be machine or application, is {scope}"
        )),
        schema::Trust::User => {}
        // A key a workspace may only tighten may still be user-scoped in VS Code (the extension
        // cannot merge a folder's additions into the server's defaults); a free one may not.
        schema::Trust::Any if user_scoped => problems.push(format!(
            "{name}: a workspace may set it, so it should not be {scope}-scoped"
        )),
        _ => {}
    }
    problems
}

#[test]
fn the_vscode_extension_declares_every_key_as_the_schema_does() {
    let manifest: serde_json::Value =
        serde_json::from_str(include_str!("../../../editors/vscode/package.json")).unwrap();
    let properties = manifest["contributes"]["configuration"]["properties"]
        .as_object()
        .unwrap();
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let client_only = [
        "codetier.server.path",
        "codetier.server.extraEnv",
        "codetier.trace.server",
    ];
    let mut problems = Vec::new();
    let mut expected = Vec::new();
    for (dotted, key) in schema::leaves(Config::KEYS) {
        let name = vscode_key(&dotted);
        let default = dotted.split('.').fold(&defaults, |v, part| &v[part]);
        match properties.get(&name) {
            Some(setting) => problems.extend(check_vscode_setting(&dotted, key, default, setting)),
            None => problems.push(format!("{name}: missing from package.json")),
        }
        if let schema::Kind::Map { keys, .. } = key.kind {
            let fields = &properties[&name]["additionalProperties"]["properties"];
            for field in keys {
                let f = &fields[camel(field.name)];
                if f["type"] != json!(field.kind.json_type()) {
                    problems.push(format!(
                        "{name}.*.{}: type should be {}",
                        camel(field.name),
                        field.kind.json_type()
                    ));
                }
            }
        }
        expected.push(name);
    }
    for name in properties.keys() {
        if !expected.contains(name) && !client_only.contains(&name.as_str()) {
            problems.push(format!("{name}: in package.json but not a server key"));
        }
    }
    assert!(
        problems.is_empty(),
        "package.json disagrees with the schema:\n{}",
        problems.join("\n")
    );
}

#[test]
fn one_base_url_rule_for_configuration_and_provider() {
    for url in [
        "https://x.example/v1?key=1",
        "https://x.example/v1#frag",
        "https://u:p@x.example/v1",
        "http://10.0.0.1/v1",
        "ftp://x.example/v1",
    ] {
        let config_says = check_base_url(url).is_err();
        assert!(config_says, "{url} accepted by the configuration");
        let provider = crate::provider::Provider::new(crate::provider::Endpoint {
            base_url: url.into(),
            api_key_env: "GLOBAL_API_KEY".into(),
        });
        assert!(provider.is_err(), "{url} accepted by the provider");
    }
    assert!(matches!(
        check_base_url("http://example.com/v1"),
        Err(BaseUrlError::Insecure(_))
    ));
    assert!(
        is_loopback_url("http://[::1]:8080/v1") && !is_loopback_url("http://localhost.evil.com/v1")
    );
}

#[test]
fn the_user_file_sets_the_team_tier_and_bad_values_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.toml",
        "[team]\nredis_url_env = \"TEAM_REDIS\"\nkey_prefix = \"acme\"\nshare_cache = false\n\
         daily_budget_usd = 25.0\n[tiers.flash]\nrequests_per_minute = 600\n",
    );
    let mut user = loader();
    user.load_user_file(Some(&path)).unwrap();
    let config = user.resolve().unwrap();
    assert_eq!(config.team.redis_url_env.as_deref(), Some("TEAM_REDIS"));
    assert_eq!(config.team.key_prefix, "acme");
    assert!(!config.team.share_cache);
    assert_eq!(config.team.daily_budget_usd, Some(25.0));
    assert_eq!(config.tiers["flash"].requests_per_minute, Some(600));
    assert_eq!(Config::default().team.redis_url_env, None);
    assert!(Config::default().team.share_cache);

    for (text, key) in [
        (
            "[team]\nredis_url_env = \"redis://:pw@host\"",
            "team.redis_url_env",
        ),
        ("[team]\ndaily_budget_usd = -1", "team.daily_budget_usd"),
        (
            "[tiers.flash]\nrequests_per_minute = 0",
            "tiers.flash.requests_per_minute",
        ),
    ] {
        let path = write(dir.path(), "bad.toml", text);
        let mut bad = loader();
        let errors = bad.load_user_file(Some(&path)).unwrap_err().to_string();
        assert!(errors.contains(key), "{text}: {errors}");
        assert!(!errors.contains("pw@"), "{text}: {errors}");
    }
}

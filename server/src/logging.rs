//! Logging: `tracing` to stderr and an optional log file, with the API key kept out of every line.
//!
//! Two lines of defence keep the key out of logs. The first is [`Secret`], the only type that
//! carries the key: its `Debug` and `Display` print `***`, so no field, message or error built
//! from it can show the key. The second scrubs every secret passed to [`register_secret`] from
//! each formatted line before it is written, for text that held the key without going through
//! `Secret` (an upstream error body echoing it back, say).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// Environment variables that override the configured level. `CODETIER_LOG` is codetier's own:
/// a bare level (`debug`) raises codetier's events only, dependencies stay at warnings (an
/// editor's log would otherwise fill with HTTP and glob internals), and full directives
/// (`codetier=trace,reqwest=debug`) are taken as written. `RUST_LOG` takes directives, as
/// everywhere in Rust, and adds to a bare `CODETIER_LOG`.
pub const LEVEL_ENV: &[&str] = &["CODETIER_LOG", "RUST_LOG"];

/// The directive the environment asks for, and the variable that decided it, from the values of
/// `CODETIER_LOG` and `RUST_LOG` (blank counts as unset). See [`LEVEL_ENV`].
pub fn env_directive(
    codetier_log: Option<&str>,
    rust_log: Option<&str>,
) -> Option<(&'static str, String)> {
    let codetier_log = codetier_log.map(str::trim).filter(|v| !v.is_empty());
    let rust_log = rust_log.map(str::trim).filter(|v| !v.is_empty());
    match (codetier_log, rust_log) {
        (Some(level), rust) if is_bare_level(level) => {
            let level = level.to_ascii_lowercase();
            let mut directive = String::from("warn");
            if let Some(rust) = rust {
                directive.push(',');
                directive.push_str(rust);
            }
            directive.push_str(&format!(",codetier={level}"));
            Some(("CODETIER_LOG", directive))
        }
        (Some(directives), _) => Some(("CODETIER_LOG", directives.to_owned())),
        (None, Some(rust)) => Some(("RUST_LOG", rust.to_owned())),
        (None, None) => None,
    }
}

fn is_bare_level(value: &str) -> bool {
    crate::config::LOG_LEVELS.contains(&value.to_ascii_lowercase().as_str())
}

/// A secret value (the API key). Prints as `***` however it is formatted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// What a secret is replaced with, in logs and in anything a provider echoed back.
pub const MASK: &str = "***";

/// `s` with every occurrence of `key` replaced by [`MASK`] (unchanged when `key` is empty).
pub fn redact_key(s: &str, key: &str) -> String {
    if key.is_empty() || !s.contains(key) {
        s.to_owned()
    } else {
        s.replace(key, MASK)
    }
}

/// Secrets scrubbed from every log line written through [`init`]'s writers.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Asks the log writers to scrub `secret` from every line from now on.
pub fn register_secret(secret: &Secret) {
    if secret.is_empty() {
        return;
    }
    // Called on every request: the common case (already known) takes only the read lock.
    if SECRETS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|s| s == secret.expose())
    {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret.expose()) {
        secrets.push(secret.expose().to_owned());
    }
}

pub(crate) fn scrub(text: &str) -> Option<String> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return None;
    }
    Some(
        secrets
            .iter()
            .fold(text.to_owned(), |t, s| redact_key(&t, s)),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the log file {}: {source}", path.display())]
    OpenFile { path: PathBuf, source: io::Error },
    #[error("invalid log level {level:?}: {message}")]
    BadLevel { level: String, message: String },
    #[error("logging was already initialised")]
    AlreadyInitialised,
    #[error("cannot change the log level: {0}")]
    Reload(String),
}

/// Keeps logging's handles: change the level later with [`Guard::set_level`].
pub struct Guard {
    filter: reload::Handle<EnvFilter, Registry>,
    /// The environment directive in force, if any; it wins over configured levels.
    env_directive: Option<(&'static str, String)>,
    file: Option<PathBuf>,
}

impl Guard {
    /// Applies a new configured level (after a configuration change). Ignored, and `Ok`, when
    /// `CODETIER_LOG` / `RUST_LOG` set the level.
    pub fn set_level(&self, level: &str) -> Result<(), LogError> {
        if self.env_directive.is_some() {
            return Ok(());
        }
        let filter = level_filter(level)?;
        self.filter
            .reload(filter)
            .map_err(|e| LogError::Reload(e.to_string()))
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The environment variable whose directive overrides the configured level, if any.
    pub fn env_override(&self) -> Option<&'static str> {
        self.env_directive.as_ref().map(|(var, _)| *var)
    }
}

/// Installs the global subscriber: formatted lines to stderr (no ANSI colours unless stderr is
/// a terminal; LSP clients show stderr in their log panel) and, when `file` is given, the same
/// lines appended to that file. `level` is one of `off error warn info debug trace` and applies
/// to codetier's own events (dependencies log warnings only); `CODETIER_LOG` or `RUST_LOG`
/// replace it ([`env_directive`]).
pub fn init(level: &str, file: Option<&Path>) -> Result<Guard, LogError> {
    let mut env_directive = None;
    let mut bad_env = None;
    let var = |name: &str| std::env::var(name).ok();
    if let Some((var, value)) =
        self::env_directive(var("CODETIER_LOG").as_deref(), var("RUST_LOG").as_deref())
    {
        match EnvFilter::try_new(&value) {
            Ok(_) => env_directive = Some((var, value)),
            Err(e) => bad_env = Some(format!("ignoring {var} (as {value:?}): {e}")),
        }
    }
    let filter = match &env_directive {
        Some((var, value)) => EnvFilter::try_new(value).map_err(|e| LogError::BadLevel {
            level: format!("{var}={value}"),
            message: e.to_string(),
        })?,
        None => level_filter(level)?,
    };
    let (filter, handle) = reload::Layer::new(filter);
    let file_layer = match file {
        Some(path) => Some(fmt_layer(Scrub(Arc::new(open_append(path)?)), false)),
        None => None,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer(Scrub(io::stderr), io::stderr().is_terminal()))
        .with(file_layer)
        .try_init()
        .map_err(|_| LogError::AlreadyInitialised)?;
    if let Some(message) = bad_env {
        tracing::warn!("{message}");
    }
    Ok(Guard {
        filter: handle,
        env_directive,
        file: file.map(Path::to_path_buf),
    })
}

/// The filter for a configured level: that level for codetier, warnings for dependencies.
fn level_filter(level: &str) -> Result<EnvFilter, LogError> {
    let level = level.trim().to_ascii_lowercase();
    if !crate::config::LOG_LEVELS.contains(&level.as_str()) {
        let message = format!("expected one of {}", crate::config::LOG_LEVELS.join(", "));
        return Err(LogError::BadLevel { level, message });
    }
    let directive = if level == "off" {
        "off".to_owned()
    } else {
        format!("warn,codetier={level}")
    };
    EnvFilter::try_new(&directive).map_err(|e| LogError::BadLevel {
        level,
        message: e.to_string(),
    })
}

/// The one line format used for every destination.
fn fmt_layer<S, W>(writer: W, ansi: bool) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(true)
}

fn open_append(path: &Path) -> Result<File, LogError> {
    let open = || {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        OpenOptions::new().create(true).append(true).open(path)
    };
    open().map_err(|source| LogError::OpenFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Wraps a writer maker so each formatted event is scrubbed of registered secrets before it is
/// written (the fmt layer writes one whole event per writer it makes).
struct Scrub<M>(M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Scrub<M> {
    type Writer = ScrubWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubWriter {
            inner: self.0.make_writer(),
            buf: Vec::new(),
        }
    }
}

struct ScrubWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> ScrubWriter<W> {
    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        match scrub(&String::from_utf8_lossy(&buf)) {
            Some(clean) => self.inner.write_all(clean.as_bytes())?,
            None => self.inner.write_all(&buf)?,
        }
        self.inner.flush()
    }
}

impl<W: Write> Write for ScrubWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()
    }
}

impl<W: Write> Drop for ScrubWriter<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write; losing the line is the only option.
        let _ = self.write_out();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A shared in-memory log destination.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
        }
    }

    /// Runs `f` under a TRACE-level subscriber built like `init`'s, writing into a buffer.
    fn capture(scrubbed: bool, f: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let make = move || sink.clone();
        let subscriber = tracing_subscriber::registry().with(EnvFilter::new("trace"));
        if scrubbed {
            tracing::subscriber::with_default(subscriber.with(fmt_layer(Scrub(make), false)), f);
        } else {
            tracing::subscriber::with_default(subscriber.with(fmt_layer(make, false)), f);
        }
        buffer.text()
    }

    #[derive(Debug)]
    struct Endpoint {
        #[allow(dead_code)] // read through Debug only
        base_url: String,
        #[allow(dead_code)]
        key: Secret,
    }

    #[test]
    fn secret_formats_as_stars() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s:#?}"), "***");
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[test]
    fn redact_key_replaces_every_occurrence() {
        assert_eq!(redact_key("a sk-1 b sk-1", "sk-1"), "a *** b ***");
        assert_eq!(redact_key("nothing here", "sk-1"), "nothing here");
        assert_eq!(redact_key("empty key", ""), "empty key");
    }

    #[test]
    fn key_carried_in_a_secret_never_reaches_the_log_at_trace() {
        const KEY: &str = "sk-test-4f9c2a7e1b88d0c3";
        let key = Secret::new(KEY);
        let endpoint = Endpoint {
            base_url: "https://global-apis.com/v1".into(),
            key: key.clone(),
        };
        let out = capture(false, || {
            let span = tracing::trace_span!("request", api_key = %key, dbg = ?key, model = "deepseek-v4-flash");
            let _entered = span.enter();
            tracing::trace!(api_key = %key, "sending with key {key} and {:?}", key);
            tracing::debug!(?endpoint, "endpoint");
            tracing::info!(endpoint = ?endpoint, "{endpoint:#?}");
            let error = anyhow::anyhow!("upstream refused key {key}");
            tracing::error!(error = %error, "failed: {error:?}");
        });
        assert!(
            out.contains("TRACE"),
            "the subscriber did not record at trace: {out}"
        );
        assert!(
            out.contains("deepseek-v4-flash"),
            "span fields missing: {out}"
        );
        assert!(out.contains("***"), "the placeholder is missing: {out}");
        assert!(!out.contains(KEY), "the key leaked into the log:\n{out}");
    }

    #[test]
    fn registered_secret_is_scrubbed_even_from_raw_strings() {
        const KEY: &str = "sk-echoed-by-upstream-7d1e";
        register_secret(&Secret::new(KEY));
        let out = capture(true, || {
            // An upstream error body that echoed the key back, logged as plain text.
            let body = format!("{{\"error\":\"invalid api key {KEY}\"}}");
            tracing::trace!(body = %body, "upstream said {body}");
            tracing::warn!("{}", KEY);
        });
        assert!(out.contains("invalid api key ***"), "{out}");
        assert!(!out.contains(KEY), "the key leaked into the log:\n{out}");
    }

    #[test]
    fn codetier_log_raises_codetier_only_and_rust_log_adds_to_it() {
        let d = |c: Option<&str>, r: Option<&str>| env_directive(c, r);
        // The editor set-up's CODETIER_LOG=debug: codetier's own events, not reqwest's or hyper's.
        assert_eq!(
            d(Some("debug"), None),
            Some(("CODETIER_LOG", "warn,codetier=debug".to_owned()))
        );
        assert_eq!(
            d(Some(" TRACE "), None),
            Some(("CODETIER_LOG", "warn,codetier=trace".to_owned()))
        );
        // RUST_LOG decides the other crates, codetier keeps the level asked for.
        assert_eq!(
            d(Some("debug"), Some("hyper_util=debug")),
            Some((
                "CODETIER_LOG",
                "warn,hyper_util=debug,codetier=debug".to_owned()
            ))
        );
        // Directives are taken as written; RUST_LOG alone is RUST_LOG.
        assert_eq!(
            d(Some("codetier=trace,reqwest=debug"), Some("info")),
            Some(("CODETIER_LOG", "codetier=trace,reqwest=debug".to_owned()))
        );
        assert_eq!(d(None, Some("info")), Some(("RUST_LOG", "info".to_owned())));
        assert_eq!(d(Some("  "), None), None);
        assert_eq!(d(None, None), None);
        // What the directive does: reqwest's debug lines are out, codetier's are in.
        let filter = EnvFilter::new("warn,codetier=debug");
        let out = {
            let buffer = Buffer::default();
            let sink = buffer.clone();
            let subscriber = tracing_subscriber::registry()
                .with(filter)
                .with(fmt_layer(move || sink.clone(), false));
            tracing::subscriber::with_default(subscriber, || {
                tracing::debug!(target: "reqwest::connect", "starting new connection");
                tracing::debug!(target: "globset", "built glob set");
                tracing::debug!(target: "codetier::provider", "connection warmed up");
            });
            buffer.text()
        };
        assert!(out.contains("connection warmed up"), "{out}");
        assert!(
            !out.contains("starting new connection") && !out.contains("glob set"),
            "{out}"
        );
    }

    #[test]
    fn level_filter_accepts_levels_and_refuses_others() {
        for level in crate::config::LOG_LEVELS {
            assert!(level_filter(level).is_ok(), "{level}");
        }
        assert!(level_filter(" INFO ").is_ok());
        let err = level_filter("loud").map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("loud"), "{err}");
    }

    #[test]
    fn log_file_is_created_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("codetier.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "earlier line\n").unwrap();
        let file = Arc::new(open_append(&path).unwrap());
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new("trace"))
            .with(fmt_layer(Scrub(file), false));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("hello from the file layer")
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("earlier line\n"), "{text}");
        assert!(text.contains("hello from the file layer"), "{text}");
    }

    #[test]
    fn unopenable_log_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be opened for appending.
        let err = open_append(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
    }

    /// The only test that installs the global subscriber (a process has one).
    #[test]
    fn init_writes_the_file_and_set_level_takes_effect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("codetier.log");
        let guard = init("info", Some(&path)).unwrap();
        assert_eq!(guard.file(), Some(path.as_path()));
        assert!(matches!(
            init("info", None),
            Err(LogError::AlreadyInitialised)
        ));
        tracing::info!("visible at info");
        tracing::debug!("first debug line");
        guard.set_level("debug").unwrap();
        tracing::debug!("second debug line");
        assert!(guard.set_level("loud").is_err());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("visible at info"), "{text}");
        if guard.env_override().is_none() {
            assert!(!text.contains("first debug line"), "{text}");
            assert!(text.contains("second debug line"), "{text}");
        }
    }
}

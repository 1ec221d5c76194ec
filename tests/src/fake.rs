//! The fake provider: an OpenAI-compatible HTTP server on 127.0.0.1 with scripted latency and faults.

mod respond;
mod script;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde::Serialize;

pub use script::{Answer, Behavior, Fault, Latency, LineEnding, Requests, Rule, Script, Trickle};

/// One chat message as the fake received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordedMessage {
    pub role: String,
    pub content: String,
}

/// One request the fake received.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    /// Number among all requests, from 0.
    pub index: usize,
    /// Number among this model's requests, from 0.
    pub model_index: usize,
    pub model: String,
    pub messages: Vec<RecordedMessage>,
    /// It came to `/v1/completions` (fill in the middle: `prompt` and `suffix` in the body)
    /// rather than `/v1/chat/completions`.
    pub fim: bool,
    pub body: serde_json::Value,
    /// Lower-case names; `authorization` is never recorded.
    pub headers: Vec<(String, String)>,
    /// Whether an `Authorization` header was present.
    pub authorization: bool,
    /// Whether it matched `Script::expected_key`, when one is set.
    pub key_matched: Option<bool>,
    /// The client's address: equal addresses mean one reused connection.
    pub peer: SocketAddr,
    #[serde(skip)]
    pub received_at: Instant,
    /// When the client went away before the answer was complete.
    #[serde(skip)]
    pub disconnected_at: Option<Instant>,
    /// When the fake finished sending (or deliberately broke) the answer.
    #[serde(skip)]
    pub completed_at: Option<Instant>,
}

impl RecordedRequest {
    pub fn closed_early(&self) -> bool {
        self.disconnected_at.is_some()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running fake provider. Dropping it stops accepting connections.
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    script: Script,
    requests: Vec<RecordedRequest>,
    per_model: HashMap<String, usize>,
    model_list_peers: Vec<SocketAddr>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FakeProvider {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start(script: Script) -> anyhow::Result<FakeProvider> {
        FakeProvider::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), script).await
    }

    pub async fn start_on(addr: SocketAddr, script: Script) -> anyhow::Result<FakeProvider> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Without TCP_NODELAY, a token written while the previous one is unacknowledged waits
        // for the client's delayed ACK (40 ms on Linux) on a reused connection; real providers
        // do not add that to the time to first token.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "fake provider: cannot set TCP_NODELAY");
            }
        });
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                script,
                ..Inner::default()
            }),
        });
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(fim))
            .route("/v1/models", get(models))
            .route("/_fake/script", post(put_script))
            .with_state(shared.clone());
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake provider stopped");
            }
        });
        Ok(FakeProvider {
            addr,
            shared,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`, the `base_url` to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces the script for requests that arrive from now on.
    pub fn set_script(&self, script: Script) {
        self.shared.lock().script = script;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Client addresses of the `GET /v1/models` requests so far (warm-ups, `doctor`).
    pub fn model_list_peers(&self) -> Vec<SocketAddr> {
        self.shared.lock().model_list_peers.clone()
    }

    /// Forgets recorded requests and restarts request numbering.
    pub fn clear(&self) {
        let mut inner = self.shared.lock();
        inner.requests.clear();
        inner.per_model.clear();
        inner.model_list_peers.clear();
    }

    /// Waits until at least `n` requests arrived, and returns them.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<RecordedRequest>> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return Ok(requests);
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "fake provider: {} of {n} requests after {timeout:?}",
                    requests.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until the client of request `index` went away, and returns when that was seen.
    pub async fn wait_for_disconnect(&self, index: usize, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self
                .shared
                .lock()
                .requests
                .get(index)
                .and_then(|r| r.disconnected_at);
            if seen.is_some() || Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Lives as long as the answer to one request; when dropped before the answer completed,
/// the client went away (hyper drops the body or the handler when the connection closes).
pub(crate) struct DisconnectGuard {
    shared: Arc<Shared>,
    index: usize,
    completed: bool,
}

impl DisconnectGuard {
    pub(crate) fn complete(&mut self) {
        if !self.completed {
            self.completed = true;
            if let Some(r) = self.shared.lock().requests.get_mut(self.index) {
                r.completed_at = Some(Instant::now());
            }
        }
    }
}

impl Drop for DisconnectGuard {
    fn drop(&mut self) {
        if !self.completed {
            if let Some(r) = self.shared.lock().requests.get_mut(self.index) {
                r.disconnected_at.get_or_insert_with(Instant::now);
            }
        }
    }
}

fn error_json(status: StatusCode, message: &str, kind: &str) -> Response {
    let body = serde_json::json!({ "error": { "message": message, "type": kind, "code": status.as_u16() } });
    (status, axum::Json(body)).into_response()
}

fn check_key(script: &Script, headers: &HeaderMap) -> (bool, Option<bool>) {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let matched = script
        .expected_key
        .as_ref()
        .map(|k| auth == Some(format!("Bearer {k}").as_str()));
    (auth.is_some(), matched)
}

async fn models(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let script = {
        let mut inner = shared.lock();
        inner.model_list_peers.push(peer);
        inner.script.clone()
    };
    if check_key(&script, &headers).1 == Some(false) {
        return error_json(
            StatusCode::UNAUTHORIZED,
            "invalid api key",
            "authentication_error",
        );
    }
    let ids = if script.models.is_empty() {
        vec!["fake-model".to_owned()]
    } else {
        script.models
    };
    let data: Vec<_> = ids
        .iter()
        .map(|id| serde_json::json!({ "id": id, "object": "model" }))
        .collect();
    axum::Json(serde_json::json!({ "object": "list", "data": data })).into_response()
}

async fn put_script(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Script>(&body) {
        Ok(script) => {
            shared.lock().script = script;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(shared, peer, headers, body, false).await
}

/// `POST /v1/completions`: a fill-in-the-middle request, answered with `text` choices.
async fn fim(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(shared, peer, headers, body, true).await
}

async fn answer(
    shared: Arc<Shared>,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Bytes,
    fim: bool,
) -> Response {
    let received_at = Instant::now();
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error_json(
            StatusCode::BAD_REQUEST,
            "request body is not JSON",
            "invalid_request_error",
        );
    };
    let model = json
        .get("model")
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_owned();
    let messages = json
        .get("messages")
        .and_then(|m| m.as_array())
        .map(|list| {
            list.iter()
                .map(|m| RecordedMessage {
                    role: m
                        .get("role")
                        .and_then(|r| r.as_str())
                        .unwrap_or("")
                        .to_owned(),
                    content: m
                        .get("content")
                        .and_then(|c| c.as_str())
                        .unwrap_or("")
                        .to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let (behavior, key_ok, index) = {
        let mut inner = shared.lock();
        let (authorization, key_matched) = check_key(&inner.script, &headers);
        let index = inner.requests.len();
        let model_index = {
            let n = inner.per_model.entry(model.clone()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let behavior = inner
            .script
            .behavior_for(&model, index, model_index)
            .clone();
        inner.requests.push(RecordedRequest {
            index,
            model_index,
            model: model.clone(),
            messages,
            fim,
            body: json.clone(),
            headers: headers
                .iter()
                .filter(|(n, _)| n.as_str() != "authorization")
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            authorization,
            key_matched,
            peer,
            received_at,
            disconnected_at: None,
            completed_at: None,
        });
        (behavior, key_matched != Some(false), index)
    };
    let mut guard = DisconnectGuard {
        shared: shared.clone(),
        index,
        completed: false,
    };
    if !key_ok {
        guard.complete();
        return error_json(
            StatusCode::UNAUTHORIZED,
            "invalid api key",
            "authentication_error",
        );
    }
    respond::answer(
        respond::Request {
            json,
            model,
            index,
            behavior,
            key,
            fim,
        },
        guard,
    )
    .await
}

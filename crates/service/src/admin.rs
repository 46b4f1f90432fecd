//! The enterprise's interface to its EESE (TR 33.863 §6.5.2.4–6.5.2.5: the
//! local command to expire keys, te2e set by the enterprise): plain HTTP on
//! `--admin`, every request with `Authorization: Bearer <token>`, JSON in
//! and out, and `GET /metrics` in the Prometheus text format.
//!
//! | method and path | body → answer |
//! |---|---|
//! | `POST /v1/ues/{ue}/expire` | → `{"ue", "expired": true}` |
//! | `POST /v1/expire-all` | → `{"expired": n}` |
//! | `PUT /v1/ues/{ue}/te2e` | `{"secs": n}` → `{"ue", "te2e_secs"}` |
//! | `GET /v1/ues/{ue}` | → the session (KSI, counter, state, te2e left; no key material) |
//! | `POST /v1/ues/{ue}/send` | `{"payload": "<hex>"}` → `{"ue", "outcome": "sent"\|"queued"}` |
//! | `GET /metrics` | → Prometheus text |
//!
//! Errors are `{"error": "<sentence>"}`: 400 bad JSON or values, 401 no or
//! wrong token, 404 unknown UE or path, 413 body over 4 KiB, 503 the EMKS
//! cannot be reached for the UE's root. A refused request changes nothing.

// Handlers' helpers return the ready error response as `Err`; it is built
// once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use crate::ServiceError;
use crate::eese::metrics::Metrics;

/// Largest request body the admin interface reads.
pub const MAX_BODY: usize = 4096;
/// Largest downlink payload, in octets.
pub const MAX_PAYLOAD: usize = 1024;

/// What the enterprise asks of the service loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Expire a UE's keys now.
    Expire(String),
    /// Expire every UE's keys now.
    ExpireAll,
    /// Set a UE's te2e, in seconds.
    Te2e(String, u32),
    /// Show a UE's session.
    Show(String),
    /// Send a downlink payload.
    Send(String, Vec<u8>),
}

/// The service loop's answer: a JSON body, or a status and a sentence.
pub type Reply = Result<Value, (u16, String)>;

/// A command with where its answer goes.
pub struct Request2 {
    /// The command.
    pub command: Command,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Reply>,
}

struct App {
    token: String,
    to_loop: std::sync::Mutex<Sender<Request2>>,
    metrics: Arc<Metrics>,
}

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(app.token.as_bytes())) && !app.token.is_empty() {
        next.run(req).await
    } else {
        err(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
    }
}

async fn run(app: &App, command: Command) -> Response {
    let (tx, rx) = oneshot::channel();
    let sent = app
        .to_loop
        .lock()
        .map(|s| s.send(Request2 { command, reply: tx }).is_ok())
        .unwrap_or(false);
    if !sent {
        return err(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
    }
    match tokio::time::timeout(Duration::from_secs(15), rx).await {
        Ok(Ok(Ok(v))) => Json(v).into_response(),
        Ok(Ok(Err((status, msg)))) => err(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            msg,
        ),
        _ => err(
            StatusCode::SERVICE_UNAVAILABLE,
            "no answer from the service loop in 15 s (the EMKS may be unreachable)",
        ),
    }
}

fn ue_ok(ue: &str) -> Result<(), Response> {
    if (1..=ciot_e2e::wire::hello::MAX_ID_LEN).contains(&ue.len()) {
        Ok(())
    } else {
        Err(err(
            StatusCode::BAD_REQUEST,
            format!("UE identifier must be 1 to 64 octets, got {}", ue.len()),
        ))
    }
}

/// The UE named in the path and the JSON body, each checked, the UE first.
fn ue_and_body<T>(ue: &str, body: Result<Json<T>, JsonRejection>) -> Result<T, Response> {
    ue_ok(ue)?;
    body.map(|Json(b)| b).map_err(|r| body_err(&r))
}

fn body_err(r: &JsonRejection) -> Response {
    let status = match r {
        JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    err(status, format!("bad request body: {}", r.body_text()))
}

async fn expire(State(app): State<Arc<App>>, Path(ue): Path<String>) -> Response {
    if let Err(r) = ue_ok(&ue) {
        return r;
    }
    run(&app, Command::Expire(ue)).await
}

async fn expire_all(State(app): State<Arc<App>>) -> Response {
    run(&app, Command::ExpireAll).await
}

/// `PUT /v1/ues/{ue}/te2e`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Te2eBody {
    /// te2e in seconds, 1 to 2^31 - 1.
    pub secs: u64,
}

async fn te2e(
    State(app): State<Arc<App>>,
    Path(ue): Path<String>,
    body: Result<Json<Te2eBody>, JsonRejection>,
) -> Response {
    let b = match ue_and_body(&ue, body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(secs) = u32::try_from(b.secs)
        .ok()
        .filter(|s| (1..=i32::MAX as u32).contains(s))
    else {
        return err(
            StatusCode::BAD_REQUEST,
            format!("secs must be 1 to {}, got {}", i32::MAX, b.secs),
        );
    };
    run(&app, Command::Te2e(ue, secs)).await
}

async fn show(State(app): State<Arc<App>>, Path(ue): Path<String>) -> Response {
    if let Err(r) = ue_ok(&ue) {
        return r;
    }
    run(&app, Command::Show(ue)).await
}

/// `POST /v1/ues/{ue}/send`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// The payload in hex, at most [`MAX_PAYLOAD`] octets.
    pub payload: String,
}

async fn send(
    State(app): State<Arc<App>>,
    Path(ue): Path<String>,
    body: Result<Json<SendBody>, JsonRejection>,
) -> Response {
    let b = match ue_and_body(&ue, body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(payload) = hex::decode(b.payload.trim()) else {
        return err(StatusCode::BAD_REQUEST, "payload must be hex");
    };
    if payload.is_empty() || payload.len() > MAX_PAYLOAD {
        return err(
            StatusCode::BAD_REQUEST,
            format!(
                "payload must be 1 to {MAX_PAYLOAD} octets, got {}",
                payload.len()
            ),
        );
    }
    run(&app, Command::Send(ue, payload)).await
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

async fn fallback() -> Response {
    err(
        StatusCode::NOT_FOUND,
        "no such endpoint (see docs/DEPLOYMENT.md)",
    )
}

/// Binds the admin interface on `addr` and serves it on a thread of its own.
/// Returns the bound address.
///
/// # Errors
/// [`ServiceError::Usage`] for an empty token; bind errors.
pub fn spawn(
    addr: SocketAddr,
    token: String,
    to_loop: Sender<Request2>,
    metrics: Arc<Metrics>,
) -> Result<SocketAddr, ServiceError> {
    if token.trim().is_empty() {
        return Err(ServiceError::Usage("the admin token is empty".into()));
    }
    let std_listener = std::net::TcpListener::bind(addr)
        .map_err(|e| ServiceError::Io(format!("--admin {addr}: {e}")))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| ServiceError::Io(e.to_string()))?;
    let bound = std_listener
        .local_addr()
        .map_err(|e| ServiceError::Io(e.to_string()))?;
    let app = Arc::new(App {
        token: token.trim().to_string(),
        to_loop: std::sync::Mutex::new(to_loop),
        metrics,
    });
    let router = Router::new()
        .route("/v1/ues/{ue}/expire", post(expire))
        .route("/v1/expire-all", post(expire_all))
        .route("/v1/ues/{ue}/te2e", put(te2e))
        .route("/v1/ues/{ue}", get(show))
        .route("/v1/ues/{ue}/send", post(send))
        .route("/metrics", get(metrics_text))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app);
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(l) = tokio::net::TcpListener::from_std(std_listener) {
                    let _ = axum::serve(l, router).await;
                }
            });
        })
        .map_err(|e| ServiceError::Io(format!("admin thread: {e}")))?;
    Ok(bound)
}

/// A client of the admin interface (`ciot-e2e admin`).
pub struct AdminClient {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl AdminClient {
    /// A client of the admin interface at `url` (`http://host:port`).
    ///
    /// # Errors
    /// [`ServiceError::Usage`] for a URL that is not `http://`.
    pub fn new(url: &str, token: &str) -> Result<Self, ServiceError> {
        if !url.starts_with("http://") {
            return Err(ServiceError::Usage(format!(
                "--eese must be an http:// URL, got {url:?}"
            )));
        }
        Ok(AdminClient {
            base: url.trim_end_matches('/').to_string(),
            token: format!("Bearer {}", token.trim()),
            agent: crate::tls::plain_agent(Duration::from_secs(20)),
        })
    }

    fn ue_url(&self, ue: &str, tail: &str) -> String {
        format!(
            "{}/v1/ues/{}{tail}",
            self.base,
            crate::emks::client::path_segment(ue)
        )
    }

    /// Expires a UE's keys now.
    ///
    /// # Errors
    /// The service's refusal, or [`ServiceError::Unreachable`].
    pub fn expire(&self, ue: &str) -> Result<Value, ServiceError> {
        let r = self
            .agent
            .post(&self.ue_url(ue, "/expire"))
            .header("Authorization", &self.token)
            .send_empty();
        crate::emks::client::answer(r, "expire")
    }

    /// Expires every UE's keys now.
    ///
    /// # Errors
    /// The service's refusal, or [`ServiceError::Unreachable`].
    pub fn expire_all(&self) -> Result<Value, ServiceError> {
        let r = self
            .agent
            .post(&format!("{}/v1/expire-all", self.base))
            .header("Authorization", &self.token)
            .send_empty();
        crate::emks::client::answer(r, "expire --all")
    }

    /// Sets a UE's te2e.
    ///
    /// # Errors
    /// The service's refusal, or [`ServiceError::Unreachable`].
    pub fn te2e(&self, ue: &str, secs: u64) -> Result<Value, ServiceError> {
        let r = self
            .agent
            .put(&self.ue_url(ue, "/te2e"))
            .header("Authorization", &self.token)
            .send_json(Te2eBody { secs });
        crate::emks::client::answer(r, "te2e")
    }

    /// A UE's session.
    ///
    /// # Errors
    /// The service's refusal, or [`ServiceError::Unreachable`].
    pub fn show(&self, ue: &str) -> Result<Value, ServiceError> {
        let r = self
            .agent
            .get(&self.ue_url(ue, ""))
            .header("Authorization", &self.token)
            .call();
        crate::emks::client::answer(r, "show")
    }

    /// Sends a downlink payload.
    ///
    /// # Errors
    /// The service's refusal, or [`ServiceError::Unreachable`].
    pub fn send(&self, ue: &str, payload: &[u8]) -> Result<Value, ServiceError> {
        let r = self
            .agent
            .post(&self.ue_url(ue, "/send"))
            .header("Authorization", &self.token)
            .send_json(SendBody {
                payload: hex::encode(payload),
            });
        crate::emks::client::answer(r, "send")
    }

    /// The metrics text.
    ///
    /// # Errors
    /// The service's refusal, or [`ServiceError::Unreachable`].
    pub fn metrics(&self) -> Result<String, ServiceError> {
        let mut r = self
            .agent
            .get(&format!("{}/metrics", self.base))
            .header("Authorization", &self.token)
            .call()
            .map_err(|e| ServiceError::Unreachable(format!("metrics: {e}")))?;
        if r.status().as_u16() != 200 {
            return Err(ServiceError::Refused {
                status: r.status().as_u16(),
                message: "metrics refused".into(),
            });
        }
        r.body_mut()
            .read_to_string()
            .map_err(|e| ServiceError::Io(format!("metrics: {e}")))
    }
}

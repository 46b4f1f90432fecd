//! The enterprise's interface to its EESE (TR 33.863 §6.5.2.4–6.5.2.5: the
//! local command to expire keys, te2e set by the enterprise): HTTPS only on
//! `--admin`, every request with `Authorization: Bearer <token>`, JSON in
//! and out, and `GET /metrics` in the Prometheus text format.
//!
//! | method and path | body → answer | token |
//! |---|---|---|
//! | `POST /v1/ues/{ue}/expire` | → `{"ue", "ue_hex", "expired": true}` | admin |
//! | `POST /v1/expire-all` | → `{"expired": n}` | admin |
//! | `PUT /v1/ues/{ue}/te2e` | `{"secs": n}` → `{"ue", "ue_hex", "te2e_secs"}` | admin |
//! | `GET /v1/ues/{ue}` | → the session (KSI, counter, state, te2e left; no key material) | admin or read |
//! | `POST /v1/ues/{ue}/send` | `{"payload": "<hex>"}` → `{"ue", "ue_hex", "outcome": "sent"\|"queued"}` | admin |
//! | `GET /metrics` | → Prometheus text | admin or read |
//!
//! **TLS.** The server presents `admin.crt`/`admin.key` of the TLS directory
//! (`ciot-e2e pki init`/`pki issue --role admin`) and asks for no client
//! certificate; the bearer token says who may do what. Plain HTTP to the
//! port fails the TLS handshake. [`AdminClient`] takes only `https://` URLs
//! and trusts only the directory's `ca.crt`.
//!
//! **Tokens.** Two, each read from a file that group and others cannot read
//! and at least [`MIN_TOKEN_LEN`] octets long ([`read_token_file`]): the
//! admin token may do everything, the read token (optional) may only `GET`
//! (show, metrics) and gets 403 for the rest. They are compared in constant
//! time and zeroized on drop.
//!
//! **UE identifiers** are 1 to 64 octets without control characters (C0 or
//! DEL). In a path, `{ue}` is the percent-encoding of the octets, so ids that
//! are not UTF-8 can be named; answers carry `"ue"` (the id as text when it
//! is UTF-8 without control characters, else `null`) and `"ue_hex"` (always).
//!
//! **Bounds** ([`AdminLimits`]): a TLS handshake, a request head and a
//! request body each have a deadline, a connection with no request in flight
//! and no traffic for the idle timeout is closed, and past
//! [`AdminLimits::max_connections`] new connections are closed at once, so
//! idle or half-sent connections cannot use up the process's descriptors.
//!
//! **One runtime.** [`serve`] runs on the caller's tokio runtime and hands
//! commands to the service over a bounded tokio channel; a full channel is
//! answered 503. [`spawn`] runs it on a thread of its own for a service loop
//! that reads a std channel.
//!
//! Errors are `{"error": "<sentence>"}`: 400 bad JSON, values or UE id, 401
//! no or wrong token, 403 the read token asking to change something, 404
//! unknown UE or path, 408 a body not sent in time, 413 body over 4 KiB, 503
//! the service busy or the EMKS unreachable for the UE's root. A refused
//! request changes nothing.

// Handlers' helpers return the ready error response as `Err`; it is built
// once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ciot_e2e::endpoint::UeId;
use hyper_util::rt::{TokioIo, TokioTimer};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;
use zeroize::Zeroizing;

use crate::ServiceError;
use crate::eese::metrics::Metrics;

/// Largest request body the admin interface reads.
pub const MAX_BODY: usize = 4096;
/// Largest downlink payload, in octets.
pub const MAX_PAYLOAD: usize = 1024;
/// Shortest bearer token accepted, in octets.
pub const MIN_TOKEN_LEN: usize = 32;
/// Commands [`spawn`] lets wait for the service loop before answering 503.
pub const QUEUE: usize = 64;
/// The admin interface's certificate and key in a TLS directory:
/// `admin.crt`, `admin.key`.
pub const CERT_STEM: &str = "admin";

/// What the enterprise asks of the service loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Expire a UE's keys now.
    Expire(UeId),
    /// Expire every UE's keys now.
    ExpireAll,
    /// Set a UE's te2e, in seconds.
    Te2e(UeId, u32),
    /// Show a UE's session.
    Show(UeId),
    /// Send a downlink payload.
    Send(UeId, Vec<u8>),
}

impl Command {
    /// The UE the command is about (none for [`Command::ExpireAll`]).
    #[must_use]
    pub fn ue(&self) -> Option<&UeId> {
        match self {
            Command::Expire(u) | Command::Te2e(u, _) | Command::Show(u) | Command::Send(u, _) => {
                Some(u)
            }
            Command::ExpireAll => None,
        }
    }
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

/// A UE id as answers show it: the text when the octets are UTF-8 without
/// control characters, else `null`.
#[must_use]
pub fn ue_text(id: &UeId) -> Value {
    match std::str::from_utf8(id.as_bytes()) {
        Ok(s) if !s.chars().any(char::is_control) => Value::String(s.to_string()),
        _ => Value::Null,
    }
}

/// A UE id for a sentence: the text when it is UTF-8 without control
/// characters, else the octets in hex.
#[must_use]
pub fn ue_label(id: &UeId) -> String {
    match ue_text(id) {
        Value::String(s) => s,
        _ => hex::encode(id.as_bytes()),
    }
}

/// The octets that stay as they are in a path segment: `A-Z a-z 0-9 - . _ ~`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A UE id as a path segment: its octets percent-encoded.
#[must_use]
pub fn ue_segment(id: &[u8]) -> String {
    percent_encode(id, SEGMENT).to_string()
}

/// Reads a UE id from a path segment: strict percent-encoding, 1 to 64
/// octets, no control characters (C0, DEL).
///
/// # Errors
/// A sentence saying what is wrong.
pub fn parse_ue_segment(seg: &str) -> Result<UeId, String> {
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(
                    "UE identifier: '%' must be followed by two hex digits (percent-encoding)"
                        .into(),
                );
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let octets: Vec<u8> = percent_decode_str(seg).collect();
    check_ue(&octets)
}

/// Checks a UE id's octets: 1 to 64, no control characters (C0, DEL).
///
/// # Errors
/// A sentence saying what is wrong.
pub fn check_ue(octets: &[u8]) -> Result<UeId, String> {
    if !(1..=ciot_e2e::wire::hello::MAX_ID_LEN).contains(&octets.len()) {
        return Err(format!(
            "UE identifier must be 1 to 64 octets, got {}",
            octets.len()
        ));
    }
    if let Some(c) = octets.iter().find(|&&c| c < 0x20 || c == 0x7f) {
        return Err(format!(
            "UE identifier must hold no control characters, got 0x{c:02x}"
        ));
    }
    UeId::new(octets).map_err(|e| format!("UE identifier: {e}"))
}

/// Reads a bearer token from `path`: the file must not be readable by group
/// or others, and the token (trimmed) must be at least [`MIN_TOKEN_LEN`]
/// visible ASCII characters.
///
/// # Errors
/// [`ServiceError::Usage`] with a sentence naming the file (and its mode
/// when that is the trouble).
pub fn read_token_file(path: &Path) -> Result<Zeroizing<String>, ServiceError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ServiceError::Usage(format!("token file {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ServiceError::Usage(format!(
                "token file {} has mode {mode:04o}: group or others may read it; \
                 make it 0600 (chmod 600 {})",
                path.display(),
                path.display()
            )));
        }
    }
    let _ = meta;
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| ServiceError::Usage(format!("token file {}: {e}", path.display())))?,
    );
    let token = Zeroizing::new(text.trim().to_string());
    check_token(&token)
        .map_err(|m| ServiceError::Usage(format!("token file {}: {m}", path.display())))?;
    Ok(token)
}

fn check_token(t: &str) -> Result<(), String> {
    if t.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "the token is {} octets; at least {MIN_TOKEN_LEN} are needed \
             (ciot-e2e pki init writes 64 hex digits)",
            t.len()
        ));
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the token must be visible ASCII characters (no spaces)".into());
    }
    Ok(())
}

/// Deadlines and caps of the admin server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminLimits {
    /// A TLS handshake not done in this long ends the connection.
    pub handshake_timeout: Duration,
    /// A request head not received in this long (from the first wait for
    /// it, idle keep-alive included) ends the connection.
    pub header_read_timeout: Duration,
    /// A request body not received in this long is answered 408.
    pub body_read_timeout: Duration,
    /// A connection with no request in flight and no traffic for this long
    /// is closed.
    pub idle_timeout: Duration,
    /// Most connections at once; past it new ones are closed at once.
    pub max_connections: usize,
    /// How long a request waits for the service loop's answer (503 then).
    pub answer_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            max_connections: 256,
            answer_timeout: Duration::from_secs(15),
        }
    }
}

/// How the admin server runs.
#[derive(Clone)]
pub struct AdminConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The server's TLS configuration (no client certificates).
    pub tls: Arc<rustls::ServerConfig>,
    /// The admin token: may do everything.
    pub token: Zeroizing<String>,
    /// The read token: may only show sessions and read metrics.
    pub read_token: Option<Zeroizing<String>>,
    /// Deadlines and caps.
    pub limits: AdminLimits,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("read_token", &self.read_token.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl AdminConfig {
    /// The configuration from files: `admin.crt`/`admin.key` of `tls_dir`,
    /// the admin token from `token_file`, the read token from
    /// `read_token_file` if given; default limits.
    ///
    /// # Errors
    /// [`ServiceError::Tls`] for a missing or bad certificate or key,
    /// [`ServiceError::Usage`] for a token file that is missing, readable by
    /// others, or too short, or a read token equal to the admin token.
    pub fn from_files(
        listen: SocketAddr,
        tls_dir: &Path,
        token_file: &Path,
        read_token_file: Option<&Path>,
    ) -> Result<Self, ServiceError> {
        let tls = crate::tls::server_config_no_client_auth(tls_dir, CERT_STEM)?;
        let token = self::read_token_file(token_file)?;
        let read_token = read_token_file.map(self::read_token_file).transpose()?;
        let cfg = AdminConfig {
            listen,
            tls,
            token,
            read_token,
            limits: AdminLimits::default(),
        };
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), ServiceError> {
        check_token(&self.token).map_err(|m| ServiceError::Usage(format!("admin token: {m}")))?;
        if let Some(r) = &self.read_token {
            check_token(r).map_err(|m| ServiceError::Usage(format!("read token: {m}")))?;
            if bool::from(r.as_bytes().ct_eq(self.token.as_bytes())) {
                return Err(ServiceError::Usage(
                    "the read token equals the admin token; give it a token of its own".into(),
                ));
            }
        }
        if self.limits.max_connections == 0 {
            return Err(ServiceError::Usage(
                "the admin interface needs max_connections of at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Who a request is, as its bearer token says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Admin,
    Read,
}

struct App {
    token: Zeroizing<String>,
    read_token: Option<Zeroizing<String>>,
    to_loop: mpsc::Sender<Request2>,
    metrics: Arc<Metrics>,
    limits: AdminLimits,
}

impl App {
    fn role(&self, headers: &HeaderMap) -> Option<Role> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .trim()
            .as_bytes();
        // Both compared every time, each in constant time.
        let admin = bool::from(given.ct_eq(self.token.as_bytes()));
        let read = self
            .read_token
            .as_ref()
            .is_some_and(|r| bool::from(given.ct_eq(r.as_bytes())));
        if given.is_empty() {
            None
        } else if admin {
            Some(Role::Admin)
        } else if read {
            Some(Role::Read)
        } else {
            None
        }
    }
}

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

/// Authenticates, then reads the whole body within its deadline.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    match app.role(req.headers()) {
        None => {
            return err(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
            );
        }
        Some(Role::Read) if req.method() != Method::GET => {
            return err(
                StatusCode::FORBIDDEN,
                "the read token may only show sessions and read metrics; \
                 expire, te2e and send need the admin token",
            );
        }
        Some(_) => {}
    }
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(
        app.limits.body_read_timeout,
        axum::body::to_bytes(body, MAX_BODY),
    )
    .await
    {
        Err(_) => {
            return err(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ms",
                    app.limits.body_read_timeout.as_millis()
                ),
            );
        }
        Ok(Err(_)) => {
            return err(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over {MAX_BODY} octets (or was cut short)"),
            );
        }
        Ok(Ok(b)) => b,
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn run(app: &App, command: Command) -> Response {
    let ue = command.ue().copied();
    let (tx, rx) = oneshot::channel();
    match app.to_loop.try_send(Request2 { command, reply: tx }) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            return err(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service has too many admin commands waiting; try again",
            );
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return err(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
        }
    }
    match tokio::time::timeout(app.limits.answer_timeout, rx).await {
        Ok(Ok(Ok(mut v))) => {
            if let (Some(id), Some(m)) = (ue, v.as_object_mut()) {
                m.insert("ue".into(), ue_text(&id));
                m.insert("ue_hex".into(), Value::String(hex::encode(id.as_bytes())));
            }
            Json(v).into_response()
        }
        Ok(Ok(Err((status, msg)))) => err(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            msg,
        ),
        Ok(Err(_)) => err(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping"),
        Err(_) => err(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no answer from the service loop in {} s (the EMKS may be unreachable)",
                app.limits.answer_timeout.as_secs()
            ),
        ),
    }
}

/// The UE of a `/v1/ues/{ue}…` path, read from the raw (percent-encoded)
/// path so that ids that are not UTF-8 can be named.
struct Ue(UeId);

impl<S: Send + Sync> FromRequestParts<S> for Ue {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let seg = parts.uri.path().split('/').nth(3).unwrap_or("");
        parse_ue_segment(seg)
            .map(Ue)
            .map_err(|m| err(StatusCode::BAD_REQUEST, m))
    }
}

fn body_err(r: &JsonRejection) -> Response {
    let status = match r {
        JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    err(status, format!("bad request body: {}", r.body_text()))
}

/// The UE of the path and the JSON body, each checked, the UE first.
fn ue_and_body<T>(
    ue: Result<Ue, Response>,
    body: Result<Json<T>, JsonRejection>,
) -> Result<(UeId, T), Response> {
    let Ue(id) = ue?;
    let b = body.map(|Json(b)| b).map_err(|r| body_err(&r))?;
    Ok((id, b))
}

async fn expire(State(app): State<Arc<App>>, ue: Result<Ue, Response>) -> Response {
    match ue {
        Ok(Ue(id)) => run(&app, Command::Expire(id)).await,
        Err(r) => r,
    }
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
    ue: Result<Ue, Response>,
    body: Result<Json<Te2eBody>, JsonRejection>,
) -> Response {
    let (id, b) = match ue_and_body(ue, body) {
        Ok(x) => x,
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
    run(&app, Command::Te2e(id, secs)).await
}

async fn show(State(app): State<Arc<App>>, ue: Result<Ue, Response>) -> Response {
    match ue {
        Ok(Ue(id)) => run(&app, Command::Show(id)).await,
        Err(r) => r,
    }
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
    ue: Result<Ue, Response>,
    body: Result<Json<SendBody>, JsonRejection>,
) -> Response {
    let (id, b) = match ue_and_body(ue, body) {
        Ok(x) => x,
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
    run(&app, Command::Send(id, payload)).await
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

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/ues/{ue}/expire", post(expire))
        .route("/v1/expire-all", post(expire_all))
        .route("/v1/ues/{ue}/te2e", put(te2e))
        .route("/v1/ues/{ue}", get(show))
        .route("/v1/ues/{ue}/send", post(send))
        .route("/metrics", get(metrics_text))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Binds the admin interface on `cfg.listen` and spawns its accept loop on
/// the caller's tokio runtime (it runs while the runtime does). Commands go
/// to `to_loop`; when it is full the request is answered 503. Returns the
/// bound address.
///
/// # Errors
/// [`ServiceError::Usage`] for a token under [`MIN_TOKEN_LEN`] octets, equal
/// tokens or no connections allowed; [`ServiceError::Io`] for bind errors.
pub async fn serve(
    cfg: AdminConfig,
    to_loop: mpsc::Sender<Request2>,
    metrics: Arc<Metrics>,
) -> Result<SocketAddr, ServiceError> {
    cfg.check()?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| ServiceError::Io(format!("--admin {}: {e}", cfg.listen)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| ServiceError::Io(e.to_string()))?;
    let limits = cfg.limits;
    let app = Arc::new(App {
        token: cfg.token,
        read_token: cfg.read_token,
        to_loop,
        metrics,
        limits,
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg.tls);
    tokio::spawn(accept_loop(listener, acceptor, router(app), limits));
    Ok(bound)
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    limits: AdminLimits,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            // Out of descriptors or similar: wait a little rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over the cap: closed at once (dropped).
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            connection(tcp, acceptor, router, limits).await;
            drop(slot);
        });
    }
}

/// When a connection last moved octets, and how many requests it has in
/// flight.
struct Activity {
    start: tokio::time::Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that notes when octets move.
struct Watched<T> {
    inner: T,
    act: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.act.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.act.touch();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    limits: AdminLimits,
) {
    // A handshake that stalls or fails (plain HTTP, another CA) ends the
    // connection and nothing else.
    let Ok(Ok(tls)) = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await
    else {
        return;
    };
    let act = Arc::new(Activity {
        start: tokio::time::Instant::now(),
        last_ms: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let io = TokioIo::new(Watched {
        inner: tls,
        act: act.clone(),
    });
    let svc_act = act.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let router = router.clone();
        let act = svc_act.clone();
        act.in_flight.fetch_add(1, Ordering::Relaxed);
        async move {
            let r = router.oneshot(req.map(Body::new)).await;
            act.in_flight.fetch_sub(1, Ordering::Relaxed);
            act.touch();
            r
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 << 10)
        .keep_alive(true);
    let conn = builder.serve_connection(io, svc);
    let tick = (limits.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let idle = async {
        loop {
            tokio::time::sleep(tick).await;
            if act.in_flight.load(Ordering::Relaxed) == 0 && act.idle_for() >= limits.idle_timeout {
                return;
            }
        }
    };
    tokio::select! {
        _ = conn => {}
        () = idle => {}
    }
}

/// Runs [`serve`] on a thread of its own (a current-thread runtime) and
/// hands its commands on to `to_loop`, for a service loop that reads a std
/// channel. Returns the bound address.
///
/// # Errors
/// As [`serve`]; [`ServiceError::Io`] when the thread cannot start.
pub fn spawn(
    cfg: AdminConfig,
    to_loop: std::sync::mpsc::Sender<Request2>,
    metrics: Arc<Metrics>,
) -> Result<SocketAddr, ServiceError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(ServiceError::Io(format!("admin runtime: {e}"))));
                    return;
                }
            };
            rt.block_on(async move {
                let (tx, mut rx) = mpsc::channel(QUEUE);
                match serve(cfg, tx, metrics).await {
                    Ok(a) => {
                        let _ = ready_tx.send(Ok(a));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
                while let Some(r) = rx.recv().await {
                    if to_loop.send(r).is_err() {
                        return;
                    }
                }
            });
        })
        .map_err(|e| ServiceError::Io(format!("admin thread: {e}")))?;
    ready_rx
        .recv()
        .map_err(|_| ServiceError::Io("the admin thread ended before it listened".into()))?
}

/// A client of the admin interface (`ciot-e2e admin`).
pub struct AdminClient {
    base: String,
    auth: Zeroizing<String>,
    agent: ureq::Agent,
}

impl AdminClient {
    /// A client of the admin interface at `url` (`https://host:port`) that
    /// trusts only `ca.crt` of `tls_dir` and sends `token`.
    ///
    /// # Errors
    /// [`ServiceError::Usage`] for a URL that is not `https://`;
    /// [`ServiceError::Tls`] for a missing or bad `ca.crt`.
    pub fn new(url: &str, tls_dir: &Path, token: &str) -> Result<Self, ServiceError> {
        if !url.starts_with("https://") {
            return Err(ServiceError::Usage(format!(
                "--eese must be an https:// URL (the admin interface speaks TLS only), got {url:?}"
            )));
        }
        Ok(AdminClient {
            base: url.trim_end_matches('/').to_string(),
            auth: Zeroizing::new(format!("Bearer {}", token.trim())),
            agent: crate::tls::ca_agent(tls_dir, Duration::from_secs(20))?,
        })
    }

    /// As [`AdminClient::new`], the token read by [`read_token_file`].
    ///
    /// # Errors
    /// As [`AdminClient::new`] and [`read_token_file`].
    pub fn from_files(url: &str, tls_dir: &Path, token_file: &Path) -> Result<Self, ServiceError> {
        let token = read_token_file(token_file)?;
        Self::new(url, tls_dir, &token)
    }

    fn ue_url(&self, ue: &[u8], tail: &str) -> String {
        format!("{}/v1/ues/{}{tail}", self.base, ue_segment(ue))
    }

    /// Expires a UE's keys now.
    ///
    /// # Errors
    /// The service's refusal, or [`ServiceError::Unreachable`].
    pub fn expire(&self, ue: impl AsRef<[u8]>) -> Result<Value, ServiceError> {
        let r = self
            .agent
            .post(&self.ue_url(ue.as_ref(), "/expire"))
            .header("Authorization", self.auth.as_str())
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
            .header("Authorization", self.auth.as_str())
            .send_empty();
        crate::emks::client::answer(r, "expire --all")
    }

    /// Sets a UE's te2e.
    ///
    /// # Errors
    /// The service's refusal, or [`ServiceError::Unreachable`].
    pub fn te2e(&self, ue: impl AsRef<[u8]>, secs: u64) -> Result<Value, ServiceError> {
        let r = self
            .agent
            .put(&self.ue_url(ue.as_ref(), "/te2e"))
            .header("Authorization", self.auth.as_str())
            .send_json(Te2eBody { secs });
        crate::emks::client::answer(r, "te2e")
    }

    /// A UE's session.
    ///
    /// # Errors
    /// The service's refusal, or [`ServiceError::Unreachable`].
    pub fn show(&self, ue: impl AsRef<[u8]>) -> Result<Value, ServiceError> {
        let r = self
            .agent
            .get(&self.ue_url(ue.as_ref(), ""))
            .header("Authorization", self.auth.as_str())
            .call();
        crate::emks::client::answer(r, "show")
    }

    /// Sends a downlink payload.
    ///
    /// # Errors
    /// The service's refusal, or [`ServiceError::Unreachable`].
    pub fn send(&self, ue: impl AsRef<[u8]>, payload: &[u8]) -> Result<Value, ServiceError> {
        let r = self
            .agent
            .post(&self.ue_url(ue.as_ref(), "/send"))
            .header("Authorization", self.auth.as_str())
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
            .header("Authorization", self.auth.as_str())
            .call()
            .map_err(|e| ServiceError::Unreachable(format!("metrics: {e}")))?;
        let status = r.status().as_u16();
        if status != 200 {
            let message = r
                .body_mut()
                .with_config()
                .limit(1 << 16)
                .read_json::<Value>()
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "metrics refused".into());
            return Err(ServiceError::Refused { status, message });
        }
        r.body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| ServiceError::Io(format!("metrics: {e}")))
    }
}

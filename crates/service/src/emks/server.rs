//! The EMKS's HTTPS server: a TLS accept loop that reads who the client is
//! from its certificate, and an axum router over the [`RootStore`]. Every
//! request but a successful long-poll leaves a line in the audit log
//! ([`super::audit`]) before its answer leaves.

// Handlers' helpers return the ready error response as `Err`; it is built
// once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use super::api::{
    ChangeEntry, ChangesResponse, ErrorBody, MAX_BODY, MAX_RANDS, MAX_WAIT_SECS, ProvisionRequest,
    ProvisionResponse, RandRequest, RandResponse, RevokeResponse, RootResponse, check_ue,
    ue_display, ue_text,
};
use super::audit::{AuditLog, Line};
use super::kek::{Kek, kek_path};
use super::store::{Expect, RootStore, needs_identity};
use crate::ServiceError;
use crate::tls::Peer;

/// How the EMKS runs.
pub struct EmksConfig {
    /// Where to listen (HTTPS).
    pub listen: SocketAddr,
    /// The database file (mode 0600).
    pub db: PathBuf,
    /// `ca.crt`, `emks.crt`, `emks.key`.
    pub tls_dir: PathBuf,
    /// The key-encryption key file; `None`: `emks.kek` in `tls_dir`.
    pub kek_file: Option<PathBuf>,
    /// The audit log; `None`: the database's name with `.audit.jsonl`
    /// appended.
    pub audit: Option<PathBuf>,
}

impl EmksConfig {
    /// A configuration with the default KEK file and audit log.
    #[must_use]
    pub fn new(listen: SocketAddr, db: PathBuf, tls_dir: PathBuf) -> Self {
        EmksConfig {
            listen,
            db,
            tls_dir,
            kek_file: None,
            audit: None,
        }
    }

    /// The KEK file in use.
    #[must_use]
    pub fn kek_path(&self) -> PathBuf {
        kek_path(self.kek_file.as_deref(), &self.tls_dir)
    }

    /// The audit log in use.
    #[must_use]
    pub fn audit_path(&self) -> PathBuf {
        self.audit.clone().unwrap_or_else(|| {
            let mut s = self.db.clone().into_os_string();
            s.push(".audit.jsonl");
            PathBuf::from(s)
        })
    }
}

struct App {
    store: RootStore,
    /// The store's identity, 32 hex digits.
    store_id: String,
    /// The newest change's sequence number, for the long-poll.
    latest: watch::Sender<u64>,
    audit: AuditLog,
}

type Shared = Arc<App>;

/// Who is on a connection.
#[derive(Clone)]
struct Conn {
    peer: Peer,
    addr: String,
}

impl Conn {
    fn name(&self) -> String {
        match &self.peer {
            Peer::Hss => "hss".into(),
            Peer::Eese(e) => format!("eese:{e}"),
            Peer::Other(cn) if cn.is_empty() => self.addr.clone(),
            Peer::Other(cn) => cn.clone(),
        }
    }
}

/// Marks a response whose audit line is written already.
#[derive(Clone, Copy)]
struct Audited;

/// The sentence of an error response, for the audit line.
#[derive(Clone)]
struct ErrorText(String);

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    let msg = msg.into();
    let mut r = (status, Json(ErrorBody { error: msg.clone() })).into_response();
    r.extensions_mut().insert(ErrorText(msg));
    r
}

fn internal(e: &ServiceError) -> Response {
    err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn refusal(e: ServiceError) -> Response {
    match e {
        ServiceError::Refused { status, message } => err(
            StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
            message,
        ),
        e => internal(&e),
    }
}

fn json_err(r: &JsonRejection) -> Response {
    let status = match r {
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    err(status, format!("bad request body: {}", r.body_text()))
}

/// The raw `{ue}` segment of `/v1/ues/{ue}/root`.
fn ue_segment(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/ues/")?.strip_suffix("/root")
}

/// The UE of `/v1/ues/{ue}/root`: the percent-decoded octets of the raw
/// path segment, 1 to 64 of them, no control character.
fn ue_id(uri: &Uri) -> Result<Vec<u8>, Response> {
    let seg =
        ue_segment(uri.path()).ok_or_else(|| err(StatusCode::NOT_FOUND, "no such endpoint"))?;
    let id: Vec<u8> = percent_encoding::percent_decode_str(seg).collect();
    check_ue(&id).map_err(|m| err(StatusCode::BAD_REQUEST, m))?;
    Ok(id)
}

fn only_hss(peer: &Peer) -> Result<(), Response> {
    match peer {
        Peer::Hss => Ok(()),
        other => Err(err(
            StatusCode::FORBIDDEN,
            format!("only the HSS provisions or revokes roots; this certificate is {other:?}"),
        )),
    }
}

fn only_eese(peer: &Peer) -> Result<&str, Response> {
    match peer {
        Peer::Eese(e) => Ok(e),
        other => Err(err(
            StatusCode::FORBIDDEN,
            format!("only an EESE may do this; this certificate is {other:?}"),
        )),
    }
}

/// Runs a store mutation on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ServiceError::Io(e.to_string())))
}

fn audited(mut r: Response) -> Response {
    r.extensions_mut().insert(Audited);
    r
}

async fn provision(
    State(app): State<Shared>,
    Extension(conn): Extension<Conn>,
    uri: Uri,
    body: Result<Json<ProvisionRequest>, JsonRejection>,
) -> Response {
    if let Err(r) = only_hss(&conn.peer) {
        return r;
    }
    let id = match ue_id(&uri) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let req = match body {
        Ok(Json(b)) => b,
        Err(r) => return json_err(&r),
    };
    if !crate::pki::valid_enterprise(&req.enterprise) {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "enterprise: 1 to 32 of a-z, 0-9 and -",
        );
    }
    let kdf = req.kdf.unwrap_or_else(|| "3gpp".into());
    if kdf != "3gpp" && kdf != "hkdf" {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("kdf must be 3gpp or hkdf, got {kdf:?}"),
        );
    }
    let mut root = zeroize::Zeroizing::new([0u8; 32]);
    let root_hex = zeroize::Zeroizing::new(req.root);
    if hex::decode_to_slice(root_hex.trim(), &mut *root).is_err() {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "root must be 64 hex digits (e2e_int_key)",
        );
    }
    if bool::from(root.ct_eq(&[0u8; 32])) {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "root must not be all zeros",
        );
    }
    let expect = req
        .expected_generation
        .map_or(Expect::Any, Expect::Generation);
    let enterprise = req.enterprise.clone();
    let app2 = app.clone();
    let id2 = id.clone();
    let r = blocking(move || {
        let peer = conn.name();
        app2.store
            .provision_checked(&id2, &enterprise, &kdf, &root, expect, |g| {
                app2.audit.write(&Line {
                    peer: &peer,
                    addr: &conn.addr,
                    action: "provision",
                    ue: Some(&id2),
                    result: &format!("200 generation {g}"),
                })
            })
    })
    .await;
    match r {
        Ok((generation, seq)) => {
            app.latest.send_replace(seq);
            audited(
                Json(ProvisionResponse {
                    ue: ue_text(&id),
                    ue_hex: hex::encode(&id),
                    enterprise: req.enterprise,
                    generation,
                })
                .into_response(),
            )
        }
        Err(e) => refusal(e),
    }
}

async fn revoke(State(app): State<Shared>, Extension(conn): Extension<Conn>, uri: Uri) -> Response {
    if let Err(r) = only_hss(&conn.peer) {
        return r;
    }
    let id = match ue_id(&uri) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let app2 = app.clone();
    let id2 = id.clone();
    let r = blocking(move || {
        let peer = conn.name();
        app2.store.revoke(&id2, |done| {
            app2.audit.write(&Line {
                peer: &peer,
                addr: &conn.addr,
                action: "revoke",
                ue: Some(&id2),
                result: &format!("200 generation {} revoked", done.generation),
            })
        })
    })
    .await;
    match r {
        Ok(done) => {
            app.latest.send_replace(done.seq);
            audited(
                Json(RevokeResponse {
                    ue: ue_text(&id),
                    ue_hex: hex::encode(&id),
                    enterprise: done.enterprise,
                    generation: done.generation,
                    revoked: true,
                })
                .into_response(),
            )
        }
        Err(e) => refusal(e),
    }
}

async fn fetch_root(
    State(app): State<Shared>,
    Extension(conn): Extension<Conn>,
    uri: Uri,
) -> Response {
    let enterprise = match only_eese(&conn.peer) {
        Ok(e) => e.to_string(),
        Err(r) => return r,
    };
    let id = match ue_id(&uri) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match app.store.root(&id) {
        // Another enterprise's UE is reported exactly like an unknown one:
        // an EESE learns nothing about UEs that are not its own.
        Ok(Some(r)) if r.enterprise == enterprise => Json(RootResponse {
            ue: ue_text(&id),
            ue_hex: hex::encode(&id),
            store: app.store_id.clone(),
            generation: r.generation,
            root: hex::encode(*r.root),
            kdf: r.kdf.clone(),
        })
        .into_response(),
        Ok(_) => err(
            StatusCode::NOT_FOUND,
            format!("no UE {} in enterprise {enterprise:?}", ue_display(&id)),
        ),
        Err(e) => internal(&e),
    }
}

/// Writes the audit line of every request its handler did not log (all
/// but provisionings and revocations that succeeded, and successful
/// long-polls, which are not logged). A line that cannot be written turns
/// the answer into a 500: nothing leaves unaudited.
async fn audit_layer(
    State(app): State<Shared>,
    Extension(conn): Extension<Conn>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    if resp.extensions().get::<Audited>().is_some() {
        return resp;
    }
    let ue: Option<Vec<u8>> = ue_segment(&path)
        .map(|s| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>())
        .filter(|id| check_ue(id).is_ok());
    let action = match (&method, path.as_str()) {
        (&Method::PUT, _) if ue.is_some() => "provision",
        (&Method::DELETE, _) if ue.is_some() => "revoke",
        (&Method::GET, _) if ue.is_some() => "root_fetch",
        (_, "/v1/rand") => "rand",
        (_, "/v1/changes") => "changes",
        _ => "request",
    };
    let status = resp.status();
    if action == "changes" && status.is_success() {
        return resp;
    }
    let result = match resp.extensions().get::<ErrorText>() {
        Some(ErrorText(m)) => format!("{} {m}", status.as_u16()),
        None if status.is_success() => format!("{} ok", status.as_u16()),
        None => format!("{} {}", status.as_u16(), method.as_str()),
    };
    let written = app.audit.write(&Line {
        peer: &conn.name(),
        addr: &conn.addr,
        action,
        ue: ue.as_deref(),
        result: &result,
    });
    match written {
        Ok(()) => resp,
        Err(e) => internal(&e),
    }
}

async fn rand(
    Extension(conn): Extension<Conn>,
    body: Result<Json<RandRequest>, JsonRejection>,
) -> Response {
    if let Err(r) = only_eese(&conn.peer) {
        return r;
    }
    let req = match body {
        Ok(Json(b)) => b,
        Err(JsonRejection::MissingJsonContentType(_)) => RandRequest::default(),
        Err(r) => return json_err(&r),
    };
    let n = req.count.unwrap_or(1);
    if !(1..=MAX_RANDS).contains(&n) {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("count must be 1 to {MAX_RANDS}, got {n}"),
        );
    }
    let mut rands = Vec::with_capacity(n);
    for _ in 0..n {
        let mut r = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut r) {
            return err(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no randomness: {e}"),
            );
        }
        rands.push(hex::encode(r));
    }
    Json(RandResponse { rands }).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    wait: u64,
}

async fn changes(
    State(app): State<Shared>,
    Extension(conn): Extension<Conn>,
    query: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let enterprise = match only_eese(&conn.peer) {
        Ok(e) => e.to_string(),
        Err(r) => return r,
    };
    let Ok(Query(q)) = query else {
        return err(
            StatusCode::BAD_REQUEST,
            "query: since and wait must be non-negative integers",
        );
    };
    let wait = Duration::from_secs(q.wait.min(MAX_WAIT_SECS));
    let mut rx = app.latest.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let latest = *rx.borrow_and_update();
        // A caller ahead of the log (its first call, or an EMKS restored
        // from a backup) starts over from where the log stands.
        let ahead = q.since > latest;
        let (list, reset) = match app.store.changes(&enterprise, q.since, 1000) {
            Ok(x) => x,
            Err(e) => return internal(&e),
        };
        let reset = reset || ahead;
        // Past every change looked at, so the caller does not see them again.
        let next = list.last().map_or(latest.max(q.since), |c| c.seq);
        if !list.is_empty() || reset || tokio::time::Instant::now() >= deadline {
            return Json(ChangesResponse {
                store: app.store_id.clone(),
                next: if reset { latest } else { next },
                changes: list
                    .into_iter()
                    .map(|c| ChangeEntry {
                        ue: ue_text(&c.ue),
                        ue_hex: hex::encode(&c.ue),
                        generation: c.generation,
                        revoked: c.revoked,
                    })
                    .collect(),
                reset,
            })
            .into_response();
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            continue;
        }
    }
}

async fn fallback() -> Response {
    err(
        StatusCode::NOT_FOUND,
        "no such endpoint (see docs/DEPLOYMENT.md)",
    )
}

fn router(app: Shared) -> Router {
    Router::new()
        .route(
            "/v1/ues/{ue}/root",
            get(fetch_root).put(provision).delete(revoke),
        )
        .route("/v1/rand", post(rand))
        .route("/v1/changes", get(changes))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            audit_layer,
        ))
        .with_state(app)
}

/// Opens the KEK for `cfg`: the file when it exists; a new one when it
/// does not and the database has no identity yet (missing, empty, or of
/// the first, clear format); refused otherwise.
fn open_kek(cfg: &EmksConfig) -> Result<Kek, ServiceError> {
    let path = cfg.kek_path();
    if path.exists() {
        return Kek::load(&path);
    }
    if needs_identity(&cfg.db)? {
        return Kek::create(&path);
    }
    Err(ServiceError::Usage(format!(
        "KEK {} is missing, and database {} holds roots sealed under a KEK: \
         give --kek-file with the KEK it was written with",
        path.display(),
        cfg.db.display()
    )))
}

/// Runs the EMKS until the process ends. `ready` is called with the bound
/// address once it listens.
///
/// # Errors
/// Configuration, TLS, KEK, database, audit log and bind errors before it
/// serves.
pub fn serve(cfg: &EmksConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), ServiceError> {
    serve_until(cfg, ready, &Arc::new(AtomicBool::new(false)))
}

/// How long a stop waits for connections still in their TLS handshake.
const HANDSHAKES_AT_STOP: Duration = Duration::from_secs(1);

/// A connection in its TLS handshake: counted until dropped, and audited.
/// The task that runs the handshake writes its outcome's line and calls
/// [`InHandshake::end`]; one dropped before that (the EMKS stopped while the
/// handshake ran, and its task was cancelled) writes the line itself, so
/// every connection refused or cut off before its handshake completed leaves
/// one.
struct InHandshake {
    count: Arc<AtomicUsize>,
    app: Arc<App>,
    addr: String,
    open: bool,
}

impl InHandshake {
    fn new(count: &Arc<AtomicUsize>, app: &Arc<App>, addr: String) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        InHandshake {
            count: Arc::clone(count),
            app: Arc::clone(app),
            addr,
            open: true,
        }
    }

    /// The handshake is over; `refused` says why it failed (its audit line).
    fn end(mut self, refused: Option<&str>) {
        if let Some(why) = refused {
            self.audit(why);
        }
        self.open = false;
    }

    fn audit(&self, result: &str) {
        let _ = self.app.audit.write(&Line {
            peer: &self.addr,
            addr: &self.addr,
            action: "tls_handshake",
            ue: None,
            result,
        });
    }
}

impl Drop for InHandshake {
    fn drop(&mut self) {
        if self.open {
            self.audit("failed: the EMKS stopped during the handshake");
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// As [`serve`], until `stop` is set (looked at every 50 ms); then, once the
/// connections still in their TLS handshake ended (or after
/// `HANDSHAKES_AT_STOP`), the database and the audit log are closed and it
/// returns.
///
/// # Errors
/// As [`serve`].
pub fn serve_until(
    cfg: &EmksConfig,
    ready: impl FnOnce(SocketAddr),
    stop: &Arc<AtomicBool>,
) -> Result<(), ServiceError> {
    let tls = crate::tls::server_config(&cfg.tls_dir, "emks")?;
    let kek = open_kek(cfg)?;
    let store = RootStore::open(&cfg.db, &kek)?;
    drop(kek);
    let audit = AuditLog::open(&cfg.audit_path())?;
    let latest = store.last_change()?;
    let app = Arc::new(App {
        store_id: store.id_hex(),
        store,
        latest: watch::Sender::new(latest),
        audit,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServiceError::Io(format!("runtime: {e}")))?;
    let r = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| ServiceError::Io(format!("bind {}: {e}", cfg.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServiceError::Io(e.to_string()))?;
        ready(addr);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let router = router(app.clone());
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        // Connections still in their TLS handshake: a stop waits for them
        // (within HANDSHAKES_AT_STOP), so that they end with their own
        // outcome; one still running after that is audited as cut off.
        let handshakes = Arc::new(AtomicUsize::new(0));
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tick.tick() => {
                    if stop.load(Ordering::Relaxed) {
                        let until = tokio::time::Instant::now() + HANDSHAKES_AT_STOP;
                        while handshakes.load(Ordering::Acquire) > 0
                            && tokio::time::Instant::now() < until
                        {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        return Ok(());
                    }
                    continue;
                }
            };
            let Ok((tcp, remote)) = accepted else {
                continue;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            let app = app.clone();
            let addr = remote.to_string();
            let in_handshake = InHandshake::new(&handshakes, &app, addr.clone());
            tokio::spawn(async move {
                // A handshake that stalls or fails (no certificate, another
                // CA) ends the connection, and leaves an audit line.
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(tls)) => {
                        in_handshake.end(None);
                        tls
                    }
                    Ok(Err(e)) => {
                        in_handshake.end(Some(&format!("failed: {e}")));
                        return;
                    }
                    Err(_) => {
                        in_handshake.end(Some("failed: no handshake within 10 s"));
                        return;
                    }
                };
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map_or(Peer::Other(String::new()), |c| Peer::from_cert(c));
                let svc = TowerToHyperService::new(router.layer(Extension(Conn { peer, addr })));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    r
}

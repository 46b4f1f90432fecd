//! The EMKS's HTTPS server: a TLS accept loop that reads who the client is
//! from its certificate, and an axum router over the [`RootStore`].

// Handlers' helpers return the ready error response as `Err`; it is built
// once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::sync::watch;

use super::api::{
    ChangeEntry, ChangesResponse, ErrorBody, MAX_BODY, MAX_RANDS, MAX_WAIT_SECS, ProvisionRequest,
    ProvisionResponse, RandRequest, RandResponse, RootResponse,
};
use super::store::RootStore;
use crate::ServiceError;
use crate::tls::Peer;

/// How the EMKS runs.
pub struct EmksConfig {
    /// Where to listen (HTTPS).
    pub listen: SocketAddr,
    /// The database file.
    pub db: PathBuf,
    /// `ca.crt`, `emks.crt`, `emks.key`.
    pub tls_dir: PathBuf,
}

struct App {
    store: RootStore,
    /// The newest change's sequence number, for the long-poll.
    latest: watch::Sender<u64>,
}

type Shared = Arc<App>;

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(ErrorBody { error: msg.into() })).into_response()
}

fn internal(e: &ServiceError) -> Response {
    err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn json_err(r: &JsonRejection) -> Response {
    let status = match r {
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    err(status, format!("bad request body: {}", r.body_text()))
}

fn ue_id(ue: &str) -> Result<&[u8], Response> {
    if (1..=ciot_e2e::wire::hello::MAX_ID_LEN).contains(&ue.len()) {
        Ok(ue.as_bytes())
    } else {
        Err(err(
            StatusCode::BAD_REQUEST,
            format!("UE identifier must be 1 to 64 octets, got {}", ue.len()),
        ))
    }
}

fn only_hss(peer: &Peer) -> Result<(), Response> {
    match peer {
        Peer::Hss => Ok(()),
        other => Err(err(
            StatusCode::FORBIDDEN,
            format!("only the HSS provisions roots; this certificate is {other:?}"),
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

async fn provision(
    State(app): State<Shared>,
    Extension(peer): Extension<Peer>,
    Path(ue): Path<String>,
    body: Result<Json<ProvisionRequest>, JsonRejection>,
) -> Response {
    if let Err(r) = only_hss(&peer) {
        return r;
    }
    let id = match ue_id(&ue) {
        Ok(id) => id.to_vec(),
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
    if hex::decode_to_slice(req.root.trim(), &mut *root).is_err() {
        return err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "root must be 64 hex digits (e2e_int_key)",
        );
    }
    let enterprise = req.enterprise.clone();
    let app2 = app.clone();
    let r =
        tokio::task::spawn_blocking(move || app2.store.provision(&id, &enterprise, &kdf, &root))
            .await;
    match r {
        Ok(Ok((generation, seq))) => {
            app.latest.send_replace(seq);
            Json(ProvisionResponse {
                ue,
                enterprise: req.enterprise,
                generation,
            })
            .into_response()
        }
        Ok(Err(ServiceError::Refused { status, message })) => err(
            StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
            message,
        ),
        Ok(Err(e)) => internal(&e),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn fetch_root(
    State(app): State<Shared>,
    Extension(peer): Extension<Peer>,
    Path(ue): Path<String>,
) -> Response {
    let enterprise = match only_eese(&peer) {
        Ok(e) => e.to_string(),
        Err(r) => return r,
    };
    let id = match ue_id(&ue) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match app.store.root(id) {
        // Another enterprise's UE is reported exactly like an unknown one:
        // an EESE learns nothing about UEs that are not its own.
        Ok(Some(r)) if r.enterprise == enterprise => Json(RootResponse {
            ue,
            generation: r.generation,
            root: hex::encode(*r.root),
            kdf: r.kdf.clone(),
        })
        .into_response(),
        Ok(_) => err(
            StatusCode::NOT_FOUND,
            format!("no UE {ue:?} in enterprise {enterprise:?}"),
        ),
        Err(e) => internal(&e),
    }
}

async fn rand(
    Extension(peer): Extension<Peer>,
    body: Result<Json<RandRequest>, JsonRejection>,
) -> Response {
    if let Err(r) = only_eese(&peer) {
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
    Extension(peer): Extension<Peer>,
    query: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let enterprise = match only_eese(&peer) {
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
                next: if reset { latest } else { next },
                changes: list
                    .into_iter()
                    .map(|c| ChangeEntry {
                        ue: String::from_utf8_lossy(&c.ue).into_owned(),
                        generation: c.generation,
                        revoked: false,
                    })
                    .collect(),
                reset,
                store: String::new(),
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
        .route("/v1/ues/{ue}/root", get(fetch_root).put(provision))
        .route("/v1/rand", post(rand))
        .route("/v1/changes", get(changes))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Runs the EMKS until the process ends. `ready` is called with the bound
/// address once it listens.
///
/// # Errors
/// Configuration, TLS, database and bind errors before it serves.
pub fn serve(cfg: &EmksConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), ServiceError> {
    let tls = crate::tls::server_config(&cfg.tls_dir, "emks")?;
    let store = RootStore::open(&cfg.db)?;
    let latest = store.last_change()?;
    let app = Arc::new(App {
        store,
        latest: watch::Sender::new(latest),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServiceError::Io(format!("runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| ServiceError::Io(format!("bind {}: {e}", cfg.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServiceError::Io(e.to_string()))?;
        ready(addr);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let router = router(app);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                // A handshake that stalls or fails (no certificate, another
                // CA) ends the connection and nothing else.
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map_or(Peer::Other(String::new()), |c| Peer::from_cert(c));
                let svc = TowerToHyperService::new(router.layer(Extension(peer)));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    })
}

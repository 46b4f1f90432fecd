//! The webhook sender against a loopback webhook that checks every
//! Standard Webhooks signature itself (HMAC-SHA256 computed here, not by the
//! sender's code): delivery through 500s, exactly once by id and in order
//! per UE; a sender aborted and started again on the reopened state file;
//! an unreachable webhook that comes up; records past the max age.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ciot_e2e::endpoint::UeId;
use ciot_e2e_service::eese::metrics::Metrics;
use ciot_e2e_service::eese::state::{Outbox, StateStore, Uplink};
use ciot_e2e_service::eese::webhook::{self, WebhookConfig, WebhookSecret};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the webhook saw.
#[derive(Default)]
struct Seen {
    /// Requests so far (drives the 500s).
    requests: u64,
    /// Ids answered 2xx, in the order answered, with their body.
    delivered: Vec<(String, serde_json::Value)>,
    /// Every id's body, from its first attempt (retries must repeat it).
    bodies: HashMap<String, Vec<u8>>,
    /// Attempts per id.
    attempts: HashMap<String, u32>,
    /// Requests whose signature, timestamp or id did not check out.
    bad: Vec<String>,
    /// Retries of one id with another body.
    changed: Vec<String>,
}

struct Hook {
    seen: Mutex<Seen>,
    /// Percent of requests answered 500.
    fail_pct: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Checks the request as a Standard Webhooks receiver does.
fn verify(headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(format!("no {n}"))
    };
    let id = h("webhook-id")?;
    let ts = h("webhook-timestamp")?;
    let sig = h("webhook-signature")?;
    let t: u64 = ts.parse().map_err(|_| "timestamp".to_string())?;
    if t.abs_diff(now_secs()) > 300 {
        return Err(format!("timestamp {t} too far from now"));
    }
    let key = B64
        .decode(SECRET.strip_prefix("whsec_").expect("prefix"))
        .expect("key");
    let ok = sig.split(' ').any(|s| {
        let Some(b64) = s.strip_prefix("v1,") else {
            return false;
        };
        let Ok(tag) = B64.decode(b64) else {
            return false;
        };
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("hmac");
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    });
    if !ok {
        return Err(format!("bad signature on {id}"));
    }
    Ok(id)
}

async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut s = hook.seen.lock().expect("lock");
    let id = match verify(&headers, &body) {
        Ok(id) => id,
        Err(e) => {
            s.bad.push(e);
            return StatusCode::UNAUTHORIZED;
        }
    };
    match s.bodies.get(&id) {
        Some(b) if b.as_slice() != &body[..] => s.changed.push(id.clone()),
        Some(_) => {}
        None => {
            s.bodies.insert(id.clone(), body.to_vec());
        }
    }
    *s.attempts.entry(id.clone()).or_default() += 1;
    s.requests += 1;
    // A fixed pseudo-random pattern: the same run every time.
    let n = s.requests.wrapping_mul(2_654_435_761) % 100;
    if n < hook.fail_pct {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json body");
    s.delivered.push((id, v));
    StatusCode::NO_CONTENT
}

/// Serves the webhook on `listener`; abort the handle to stop it.
async fn serve(listener: tokio::net::TcpListener, hook: Arc<Hook>) -> JoinHandle<()> {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(hook);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

fn hook(fail_pct: u64) -> Arc<Hook> {
    Arc::new(Hook {
        seen: Mutex::new(Seen::default()),
        fail_pct,
    })
}

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ciot-webhook-{name}-{}.redb", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn config(addr: SocketAddr) -> WebhookConfig {
    let mut c = WebhookConfig::new(
        &format!("http://{addr}/hook"),
        Some(WebhookSecret::parse(SECRET).expect("secret")),
    )
    .expect("config");
    c.backoff_min = Duration::from_millis(5);
    c.backoff_max = Duration::from_millis(60);
    c.poll = Duration::from_millis(50);
    c.timeout = Duration::from_secs(2);
    c
}

fn ue(i: usize) -> UeId {
    UeId::new(format!("ue-{i}").as_bytes()).expect("id")
}

/// `per_ue` records for each of `ues` UEs, interleaved, seq counting from
/// `from`.
fn uplinks(ues: usize, per_ue: usize, from: u64) -> Vec<Uplink> {
    let mut v = Vec::new();
    for s in 0..per_ue {
        for u in 0..ues {
            let seq = from + s as u64;
            v.push(Uplink {
                ue: ue(u),
                payload: format!("u{u}s{seq}").into_bytes(),
                ksi: 1,
                seq,
                received_ms: now_ms(),
            });
        }
    }
    v
}

async fn wait_empty(outbox: &Outbox, within: Duration) {
    let end = tokio::time::Instant::now() + within;
    while outbox.depth().expect("depth") > 0 {
        assert!(
            tokio::time::Instant::now() < end,
            "still {} records in the outbox",
            outbox.depth().expect("depth")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every record delivered exactly once by id, in order per UE, with the
/// body it was committed with; no bad signature, no id whose body changed.
fn check(seen: &Seen, ids: &[String], expected: &[Uplink], allow_duplicates: bool) {
    assert!(seen.bad.is_empty(), "{:?}", seen.bad);
    assert!(seen.changed.is_empty(), "{:?}", seen.changed);
    let got: HashSet<&String> = seen.delivered.iter().map(|(id, _)| id).collect();
    let want: HashSet<&String> = ids.iter().collect();
    assert_eq!(got, want);
    if !allow_duplicates {
        assert_eq!(
            seen.delivered.len(),
            ids.len(),
            "a record was delivered twice"
        );
    }
    // In order per UE (first delivery of each id).
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut first = HashSet::new();
    for (id, v) in &seen.delivered {
        if !first.insert(id) {
            continue;
        }
        let ue = v["ue"].as_str().expect("ue").to_string();
        let seq = v["seq"].as_u64().expect("seq");
        if let Some(prev) = last.insert(ue.clone(), seq) {
            assert!(seq > prev, "{ue}: seq {seq} after {prev}");
        }
    }
    // The body is the record's.
    let by_id: HashMap<&String, &serde_json::Value> =
        seen.delivered.iter().map(|(id, v)| (id, v)).collect();
    for (id, u) in ids.iter().zip(expected) {
        let v = by_id[id];
        assert_eq!(v["type"], "uplink");
        assert_eq!(
            v["ue"],
            String::from_utf8(u.ue.as_bytes().to_vec()).expect("utf8")
        );
        assert_eq!(v["ue_hex"], hex::encode(u.ue.as_bytes()));
        assert_eq!(v["payload"], hex::encode(&u.payload));
        assert_eq!(v["seq"], u.seq);
        assert_eq!(v["ksi"], u.ksi);
        assert_eq!(v["received_at"], u.received_ms);
    }
}

fn ids(outbox: &Outbox, n: usize) -> Vec<String> {
    (0..n as u64).map(|k| outbox.message_id(k)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_delivered_once_by_id_in_order_per_ue_through_500s() {
    let p = temp("500s");
    let mut state = StateStore::open(&p).expect("state");
    let first = uplinks(5, 8, 0);
    state.commit([], &first).expect("commit");
    let outbox = state.outbox();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let h = hook(30);
    let server = serve(listener, h.clone()).await;
    let metrics = Arc::new(Metrics::default());
    let wake = Arc::new(Notify::new());
    let sender = tokio::spawn(webhook::run(
        outbox.clone(),
        config(addr),
        metrics.clone(),
        wake.clone(),
    ));
    // More arrive while it runs (the service loop's commit, then a wake-up).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = uplinks(5, 4, 8);
    state.commit([], &second).expect("commit");
    wake.notify_one();
    wait_empty(&outbox, Duration::from_secs(30)).await;
    sender.abort();
    server.abort();

    let all: Vec<Uplink> = first.into_iter().chain(second).collect();
    let seen = h.seen.lock().expect("lock");
    check(&seen, &ids(&outbox, all.len()), &all, false);
    // The 500s were retried under the same id.
    assert!(seen.attempts.values().any(|&n| n > 1));
    assert_eq!(
        metrics.webhook_delivered.load(Ordering::Relaxed),
        all.len() as u64
    );
    assert!(metrics.webhook_retries.load(Ordering::Relaxed) > 0);
    assert_eq!(
        metrics.webhook_retries.load(Ordering::Relaxed),
        seen.requests - all.len() as u64
    );
    let text = metrics.render();
    assert!(
        text.contains("ciot_eese_webhook_delivered_total 60\n"),
        "{text}"
    );
    drop(seen);
    drop(state);
    let _ = std::fs::remove_file(&p);
}

/// Opens the state file again once every handle of the previous opening
/// (the aborted sender's posts in flight hold some) has gone.
async fn reopen(p: &Path) -> StateStore {
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match StateStore::open(p) {
            Ok(s) => return s,
            Err(e) => {
                assert!(tokio::time::Instant::now() < end, "reopen: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_aborted_midway_and_started_again_on_the_reopened_state_file_delivers_the_rest() {
    let p = temp("restart");
    let all = uplinks(4, 15, 0);
    let identity;
    {
        let mut state = StateStore::open(&p).expect("state");
        identity = state.identity();
        state.commit([], &all).expect("commit");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let h = hook(30);
    let server = serve(listener, h.clone()).await;

    let state = StateStore::open(&p).expect("state");
    let sender = tokio::spawn(webhook::run(
        state.outbox(),
        config(addr),
        Arc::new(Metrics::default()),
        Arc::new(Notify::new()),
    ));
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while h.seen.lock().expect("lock").delivered.len() < all.len() / 3 {
        assert!(tokio::time::Instant::now() < end, "nothing delivered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sender.abort();
    let _ = sender.await;
    let before: HashMap<String, Vec<u8>> = h.seen.lock().expect("lock").bodies.clone();
    let left = state.outbox().depth().expect("depth");
    assert!(left > 0, "all delivered before the abort: nothing tested");
    drop(state);

    let state = reopen(&p).await;
    assert_eq!(state.identity(), identity);
    let outbox = state.outbox();
    let sender = tokio::spawn(webhook::run(
        outbox.clone(),
        config(addr),
        Arc::new(Metrics::default()),
        Arc::new(Notify::new()),
    ));
    wait_empty(&outbox, Duration::from_secs(30)).await;
    sender.abort();
    server.abort();

    let seen = h.seen.lock().expect("lock");
    // Records posted before the abort were posted again (if at all) under
    // the same id with the same body (`changed` is empty), and every record
    // is there, in order per UE. At least once: a record whose 2xx came
    // just as the sender stopped may be there twice, under one id.
    check(&seen, &ids(&outbox, all.len()), &all, true);
    for (id, body) in &before {
        assert_eq!(&seen.bodies[id], body);
    }
    drop(seen);
    drop(state);
    let _ = std::fs::remove_file(&p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_is_retried_until_it_is_up() {
    let p = temp("down");
    let mut state = StateStore::open(&p).expect("state");
    let all = uplinks(3, 5, 0);
    state.commit([], &all).expect("commit");
    let outbox = state.outbox();
    // A port nothing listens on (yet).
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let metrics = Arc::new(Metrics::default());
    let sender = tokio::spawn(webhook::run(
        outbox.clone(),
        config(addr),
        metrics.clone(),
        Arc::new(Notify::new()),
    ));
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while metrics.webhook_retries.load(Ordering::Relaxed) < 10 {
        assert!(tokio::time::Instant::now() < end, "no retries");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        outbox.depth().expect("depth"),
        all.len() as u64,
        "nothing lost"
    );
    assert_eq!(
        metrics.webhook_queue_depth.load(Ordering::Relaxed),
        all.len() as u64
    );
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let h = hook(0);
    let server = serve(listener, h.clone()).await;
    wait_empty(&outbox, Duration::from_secs(30)).await;
    sender.abort();
    server.abort();
    check(
        &h.seen.lock().expect("lock"),
        &ids(&outbox, all.len()),
        &all,
        false,
    );
    drop(state);
    let _ = std::fs::remove_file(&p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_older_than_the_max_age_are_dropped_and_counted() {
    let p = temp("expiry");
    let mut state = StateStore::open(&p).expect("state");
    let mut old = uplinks(2, 3, 0);
    for u in &mut old {
        u.received_ms -= 2 * 3600 * 1000;
    }
    let fresh = uplinks(2, 2, 3);
    state.commit([], &old).expect("commit");
    state.commit([], &fresh).expect("commit");
    let outbox = state.outbox();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let h = hook(0);
    let server = serve(listener, h.clone()).await;
    let metrics = Arc::new(Metrics::default());
    let mut cfg = config(addr);
    cfg.max_age = Duration::from_secs(3600);
    let sender = tokio::spawn(webhook::run(
        outbox.clone(),
        cfg,
        metrics.clone(),
        Arc::new(Notify::new()),
    ));
    wait_empty(&outbox, Duration::from_secs(30)).await;
    sender.abort();
    server.abort();
    assert_eq!(
        metrics.webhook_expired.load(Ordering::Relaxed),
        old.len() as u64
    );
    let fresh_ids: Vec<String> = (old.len()..old.len() + fresh.len())
        .map(|k| outbox.message_id(k as u64))
        .collect();
    check(&h.seen.lock().expect("lock"), &fresh_ids, &fresh, false);
    assert!(
        metrics
            .render()
            .contains("ciot_eese_webhook_expired_total 6\n")
    );
    drop(state);
    let _ = std::fs::remove_file(&p);
}

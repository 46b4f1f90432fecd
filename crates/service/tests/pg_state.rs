//! The EESE's state in PostgreSQL, two instances on one database: the
//! take-over by a UE's hello and the fencing token, the notification the old
//! owner gets, a stale restore that must not take a UE over, the uplink
//! outbox sent by one instance at a time, downlink reaching the owner, and
//! the schema's migrations. Against a real throwaway cluster (skipped, and
//! said, when PostgreSQL is not installed; `.ci/run` requires it).

use std::sync::mpsc;
use std::time::Duration;

use ciot_e2e::endpoint::UeId;
use ciot_e2e_service::eese::pg::{Notice, PgState};
use ciot_e2e_service::eese::state::{Downlink, Uplink};
use ciot_e2e_testkit::postgres::Cluster;

/// A snapshot the loader accepts: wire format 3, with a checksum.
fn snapshot(fill: u8) -> Vec<u8> {
    // The smallest snapshot (no nonce, no keyset): magic, generation,
    // counter, te2e, hello seq, flags and the SHA-256 prefix.
    use sha2::{Digest, Sha256};
    let mut s = b"CEE3".to_vec();
    s.extend_from_slice(&[fill; 34 - 4 - 4]);
    let sum = Sha256::digest(&s);
    s.extend_from_slice(&sum[..4]);
    s
}

fn ue(n: u8) -> UeId {
    UeId::new(format!("ue-{n}").as_bytes()).unwrap()
}

fn listen(s: &PgState) -> mpsc::Receiver<Notice> {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    s.listen(move |n| {
        let _ = tx.lock().unwrap().send(n);
    });
    rx
}

#[test]
fn a_ue_moves_by_its_hello_and_the_old_owner_is_fenced_out() {
    let Some(pg) = Cluster::start() else { return };
    let mut a = PgState::open(&pg.url(), Some("a")).unwrap();
    let mut b = PgState::open(&pg.url(), Some("b")).unwrap();
    assert_eq!(a.identity(), b.identity(), "one database, one identity");
    let a_notes = listen(&a);
    std::thread::sleep(Duration::from_millis(300));
    let u = ue(1);
    let s1 = snapshot(1);
    // A: a new UE (no row), its first snapshot inserts the row.
    assert_eq!(a.load(&u).unwrap(), None);
    assert_eq!(a.commit([(&u, &s1[..])], &[]).unwrap(), vec![]);
    assert!(a.owns(&u));
    assert_eq!(
        pg.psql("SELECT owner || ' ' || epoch FROM eese_sessions"),
        "a 1"
    );
    // B: the UE's hello reached it: it reads the row and takes it over with
    // its first write.
    assert_eq!(b.load(&u).unwrap().as_deref(), Some(&s1[..]));
    let s2 = snapshot(2);
    assert_eq!(b.commit([(&u, &s2[..])], &[]).unwrap(), vec![]);
    assert!(b.owns(&u));
    assert_eq!(
        pg.psql("SELECT owner || ' ' || epoch FROM eese_sessions"),
        "b 2"
    );
    // A hears of it at once...
    assert_eq!(
        a_notes.recv_timeout(Duration::from_secs(5)).unwrap(),
        Notice::Moved(u, 2)
    );
    // ... and a write of its own, under the old token, matches nothing.
    let s3 = snapshot(3);
    assert_eq!(a.commit([(&u, &s3[..])], &[]).unwrap(), vec![u]);
    assert!(!a.owns(&u));
    assert_eq!(
        pg.psql("SELECT encode(snapshot, 'hex') FROM eese_sessions"),
        hex::encode(&s2),
        "the fenced write changed nothing"
    );
    // B goes on under its token.
    assert_eq!(b.commit([(&u, &s3[..])], &[]).unwrap(), vec![]);
    assert_eq!(b.revalidate().unwrap(), vec![]);
}

#[test]
fn a_restore_from_a_row_written_since_does_not_take_the_ue_over() {
    let Some(pg) = Cluster::start() else { return };
    let mut a = PgState::open(&pg.url(), Some("a")).unwrap();
    let mut b = PgState::open(&pg.url(), Some("b")).unwrap();
    let u = ue(2);
    a.load(&u).unwrap();
    a.commit([(&u, &snapshot(1)[..])], &[]).unwrap();
    // B reads (a replayed or delayed hello restored it), then A writes on.
    assert!(b.load(&u).unwrap().is_some());
    a.commit([(&u, &snapshot(2)[..])], &[]).unwrap();
    // B's write would rest on an old snapshot: refused, the UE stays A's.
    assert_eq!(b.commit([(&u, &snapshot(9)[..])], &[]).unwrap(), vec![u]);
    assert!(a.owns(&u));
    assert_eq!(pg.psql("SELECT owner FROM eese_sessions"), "a");
    // Two instances that both found no row: the second insert loses.
    let v = ue(3);
    a.load(&v).unwrap();
    b.load(&v).unwrap();
    assert_eq!(a.commit([(&v, &snapshot(1)[..])], &[]).unwrap(), vec![]);
    assert_eq!(b.commit([(&v, &snapshot(2)[..])], &[]).unwrap(), vec![v]);
}

#[test]
fn revalidation_finds_what_a_missed_notification_would_have_said() {
    let Some(pg) = Cluster::start() else { return };
    let mut a = PgState::open(&pg.url(), Some("a")).unwrap();
    let mut b = PgState::open(&pg.url(), Some("b")).unwrap();
    let (u, v) = (ue(4), ue(5));
    for id in [&u, &v] {
        a.load(id).unwrap();
    }
    a.commit([(&u, &snapshot(1)[..]), (&v, &snapshot(1)[..])], &[])
        .unwrap();
    b.load(&v).unwrap();
    b.commit([(&v, &snapshot(2)[..])], &[]).unwrap();
    assert_eq!(a.revalidate().unwrap(), vec![v]);
    assert!(a.owns(&u) && !a.owns(&v));
    assert_eq!(pg.psql("SELECT count(*) FROM eese_sessions"), "2");
}

#[test]
fn the_outbox_is_sent_by_one_instance_at_a_time() {
    let Some(pg) = Cluster::start() else { return };
    let mut a = PgState::open(&pg.url(), Some("a")).unwrap();
    let b = PgState::open(&pg.url(), Some("b")).unwrap();
    let u = ue(6);
    let up = |n: u8| Uplink {
        ue: u,
        payload: vec![n; 3],
        ksi: 1,
        seq: u64::from(n),
        received_ms: 1_000 + u64::from(n),
    };
    a.load(&u).unwrap();
    a.commit([(&u, &snapshot(1)[..])], &[up(1), up(2)]).unwrap();
    let (oa, ob) = (a.outbox(), b.outbox());
    let got = oa.next(None, 10).unwrap();
    assert_eq!(got.iter().map(|(_, u)| u.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(oa.message_id(got[0].0), ob.message_id(got[0].0));
    // A holds the sender's lock: B sends nothing.
    assert!(ob.next(None, 10).unwrap().is_empty());
    assert_eq!(ob.depth().unwrap(), 2);
    assert_eq!(ob.oldest_received_ms().unwrap(), Some(1_001));
    assert_eq!(oa.ack(&[got[0].0]).unwrap(), 1);
    // A goes away (its connection closes): B takes over the sending.
    drop((oa, a));
    std::thread::sleep(Duration::from_millis(300));
    let left = ob.next(None, 10).unwrap();
    assert_eq!(left.iter().map(|(_, u)| u.seq).collect::<Vec<_>>(), [2]);
}

#[test]
fn downlink_stored_by_any_instance_reaches_the_owner() {
    let Some(pg) = Cluster::start() else { return };
    let mut a = PgState::open(&pg.url(), Some("a")).unwrap();
    let mut b = PgState::open(&pg.url(), Some("b")).unwrap();
    let a_notes = listen(&a);
    std::thread::sleep(Duration::from_millis(300));
    let u = ue(7);
    let d = Downlink {
        ue: u,
        payload: b"open the valve".to_vec(),
        queued_ms: 5,
    };
    let k = b.queue_downlink(&d).unwrap();
    assert_eq!(
        a_notes.recv_timeout(Duration::from_secs(5)).unwrap(),
        Notice::Downlink(u)
    );
    assert_eq!(a.downlinks_of(&u).unwrap(), vec![(k, d.clone())]);
    a.downlink_sent(&[k]).unwrap();
    assert!(b.downlinks_of(&u).unwrap().is_empty());
    // As many wait per UE as the table queues for one UE; one more is
    // refused and nothing is stored for it.
    for _ in 0..ciot_e2e::endpoint::QUEUED_PER_UE {
        b.queue_downlink(&d).unwrap();
    }
    let err = b.queue_downlink(&d).unwrap_err();
    assert!(
        matches!(
            err,
            ciot_e2e_service::ServiceError::Refused { status: 409, .. }
        ),
        "{err}"
    );
    assert_eq!(
        b.downlinks_of(&u).unwrap().len(),
        ciot_e2e::endpoint::QUEUED_PER_UE
    );
}

#[test]
fn the_schema_is_migrated_once_and_a_newer_one_is_refused() {
    let Some(pg) = Cluster::start() else { return };
    let a = PgState::open(&pg.url(), None).unwrap();
    let _b = PgState::open(&pg.url(), None).unwrap();
    assert_ne!(a.name(), _b.name(), "random instance names differ");
    assert_eq!(
        pg.psql("SELECT string_agg(version::text, ',') FROM ciot_e2e_schema"),
        "1"
    );
    assert_eq!(pg.psql("SELECT count(*) FROM eese_instances"), "2");
    assert_eq!(
        pg.psql("INSERT INTO ciot_e2e_schema (version) VALUES (99)"),
        "INSERT 0 1"
    );
    let err = PgState::open(&pg.url(), None).err().expect("refused");
    assert!(
        err.to_string().contains("newer than this EESE knows"),
        "{err}"
    );
    assert!(PgState::open(&pg.url(), Some("has space")).is_err());
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PgState::open(&format!("postgres://ciot@127.0.0.1:{port}/x"), None)
        .err()
        .expect("no database there");
    assert!(err.to_string().starts_with("database: "), "{err}");
    let err = PgState::open("postgres://[nonsense", None).err().unwrap();
    assert!(err.to_string().contains("--state"), "{err}");
}

#[test]
fn a_database_url_is_shown_without_its_password() {
    use ciot_e2e_service::eese::pg::shown;
    assert_eq!(
        shown("postgres://eese:s3cret@db.example:5432/ciot"),
        "postgres://eese:***@db.example:5432/ciot"
    );
    assert_eq!(
        shown("postgresql://eese@db/ciot"),
        "postgresql://eese@db/ciot"
    );
    assert_eq!(shown("/var/lib/eese.state"), "/var/lib/eese.state");
    let err = PgState::open("postgres://u:pw@[x/y", None).err().unwrap();
    assert!(!err.to_string().contains("pw@"), "{err}");
}

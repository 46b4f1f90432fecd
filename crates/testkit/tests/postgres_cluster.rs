//! The throwaway cluster starts, answers SQL, survives a restart and is gone
//! after drop.

use ciot_e2e_testkit::postgres::Cluster;

#[test]
fn a_cluster_starts_answers_restarts_and_stops() {
    let Some(pg) = Cluster::start() else {
        return;
    };
    assert_eq!(pg.psql("SELECT 40 + 2"), "42");
    assert_eq!(
        pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (7)"),
        "CREATE TABLE\nINSERT 0 1"
    );
    pg.restart();
    assert_eq!(pg.psql("SELECT x FROM t"), "7");
    let port = pg.port();
    drop(pg);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

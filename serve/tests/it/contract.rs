//! The embedded store against the port contract every store must keep.

use botc_serve::Embedded;
use botc_serve::contract::{Fresh, PARTITIONS};

async fn fresh() -> Fresh<Embedded> {
    let dir = tempfile::tempdir().expect("dir");
    let store = Embedded::open(dir.path(), PARTITIONS, 1000).expect("store");
    Fresh { store, keep: Box::new(dir) }
}

botc_serve::contract_suite!(fresh());

/// The flow registry in `history.sqlite`, opened twice as `botc serve` and `botc deploy` do.
mod registry {
    use botc_serve::SqliteHistory;
    use botc_serve::contract::FreshRegistry;

    async fn fresh() -> FreshRegistry<SqliteHistory> {
        let dir = tempfile::tempdir().expect("dir");
        let path = botc_serve::history_path(dir.path());
        let first = SqliteHistory::open(&path).await.expect("opens");
        let second = SqliteHistory::open(&path).await.expect("opens again");
        FreshRegistry { first, second, keep: Box::new(dir) }
    }

    botc_serve::registry_suite!(fresh());
}

/// A commit wakes the long-polls of the conversations it wrote to, and no others (1,000
/// waiters on other conversations cost nothing per message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_change_wakes_only_its_own_readers() {
    use botc_serve::ports::{Batch, Committer, Leases, Message, Transcript, Work};
    use botc_serve::{Entry, From};
    use std::sync::Arc;
    use std::time::Duration;
    let fresh = fresh().await;
    let s = &fresh.store;
    let lease =
        s.acquire(Work::Partition(0), "w", 1_000, Duration::from_secs(60)).await.expect("acquire").expect("lease");
    let commit = |key: &str, id: &str, next: u64| {
        let mut b = Batch::new(lease.clone(), next);
        b.messages.push(Message {
            key: key.into(),
            entry: Entry { seq: 0, id: id.into(), from: From::Bot, text: id.into(), buttons: vec![], at: 0 },
        });
        s.commit(Arc::new(b))
    };
    let mut a = s.changed("shop/web/a");
    commit("shop/web/b", "e1", 0).await.expect("commit");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut a).await.is_err(),
        "a write to conversation b woke a reader of a"
    );
    commit("shop/web/a", "e2", 0).await.expect("commit");
    tokio::time::timeout(Duration::from_secs(5), a).await.expect("a write to a wakes its reader");
    // Made before the write and never polled: still woken.
    let early = s.changed("shop/web/a");
    commit("shop/web/a", "e3", 0).await.expect("commit");
    tokio::time::timeout(Duration::from_secs(5), early).await.expect("woken though created before the write");
}

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

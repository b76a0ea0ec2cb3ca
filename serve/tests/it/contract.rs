//! The embedded store against the port contract every store must keep.

use botc_serve::Embedded;
use botc_serve::contract::{Fresh, PARTITIONS};

async fn fresh() -> Fresh<Embedded> {
    let dir = tempfile::tempdir().expect("dir");
    let store = Embedded::open(dir.path(), PARTITIONS, 1000).expect("store");
    Fresh { store, keep: Box::new(dir) }
}

botc_serve::contract_suite!(fresh());

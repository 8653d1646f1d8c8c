//! A database that stops answering (a black-holed connection: open, silent) fails each call
//! within the store's timeout instead of holding the node's work forever.

mod common;

use std::time::Duration;

use common::{Proxy, T0, keys, price};
use runtime::store::{Store, StoreError};

#[tokio::test]
async fn a_database_that_stops_answering_fails_each_call_within_the_timeout() {
    let schema = common::schema("hang");
    // The schema is created through a direct connection, so that only the calls below hang.
    drop(common::fresh_postgres("hang").await);
    let proxy = Proxy::start().await;
    let store = Store::postgres(&proxy.url(), Some(&schema))
        .await
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    store.read(None).await.unwrap();
    proxy.freeze();
    let keys = keys();
    let row = price(&keys, T0, 301_245_000_000, 3);
    let bounded = Duration::from_secs(5);
    let read = tokio::time::timeout(bounded, store.read(None)).await;
    assert!(matches!(read, Ok(Err(StoreError::Timeout(_)))), "{read:?}");
    let insert = tokio::time::timeout(bounded, store.insert(&row, 3)).await;
    assert!(
        matches!(insert, Ok(Err(StoreError::Timeout(_)))),
        "{insert:?}"
    );
}

//! One conformance suite, run against PostgreSQL (`DATABASE_URL`, by default the local server;
//! each test in its own schema) and against an SQLite file: both stores must behave the same.

mod common;

use std::time::Duration;

use common::{T0, config, keys, price};
use protocol::{Price, PriceId, WriteOutcome};
use runtime::store::{Record, Store};

async fn inserts_each_id_once(store: Store) {
    let keys = keys();
    let first = price(&keys, T0, 301_245_170_000, 3);
    assert_eq!(
        store.insert(&first, 3).await.unwrap(),
        WriteOutcome::Inserted
    );
    let mut again = first.clone();
    again.writer = keys[2].address();
    assert_eq!(
        store.insert(&again, 3).await.unwrap(),
        WriteOutcome::AlreadyPresent
    );
    let row = store.get(first.message.body.id).await.unwrap().unwrap();
    assert_eq!(row.price, first, "the first write stays, byte for byte");
    assert_eq!(row.quorum, 3);
    assert_eq!(row.price.audit(&config(&keys)), Ok(()));
    assert!(row.inserted_at_ms > T0, "stamped by the database");
}

async fn keeps_prices_exact(store: Store) {
    let keys = keys();
    // 39 digits: beyond f64 and i64, within numeric(39, 0).
    for (k, units) in [u128::MAX, 10u128.pow(38) + 1, 0].into_iter().enumerate() {
        let price = price(&keys, T0 + k as u64, units, 3);
        store.insert(&price, 3).await.unwrap();
        let row = store.get(price.message.body.id).await.unwrap().unwrap();
        assert_eq!(row.price.message.body.price, Price(units));
    }
}

async fn refuses_a_row_below_its_quorum(store: Store) {
    let keys = keys();
    let short = price(&keys, T0, 1, 2);
    assert!(store.insert(&short, 3).await.is_err());
    assert_eq!(store.get(short.message.body.id).await.unwrap(), None);
}

/// A member with the database's credentials must not be able to park junk under an honest id: the
/// schema refuses rows whose addresses or signature entries are not well formed.
async fn refuses_malformed_rows(store: Store) {
    let keys = keys();
    let good = Record::of(&price(&keys, T0, 1, 3), 3);
    let signature = format!("0x{}", "ab".repeat(65));
    let three = |signer: &str, signature: &str| {
        let entry = format!(r#"{{"signer":"{signer}","signature":"{signature}"}}"#);
        format!("[{entry},{entry},{entry}]")
    };
    let signer = keys[0].address().to_string();
    let malformed = [
        (
            "empty entries",
            "origin",
            good.origin.clone(),
            "[{},{},{}]".to_owned(),
        ),
        (
            "numbers",
            "origin",
            good.origin.clone(),
            "[1,2,3]".to_owned(),
        ),
        (
            "a short signature",
            "origin",
            good.origin.clone(),
            three(&signer, "0xabcd"),
        ),
        (
            "an uppercase signer",
            "origin",
            good.origin.clone(),
            three(&signer.to_uppercase(), &signature),
        ),
        (
            "an origin of 0xa and 39 other characters",
            "origin",
            format!("0xa{}", "z".repeat(39)),
            good.signatures.clone(),
        ),
        (
            "a writer of 0xa and 39 other characters",
            "writer",
            format!("0xa{}", "z".repeat(39)),
            good.signatures.clone(),
        ),
    ];
    for (what, column, address, signatures) in malformed {
        let mut record = good.clone();
        record.signatures = signatures;
        match column {
            "origin" => record.origin = address,
            _ => record.writer = address,
        }
        let result = store.insert_record(record).await;
        assert!(result.is_err(), "{what} was stored: {result:?}");
    }
    assert_eq!(
        store.insert_record(good).await.unwrap(),
        WriteOutcome::Inserted
    );
}

async fn ages_heartbeats_by_its_own_clock(store: Store) {
    let keys = keys();
    let (a, b) = (keys[0].address(), keys[1].address());
    store.heartbeat(a, "a").await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    store.heartbeat(b, "b").await.unwrap();
    store.heartbeat(b, "b again").await.unwrap();
    let (heartbeats, stored) = store.read(None).await.unwrap();
    assert!(stored.is_empty());
    assert_eq!(heartbeats.len(), 2, "an upsert, not a second row");
    let age = |node| heartbeats.iter().find(|h| h.node == node).unwrap().age_ms;
    assert!(age(a) >= age(b) + 50, "{} vs {}", age(a), age(b));
    assert!(age(a) < 10_000);
}

async fn reads_the_ids_stored_since(store: Store) {
    let keys = keys();
    let prices: Vec<_> = (0..3)
        .map(|k| price(&keys, T0 + k * 60_000, 1 + k as u128, 3))
        .collect();
    for price in prices.iter().rev() {
        store.insert(price, 3).await.unwrap();
    }
    let ids: Vec<_> = prices.iter().map(|p| p.message.body.id).collect();
    let (_, stored) = store.read(Some(ids[1])).await.unwrap();
    assert_eq!(stored, ids[1..], "from the given id on, in id order");
    let (_, stored) = store.read(Some(PriceId::first_at(T0 + 1))).await.unwrap();
    assert_eq!(stored, ids[1..]);
}

/// Generates the suite for one backend: `$open` makes a fresh store for a test's name.
macro_rules! conformance {
    ($backend:ident, $open:path) => {
        mod $backend {
            #[tokio::test]
            async fn inserts_each_id_once() {
                super::inserts_each_id_once($open("inserts").await).await
            }
            #[tokio::test]
            async fn keeps_prices_exact() {
                super::keeps_prices_exact($open("exact").await).await
            }
            #[tokio::test]
            async fn refuses_a_row_below_its_quorum() {
                super::refuses_a_row_below_its_quorum($open("quorum").await).await
            }
            #[tokio::test]
            async fn refuses_malformed_rows() {
                super::refuses_malformed_rows($open("malformed").await).await
            }
            #[tokio::test]
            async fn ages_heartbeats_by_its_own_clock() {
                super::ages_heartbeats_by_its_own_clock($open("heartbeats").await).await
            }
            #[tokio::test]
            async fn reads_the_ids_stored_since() {
                super::reads_the_ids_stored_since($open("since").await).await
            }
        }
    };
}

conformance!(postgres, super::common::fresh_postgres);
conformance!(sqlite, super::common::fresh_sqlite);

//! Fixtures shared by the runtime's tests: keys, a deployment, signed prices, fresh stores.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use protocol::{
    Address, Config, Feed, Keypair, Message, Price, PriceBody, PriceId, Signers, StoredPrice,
};
use runtime::store::Store;

pub const T0: u64 = 1_767_225_600_000;

pub fn keys() -> Vec<Keypair> {
    (1..=4u8)
        .map(|i| {
            let mut secret = [0u8; 32];
            secret[31] = i;
            Keypair::from_secret(&secret).unwrap()
        })
        .collect()
}

pub fn config(keys: &[Keypair]) -> Config {
    let list = keys.iter().map(Keypair::address).collect();
    Config::new(
        "storetest",
        Feed::new("ETH/USD").unwrap(),
        Signers::Allowlist(list),
    )
}

/// keys[0]'s price observed at `at`, signed by the first `signers` keys, written by keys[1].
pub fn price(keys: &[Keypair], at: u64, units: u128, signers: usize) -> StoredPrice {
    let network_id = config(keys).network_id();
    let body = PriceBody {
        id: PriceId::mint(at, 0, keys[0].address()),
        feed: Feed::new("ETH/USD").unwrap(),
        price: Price(units),
        decimals: 8,
        observed_at_ms: at,
    };
    let digest = body.digest(&network_id);
    let signatures: BTreeMap<Address, _> = keys[..signers]
        .iter()
        .map(|k| (k.address(), k.sign(&digest)))
        .collect();
    StoredPrice {
        message: Message::new(network_id, body, signatures).unwrap(),
        origin: keys[0].address(),
        last_signature_at_ms: at + 1_234,
        writer: keys[1].address(),
    }
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A PostgreSQL store in a schema of its own, emptied first.
pub async fn fresh_postgres(test: &str) -> Store {
    let schema = schema(test);
    let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL at DATABASE_URL (default: the local server) must be running");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
    let store = Store::postgres(&database_url(), Some(&schema))
        .await
        .unwrap();
    // Applying the schema again changes nothing.
    Store::postgres(&database_url(), Some(&schema))
        .await
        .unwrap();
    store
}

/// The schema a test's PostgreSQL store lives in.
pub fn schema(test: &str) -> String {
    format!("store_{test}_{}", std::process::id())
}

pub async fn fresh_sqlite(test: &str) -> Store {
    let path: PathBuf =
        std::env::temp_dir().join(format!("store-{test}-{}.sqlite", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = Store::sqlite(&path).await.unwrap();
    Store::sqlite(&path).await.unwrap();
    store
}

/// An id no test stores.
pub fn unused_id() -> PriceId {
    PriceId::mint(T0 - 1, 7, keys()[3].address())
}

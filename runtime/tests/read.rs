//! The read API over real HTTP and PostgreSQL, and a consumer's check of what it returns with an
//! independent secp256k1 implementation (libsecp256k1) and keccak (sha3), not this project's code.

mod common;

use std::sync::Arc;

use common::{T0, config, fresh_postgres, keys, price};
use runtime::http::{Metrics, serve};
use serde_json::Value;
use sha3::{Digest, Keccak256};

/// What a consumer does with a fetched price: hash the signed bytes, check the digest, recover
/// every signer from its signature, and check the signed bytes say what the JSON says.
fn check_independently(price: &Value) {
    let hex =
        |field: &str| hex::decode(price[field].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let signed = hex("signed_bytes");
    assert_eq!(signed.len(), 105);
    let digest: [u8; 32] = Keccak256::digest(&signed).into();
    assert_eq!(digest.to_vec(), hex("digest"));
    assert_eq!(signed[16..48].to_vec(), hex("network_id"));
    let units = u128::from_be_bytes(signed[80..96].try_into().unwrap());
    assert_eq!(units.to_string(), price["price_units"].as_str().unwrap());
    let message = secp256k1::Message::from_digest(digest);
    let signatures = price["signatures"].as_array().unwrap();
    assert!(signatures.len() >= 3);
    for entry in signatures {
        let bytes = hex::decode(
            entry["signature"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
        )
        .unwrap();
        let recovery = secp256k1::ecdsa::RecoveryId::try_from(i32::from(bytes[64]) - 27).unwrap();
        let signature =
            secp256k1::ecdsa::RecoverableSignature::from_compact(&bytes[..64], recovery).unwrap();
        let key = signature.recover_ecdsa(message).unwrap();
        let address: [u8; 32] = Keccak256::digest(&key.serialize_uncompressed()[1..]).into();
        assert_eq!(
            format!("0x{}", hex::encode(&address[12..])),
            entry["signer"].as_str().unwrap()
        );
    }
}

#[tokio::test]
async fn consumers_read_prices_and_check_them_without_trusting_the_node() {
    let keys = keys();
    let store = Arc::new(fresh_postgres("read").await);
    let prices = common::store_prices(&store, &keys, 3).await;
    let address = served(store).await;

    // The prices were observed months ago: stale for the server's default and a client's max_age.
    for path in ["/prices/latest?feed=ETH/USD", "/prices/latest?max_age=2h"] {
        let (status, stale) = fetch(address, path).await;
        assert_eq!(status, 404, "{path}: {stale}");
        let message = stale["error"].as_str().unwrap();
        assert!(message.contains("ago, longer than max_age"), "{message}");
        assert!(stale["age_ms"].as_u64().unwrap() > 7_200_000, "{stale}");
    }
    let (status, latest) = fetch(address, "/prices/latest?feed=ETH/USD&max_age=3650days").await;
    assert_eq!(status, 200, "{latest}");
    let newest = prices[2].message.body.id.to_string();
    assert_eq!(latest["id"], newest.as_str());
    assert_eq!(latest["price"], "3012.45170002");
    assert_eq!(
        latest["network_id"],
        format!("0x{}", hex::encode(config(&keys).network_id()))
    );
    check_independently(&latest);

    let (status, one) = fetch(address, &format!("/prices/{}", prices[0].message.body.id)).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["price_units"], "301245170000");
    check_independently(&one);

    let (status, page) = fetch(address, &format!("/prices?since={}&limit=2", T0)).await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [newest.as_str(), &prices[1].message.body.id.to_string()],
        "newest first"
    );
    let (_, next) = fetch(address, &format!("/prices?before={}&limit=2", T0 + 60_000)).await;
    assert_eq!(next.as_array().unwrap().len(), 1, "the page before");

    for (path, status) in [
        ("/prices/not-an-id".to_owned(), 400),
        (format!("/prices/{}", common::unused_id()), 404),
        ("/prices?limit=0".to_owned(), 400),
        ("/prices?since=yesterday".to_owned(), 400),
        // Past what a database holds as signed milliseconds: it once wrapped around to "all".
        ("/prices?since=9223372036854775808".to_owned(), 400),
        ("/prices?colour=blue".to_owned(), 400),
        ("/prices/latest?feed=BTC/USD".to_owned(), 404),
        ("/prices/latest?max_age=soon".to_owned(), 400),
    ] {
        let (got, body) = fetch(address, &path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
    }
}

/// Every metric the alert rules and the Grafana dashboard in `deploy/` name is one a node serves.
#[tokio::test]
async fn the_alerts_and_the_dashboard_name_only_metrics_a_node_serves() {
    let store = Arc::new(common::fresh_sqlite("metric-names").await);
    let address = served(store).await;
    let text = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let served: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    let files = [
        (
            "deploy/prometheus/alerts.yml",
            include_str!("../../deploy/prometheus/alerts.yml"),
        ),
        (
            "deploy/grafana/oracle.json",
            include_str!("../../deploy/grafana/oracle.json"),
        ),
    ];
    for (file, content) in files {
        let mut named = 0;
        for (at, _) in content.match_indices("oracle_") {
            let name: String = content[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_total", "_bucket"]
                .iter()
                .fold(name.as_str(), |n, suffix| n.trim_end_matches(suffix));
            assert!(
                served.contains(family),
                "{file} names {name}, which no node serves; served: {served:?}"
            );
            named += 1;
        }
        assert!(named > 5, "{file} names {named} metrics");
    }
}

/// The aggregate counts each origin once, with its newest price, and answers the lower median with
/// every underlying id; a window without prices is an error that says so.
#[tokio::test]
async fn the_aggregate_is_the_median_of_each_origin_s_newest_price() {
    let keys = keys();
    let store = Arc::new(common::fresh_sqlite("aggregate").await);
    let network_id = config(&keys).network_id();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Origins 0..3 at 3000.00 to 3000.03; origin 3's older price (an hour ago) lies.
    let stored = [
        (0, now - 60_000, 300_000_000_000u128),
        (1, now - 50_000, 300_001_000_000),
        (2, now - 40_000, 300_002_000_000),
        (3, now - 30_000, 300_003_000_000),
        (3, now - 3_000_000, 900_000_000_000),
    ];
    for (origin, at, units) in stored {
        let signers: Vec<&protocol::Keypair> = (0..3).map(|k| &keys[(origin + k) % 4]).collect();
        let body = protocol::testing::body(&keys[origin], at, units);
        let row = protocol::PriceRow {
            message: protocol::testing::signed(network_id, body, &signers),
            origin: keys[origin].address(),
            last_signature_at_ms: at + 1_000,
            writer: keys[0].address(),
        };
        store.insert(&row, 3).await.unwrap();
    }
    let address = served(store).await;

    let (status, one_hour) = fetch(address, "/prices/aggregate?window=2h").await;
    assert_eq!(status, 200, "{one_hour}");
    assert_eq!(one_hour["origins"], 4, "origin 3 counts once: {one_hour}");
    assert_eq!(one_hour["median"], "3000.01000000", "{one_hour}");
    assert_eq!(one_hour["min"], "3000.00000000");
    assert_eq!(
        one_hour["max"], "3000.03000000",
        "the old lie is not origin 3's newest"
    );
    assert_eq!(one_hour["prices"].as_array().unwrap().len(), 4);
    let median_id = one_hour["median_id"].as_str().unwrap();
    let (status, median) = fetch(address, &format!("/prices/{median_id}")).await;
    assert_eq!(
        status, 200,
        "the median is a stored, signed price: {median}"
    );

    let (status, short) = fetch(address, "/prices/aggregate?window=45s").await;
    assert_eq!(
        (status, short["origins"].clone()),
        (200, 2.into()),
        "{short}"
    );
    let (status, empty) = fetch(address, "/prices/aggregate?window=1s").await;
    assert_eq!(status, 404, "{empty}");
    assert!(
        empty["error"]
            .as_str()
            .unwrap()
            .contains("no ETH/USD price"),
        "{empty}"
    );
    let (status, _) = fetch(address, "/prices/aggregate?window=often").await;
    assert_eq!(status, 400);
}

/// A subscriber to /prices/stream receives each price stored after it subscribed, whoever wrote
/// it, as a Server-Sent Event carrying the price as /prices/{id} does.
#[tokio::test]
async fn the_stream_pushes_each_newly_stored_price() {
    let keys = keys();
    let store = Arc::new(fresh_postgres("stream").await);
    let address = served(store.clone()).await;
    let mut stream = reqwest::get(format!("http://{address}/prices/stream?feed=ETH/USD"))
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    // Stored after the subscription (by another node, as far as this server knows).
    let newest = price(&keys, T0 + 120_000, 301_300_000_000, 3);
    store.insert(&newest, 3).await.unwrap();
    let id = newest.message.body.id.to_string();
    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !received.contains("\n\n") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        received.push_str(&String::from_utf8_lossy(&chunk));
        received = received.trim_start_matches(":\n\n").to_owned();
    }
    assert!(received.contains("event: price"), "{received}");
    assert!(received.contains(&format!("id: {id}")), "{received}");
    let data = received
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let price: Value = serde_json::from_str(data).unwrap();
    assert_eq!(price["id"], id.as_str());
    check_independently(&price);
}

/// The read API over `store` on a loopback port; `/prices/latest` refuses prices older than 30 min.
async fn served(store: Arc<runtime::store::Store>) -> std::net::SocketAddr {
    let max_age = std::time::Duration::from_secs(1_800);
    serve(
        ([127, 0, 0, 1], 0).into(),
        Metrics::default(),
        store,
        max_age,
    )
    .await
    .unwrap()
}

/// GET `path` from the read API at `address`: the status and the JSON body.
async fn fetch(address: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("http://{address}{path}"))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str::<Value>(&body).unwrap())
}

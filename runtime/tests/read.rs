//! The read API over real HTTP and PostgreSQL, and a consumer's check of what it returns with an
//! independent secp256k1 implementation (libsecp256k1) and keccak (sha3), not this project's code.

mod common;

use std::sync::{Arc, Mutex};

use common::{T0, config, fresh_postgres, keys, price};
use runtime::http::{Health, Metrics, serve};
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
    let prices: Vec<_> = (0..3)
        .map(|k| price(&keys, T0 + k * 60_000, 301_245_170_000 + k as u128, 3))
        .collect();
    for price in &prices {
        store.insert(price, 3).await.unwrap();
    }
    let health = Arc::new(Mutex::new(Health::default()));
    let address = serve(
        ([127, 0, 0, 1], 0).into(),
        health,
        Metrics::default(),
        store,
    )
    .await
    .unwrap();
    let get = |path: String| async move {
        let response = reqwest::get(format!("http://{address}{path}"))
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };

    let (status, latest) = get("/prices/latest?feed=ETH/USD".into()).await;
    assert_eq!(status, 200, "{latest}");
    let newest = prices[2].message.body.id.to_string();
    assert_eq!(latest["id"], newest.as_str());
    assert_eq!(latest["price"], "3012.45170002");
    assert_eq!(
        latest["network_id"],
        format!("0x{}", hex::encode(config(&keys).network_id()))
    );
    check_independently(&latest);

    let (status, one) = get(format!("/prices/{}", prices[0].message.body.id)).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["price_units"], "301245170000");
    check_independently(&one);

    let (status, page) = get(format!("/prices?since={}&limit=2", T0)).await;
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
    let (_, next) = get(format!("/prices?before={}&limit=2", T0 + 60_000)).await;
    assert_eq!(next.as_array().unwrap().len(), 1, "the page before");

    for (path, status) in [
        ("/prices/not-an-id".to_owned(), 400),
        (format!("/prices/{}", common::unused_id()), 404),
        ("/prices?limit=0".to_owned(), 400),
        ("/prices?since=yesterday".to_owned(), 400),
        ("/prices?colour=blue".to_owned(), 400),
        ("/prices/latest?feed=BTC/USD".to_owned(), 404),
    ] {
        let (got, body) = get(path.clone()).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
    }
}

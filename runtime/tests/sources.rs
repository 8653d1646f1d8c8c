//! The price sources against a real HTTP server on loopback that answers like the exchanges.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use protocol::Price;
use runtime::sources::{Exchange, Source, SourceError, Sources};

const COINBASE: &str = r#"{"data":{"currency":"ETH","rates":{"EUR":"2771.2","USD":"3012.4517"}}}"#;
const COINGECKO: &str = r#"{"ethereum":{"usd":3012.45170000000000000001}}"#;
const KRAKEN: &str = r#"{"error":[],"result":{"XETHZUSD":{"a":["3012.46","1","1.000"],"c":["3012.45170","0.0200"]}}}"#;

/// Serves `router` on a free loopback port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

fn exchanges(coinbase: &'static str, coingecko: &'static str, kraken: &'static str) -> Router {
    Router::new()
        .route("/v2/exchange-rates", get(move || async move { coinbase }))
        .route(
            "/api/v3/simple/price",
            get(move || async move { coingecko }),
        )
        .route("/0/public/Ticker", get(move || async move { kraken }))
}

fn sources(base: &str, timeout_ms: u64) -> Sources {
    let all = Source::every(|_| base.to_owned());
    Sources::new(all, Duration::from_millis(timeout_ms), 8).with_retries(1)
}

#[tokio::test]
async fn each_exchange_is_read_exactly() {
    let base = serve(exchanges(COINBASE, COINGECKO, KRAKEN)).await;
    let fetched = sources(&base, 2_000).fetch().await;
    assert!(fetched.failed.is_empty(), "{:?}", fetched.failed);
    let exact = Price(301_245_170_000);
    assert_eq!(
        fetched.answered,
        [
            (Exchange::Coinbase, exact),
            (Exchange::CoinGecko, exact),
            (Exchange::Kraken, exact)
        ]
    );
}

#[tokio::test]
async fn a_malformed_answer_fails_only_its_source_and_says_why() {
    let base = serve(exchanges(
        r#"{"data":{"rates":{}}}"#,
        r#"{"ethereum":{"usd":"n/a"}}"#,
        r#"{"error":["EQuery:Unknown asset pair"]}"#,
    ))
    .await;
    let fetched = sources(&base, 2_000).fetch().await;
    assert!(fetched.answered.is_empty());
    let why: Vec<String> = fetched
        .failed
        .iter()
        .map(|(e, error)| format!("{e}: {error}"))
        .collect();
    assert!(
        why[0].starts_with("Coinbase: unexpected JSON: missing field `USD`"),
        "{why:?}"
    );
    assert!(
        why[1].starts_with("CoinGecko: price \"\\\"n/a\\\"\" is not a plain decimal"),
        "{why:?}"
    );
    assert!(why[2].contains("EQuery:Unknown asset pair"), "{why:?}");
}

#[tokio::test]
async fn errors_and_silence_are_retried_then_reported() {
    static ASKED: AtomicUsize = AtomicUsize::new(0);
    let router = Router::new()
        .route(
            "/v2/exchange-rates",
            get(|| async {
                ASKED.fetch_add(1, Ordering::SeqCst);
                (StatusCode::SERVICE_UNAVAILABLE, "busy")
            }),
        )
        .route(
            "/api/v3/simple/price",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                COINGECKO
            }),
        )
        .route("/0/public/Ticker", get(|| async { KRAKEN }));
    let base = serve(router).await;
    let fetched = sources(&base, 200).fetch().await;
    assert_eq!(ASKED.load(Ordering::SeqCst), 2, "asked once, retried once");
    assert_eq!(
        fetched.answered,
        [(Exchange::Kraken, Price(301_245_170_000))]
    );
    assert_eq!(
        fetched.failed,
        [
            (Exchange::Coinbase, SourceError::Status(503)),
            (
                Exchange::CoinGecko,
                SourceError::Timeout(Duration::from_millis(200))
            )
        ]
    );
}

#[tokio::test]
async fn an_unreachable_source_is_a_connect_error() {
    // A port nobody listens on: bind, note it, close.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let fetched = sources(&base, 500).fetch().await;
    assert_eq!(fetched.failed.len(), 3);
    assert!(
        fetched
            .failed
            .iter()
            .all(|(_, e)| matches!(e, SourceError::Connect(_)))
    );
}

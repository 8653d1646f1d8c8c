//! Each node's small HTTP endpoint: the status page `/`, `/health` (peers, database reachable,
//! last price stored) as JSON, Prometheus `/metrics` (prometheus-client, the crate libp2p's
//! metrics use), the stored prices for their consumers (`prices`), and `/openapi.json`, the
//! contract for clients, generated from the handlers. Each price comes with everything needed to
//! check it without trusting this node: the network id, the exact signed bytes, and every signer
//! with its signature.

mod metrics;
mod prices;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use metrics::{Health, Kind, LastStored, Metrics, Reason, SourceLabel};
pub use prices::{PriceJson, SignatureJson};

use crate::store::Store;

#[derive(Clone)]
struct Shared {
    health: Arc<Mutex<Health>>,
    metrics: Metrics,
    store: Arc<Store>,
    latest_max_age: std::time::Duration,
    /// Each newly stored price, for every `/prices/stream` subscriber.
    stored: tokio::sync::broadcast::Sender<Arc<PriceJson>>,
    /// This endpoint's contract as served at `/openapi.json`.
    contract: Arc<str>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Price oracle node",
        description = "One node's view of the oracle network: its health, its metrics, and the \
                       prices stored by the network, each with the signed bytes and signatures \
                       that let a client check it without trusting the node."
    ),
    tags(
        (name = "prices", description = "Stored prices"),
        (name = "node", description = "This node")
    )
)]
struct Contract;

/// Serves the status page, `/health`, `/metrics`, the prices and `/openapi.json` on `address`
/// until the process ends. `/prices/latest` answers an error rather than a price older than
/// `latest_max_age`, unless the request gives its own `max_age`.
pub async fn serve(
    address: SocketAddr,
    metrics: Metrics,
    store: Arc<Store>,
    latest_max_age: std::time::Duration,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let (stored, _) = tokio::sync::broadcast::channel(prices::STREAM_BUFFER);
    let (router, contract) = endpoints().split_for_parts();
    let router = router.with_state(Shared {
        health: metrics.health.clone(),
        metrics,
        store: store.clone(),
        latest_max_age,
        stored: stored.clone(),
        contract: contract.to_json().map_err(std::io::Error::other)?.into(),
    });
    tokio::spawn(prices::poll_stored(store, stored));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the HTTP endpoint stopped");
        }
    });
    Ok(bound)
}

/// Every endpoint, each registered with its description: the router and the contract come from
/// the same list, so neither can leave one out.
fn endpoints() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(Contract::openapi())
        .routes(routes!(status_page))
        .routes(routes!(health_page))
        .routes(routes!(metrics_page))
        .routes(routes!(contract))
        .routes(routes!(prices::latest_price))
        .routes(routes!(prices::aggregate_price))
        .routes(routes!(prices::price_stream))
        .routes(routes!(prices::one_price))
        .routes(routes!(prices::prices))
}

/// This endpoint's OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    endpoints().split_for_parts().1
}

/// The page, with its script and styles inside: operators often run without outbound internet.
const STATUS_PAGE: &str = include_str!("../../assets/status.html");

/// A page for people: the current price, the stored prices of the last 24 h with their signer
/// counts, peers, the writer, the database, and invalid messages by kind.
#[utoipa::path(get, path = "/", tag = "node",
    responses((status = 200, description = "The status page", content_type = "text/html")))]
async fn status_page() -> Html<&'static str> {
    Html(STATUS_PAGE)
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "node",
    responses((status = 200, description = "The OpenAPI 3.1 document of this endpoint",
        content_type = "application/json")))]
async fn contract(State(shared): State<Shared>) -> impl IntoResponse {
    let json = [(header::CONTENT_TYPE, "application/json")];
    (json, shared.contract.to_string())
}

/// The node's health: 200 while it can do its part, 503 (with the same body) while it cannot.
#[utoipa::path(get, path = "/health", tag = "node", responses(
    (status = 200, description = "Healthy", body = Health),
    (status = 503, description = "Degraded: too few peers or sources, the database \
        unreachable, or the node's own key failing", body = Health)))]
async fn health_page(State(shared): State<Shared>) -> impl IntoResponse {
    let mut health = shared.health.lock().map(|h| h.clone()).unwrap_or_default();
    health.database_answered_ms_ago = health
        .database_answered_at
        .map(|at| at.elapsed().as_millis() as u64);
    let healthy = health.database_reachable
        && health.peers >= health.min_peers
        && health
            .sources_answered
            .is_none_or(|n| n >= health.min_sources)
        && health.own_signature_faults == 0;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(health))
}

/// Everything the node counts and measures, in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "node", responses(
    (status = 200, description = "OpenMetrics text",
        content_type = "application/openmetrics-text"),
    (status = 500, description = "The metrics could not be encoded", content_type = "text/plain")))]
async fn metrics_page(State(shared): State<Shared>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &shared.metrics.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            error.to_string(),
        ),
    }
}

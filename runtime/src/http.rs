//! Each node's small HTTP endpoint: `/health` (peers, database reachable, last price stored) as
//! JSON, and Prometheus `/metrics` (prometheus-client, the crate libp2p's metrics use).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

/// What `/metrics` shows. Cheap to clone: every metric is shared.
#[derive(Clone)]
pub struct Metrics {
    pub published: Counter,
    pub cosigned: Counter,
    pub stored: Counter,
    pub duplicate_inserts_avoided: Counter,
    pub invalid_messages: Family<Kind, Counter>,
    pub source_failures: Family<SourceLabel, Counter>,
    pub peers: Gauge,
    pub to_quorum_seconds: Histogram,
    pub to_storage_seconds: Histogram,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let seconds = || {
            Histogram::new([
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
            ])
        };
        let mut metrics = Metrics {
            published: Counter::default(),
            cosigned: Counter::default(),
            stored: Counter::default(),
            duplicate_inserts_avoided: Counter::default(),
            invalid_messages: Family::default(),
            source_failures: Family::default(),
            peers: Gauge::default(),
            to_quorum_seconds: seconds(),
            to_storage_seconds: seconds(),
            registry: Arc::new(Registry::default()),
        };
        let mut registry = Registry::with_prefix("oracle");
        let m = &metrics;
        registry.register(
            "prices_published",
            "Prices this node published",
            m.published.clone(),
        );
        registry.register(
            "prices_cosigned",
            "Prices this node co-signed",
            m.cosigned.clone(),
        );
        registry.register("prices_stored", "Prices this node stored", m.stored.clone());
        registry.register(
            "duplicate_inserts_avoided",
            "Writes that found the price already stored",
            m.duplicate_inserts_avoided.clone(),
        );
        registry.register(
            "invalid_messages",
            "Gossip messages rejected, by kind",
            m.invalid_messages.clone(),
        );
        registry.register(
            "source_failures",
            "Price source requests that failed, by source",
            m.source_failures.clone(),
        );
        registry.register(
            "peers",
            "Gossip peers on the oracle's topic",
            m.peers.clone(),
        );
        registry.register(
            "publication_to_quorum_seconds",
            "From a price's observation to quorum at this node",
            m.to_quorum_seconds.clone(),
        );
        registry.register(
            "publication_to_storage_seconds",
            "From a price's observation to its storage by this node",
            m.to_storage_seconds.clone(),
        );
        metrics.registry = Arc::new(registry);
        metrics
    }
}

/// What `/health` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub name: String,
    pub address: String,
    pub peers: usize,
    pub min_peers: usize,
    pub database_reachable: bool,
    pub writer: bool,
    pub last_stored: Option<LastStored>,
    #[serde(skip)]
    pub last_stored_id: Option<protocol::PriceId>,
}

impl Health {
    pub fn stored(&mut self, id: protocol::PriceId) {
        if self.last_stored_id.is_none_or(|last| id > last) {
            self.last_stored_id = Some(id);
            self.last_stored = Some(LastStored {
                id: id.to_string(),
                observed_at_ms: id.unix_ms(),
            });
        }
    }
}

/// The newest price this node knows to be stored (written by it, or seen in the database).
#[derive(Debug, Clone, Serialize)]
pub struct LastStored {
    pub id: String,
    pub observed_at_ms: u64,
}

#[derive(Clone)]
struct Shared {
    health: Arc<Mutex<Health>>,
    metrics: Metrics,
}

/// Serves `/health` and `/metrics` on `address` until the process ends.
pub async fn serve(
    address: SocketAddr,
    health: Arc<Mutex<Health>>,
    metrics: Metrics,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route("/health", get(health_page))
        .route("/metrics", get(metrics_page))
        .with_state(Shared { health, metrics });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the HTTP endpoint stopped");
        }
    });
    Ok(bound)
}

async fn health_page(State(shared): State<Shared>) -> impl IntoResponse {
    let health = shared.health.lock().map(|h| h.clone()).unwrap_or_default();
    let healthy = health.database_reachable && health.peers >= health.min_peers;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(health))
}

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

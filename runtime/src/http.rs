//! Each node's small HTTP endpoint: `/health` (peers, database reachable, last price stored) as
//! JSON, Prometheus `/metrics` (prometheus-client, the crate libp2p's metrics use), and the stored
//! prices for their consumers: `/prices/latest?feed=ETH/USD`, `/prices/{id}` and
//! `/prices?since=...&before=...&limit=...` (newest first). Each price comes with everything
//! needed to check it without trusting this node: the network id, the exact signed bytes, and
//! every signer with its signature.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query as Params, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::driver::now_ms;
use crate::store::{Query, Record, Store};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

/// What `/metrics` shows. Cheap to clone: every metric is shared. Everything the protocol counts
/// comes from the node's own counters (`protocol::Counters`), and the gauges from what `/health`
/// shows, both read at each scrape; the runtime adds only what the node cannot see: source
/// failures, latencies, audits of rows found stored.
#[derive(Clone)]
pub struct Metrics {
    /// The node's counters as of the last event it handled.
    pub node: Arc<Mutex<protocol::Counters>>,
    /// What `/health` shows; its numbers are also gauges here.
    pub health: Arc<Mutex<Health>>,
    pub stored_rows_failing_audit: Counter,
    pub source_failures: Family<SourceLabel, Counter>,
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
            node: Arc::default(),
            health: Arc::default(),
            stored_rows_failing_audit: Counter::default(),
            source_failures: Family::default(),
            to_quorum_seconds: seconds(),
            to_storage_seconds: seconds(),
            registry: Arc::new(Registry::default()),
        };
        let mut registry = Registry::with_prefix("oracle");
        let m = &metrics;
        registry.register_collector(Box::new(NodeCounters(m.node.clone())));
        registry.register_collector(Box::new(HealthGauges(m.health.clone())));
        registry.register(
            "stored_rows_failing_audit",
            "Rows found under an id this node went to write that fail the audit: written by \
             someone holding the database's credentials, not by the protocol",
            m.stored_rows_failing_audit.clone(),
        );
        // Every source's series exists from the start, at 0, so that a rule over its increase
        // sees the first failure.
        for exchange in crate::sources::Exchange::ALL {
            let source = exchange.to_string();
            let _ = m.source_failures.get_or_create(&SourceLabel { source });
        }
        registry.register(
            "source_failures",
            "Price source requests that failed, by source",
            m.source_failures.clone(),
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

/// What `/health` shows, as gauges encoded at each scrape.
#[derive(Debug)]
struct HealthGauges(Arc<Mutex<Health>>);

impl Collector for HealthGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let health = self.0.lock().map(|h| h.clone()).unwrap_or_default();
        let gauges = [
            (
                "peers",
                "Gossip peers on the oracle's topic that are members",
                health.peers as i64,
            ),
            (
                "database_reachable",
                "1 while the database answers, 0 while it does not",
                i64::from(health.database_reachable),
            ),
            (
                "writer",
                "1 while this node is the elected writer",
                i64::from(health.writer),
            ),
            (
                "sources_answered",
                "Price sources that answered the last observation (-1: not asked yet)",
                health.sources_answered.map_or(-1, |n| n as i64),
            ),
            (
                "own_signature_faults",
                "Signatures by this node's own key that did not verify (any: it cannot sign)",
                health.own_signature_faults as i64,
            ),
            (
                "clock_offset_seconds",
                "The wall clock minus the node's clock, while it catches up a step back",
                health.clock_offset_ms / 1_000,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = prometheus_client::metrics::gauge::ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// The node's counters as metrics, encoded at each scrape from the last snapshot.
#[derive(Debug)]
struct NodeCounters(Arc<Mutex<protocol::Counters>>);

impl Collector for NodeCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = self.0.lock().map(|c| c.clone()).unwrap_or_default();
        for (name, help, value) in counters.named() {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let families = [
            (
                "invalid_messages",
                "Gossip messages rejected (and their senders penalised), by kind",
                &counters.rejected,
            ),
            (
                "ignored_messages",
                "Gossip messages dropped without blame, by reason",
                &counters
                    .ignored
                    .iter()
                    .map(|(why, &n)| (why.name(), n))
                    .collect(),
            ),
        ];
        for (name, help, by_kind) in families {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (&kind, &value) in by_kind {
                let label = Kind {
                    kind: kind.to_owned(),
                };
                ConstCounter::new(value).encode(family.encode_family(&label)?)?;
            }
        }
        Ok(())
    }
}

/// What `/health` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub name: String,
    pub address: String,
    pub peers: usize,
    pub min_peers: usize,
    /// Price sources that answered the last observation (none yet: not known).
    pub sources_answered: Option<usize>,
    pub min_sources: usize,
    pub database_reachable: bool,
    /// Milliseconds since the database last answered a read: a database that hangs shows here
    /// first. Filled in when served.
    pub database_answered_ms_ago: Option<u64>,
    #[serde(skip)]
    pub database_answered_at: Option<std::time::Instant>,
    /// The wall clock minus the node's clock (see `protocol::Clock`): non-zero while the node
    /// catches up with a wall clock stepped back.
    pub clock_offset_ms: i64,
    /// Ids this node went to write and found stored under a row that fails the audit.
    pub stored_rows_failing_audit: Vec<String>,
    /// Signatures by this node's own key that did not verify: while any, the node can neither
    /// publish nor co-sign, and `/health` is red.
    pub own_signature_faults: u64,
    pub writer: bool,
    pub last_stored: Option<LastStored>,
}

/// The newest price this node knows to be stored (written by it, or seen in the database).
#[derive(Debug, Clone, Serialize)]
pub struct LastStored {
    #[serde(serialize_with = "as_text")]
    pub id: protocol::PriceId,
    pub observed_at_ms: u64,
}

fn as_text<S: serde::Serializer>(id: &protocol::PriceId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

impl Health {
    pub fn stored(&mut self, id: protocol::PriceId) {
        if self.last_stored.as_ref().is_none_or(|last| id > last.id) {
            self.last_stored = Some(LastStored {
                id,
                observed_at_ms: id.unix_ms(),
            });
        }
    }
}

#[derive(Clone)]
struct Shared {
    health: Arc<Mutex<Health>>,
    metrics: Metrics,
    store: Arc<Store>,
    latest_max_age: std::time::Duration,
    /// Each newly stored price, for every `/prices/stream` subscriber.
    stored: tokio::sync::broadcast::Sender<Arc<PriceJson>>,
}

/// Serves `/health`, `/metrics` and the prices on `address` until the process ends.
/// `/prices/latest` answers an error rather than a price older than `latest_max_age`, unless the
/// request gives its own `max_age`.
pub async fn serve(
    address: SocketAddr,
    metrics: Metrics,
    store: Arc<Store>,
    latest_max_age: std::time::Duration,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let (stored, _) = tokio::sync::broadcast::channel(STREAM_BUFFER);
    let router = Router::new()
        .route("/health", get(health_page))
        .route("/metrics", get(metrics_page))
        .route("/prices/latest", get(latest_price))
        .route("/prices/aggregate", get(aggregate_price))
        .route("/prices/stream", get(price_stream))
        .route("/prices/{id}", get(one_price))
        .route("/prices", get(prices))
        .with_state(Shared {
            health: metrics.health.clone(),
            metrics,
            store: store.clone(),
            latest_max_age,
            stored: stored.clone(),
        });
    tokio::spawn(poll_stored(store, stored));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the HTTP endpoint stopped");
        }
    });
    Ok(bound)
}

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

/// Most prices one page returns.
const MAX_PAGE: u64 = 1_000;

/// A stored price as consumers get it.
#[derive(Debug, Clone, Serialize)]
pub struct PriceJson {
    pub id: String,
    pub feed: String,
    /// The fixed-point value as a decimal, and its exact units and decimals.
    pub price: String,
    pub price_units: String,
    pub decimals: u8,
    pub observed_at_ms: u64,
    pub origin: String,
    pub network_id: String,
    /// The 105 bytes every signature signs, and their keccak256.
    pub signed_bytes: String,
    pub digest: String,
    pub signatures: Vec<SignatureJson>,
    pub quorum: i16,
    pub writer: String,
    pub stored_at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignatureJson {
    pub signer: String,
    pub signature: String,
}

impl PriceJson {
    fn of(record: Record) -> Result<PriceJson, String> {
        let parts = record.signed_parts().map_err(|e| e.to_string())?;
        let signed = parts.body.signed_bytes(&parts.network_id);
        Ok(PriceJson {
            id: record.id,
            feed: record.feed,
            price: parts.body.price.display(parts.body.decimals),
            price_units: record.price_units,
            decimals: parts.body.decimals,
            observed_at_ms: parts.body.observed_at_ms,
            origin: parts.origin.to_string(),
            network_id: format!("0x{}", hex::encode(parts.network_id)),
            signed_bytes: format!("0x{}", hex::encode(signed)),
            digest: format!("0x{}", hex::encode(protocol::keccak256(&signed))),
            signatures: parts
                .signatures
                .iter()
                .map(|(signer, signature)| SignatureJson {
                    signer: signer.to_string(),
                    signature: format!("0x{}", hex::encode(signature.0)),
                })
                .collect(),
            quorum: record.quorum,
            writer: record.writer,
            stored_at_ms: record.inserted_at_ms,
        })
    }
}

type Reply = (StatusCode, axum::Json<serde_json::Value>);

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    let message: String = message.into();
    (status, axum::Json(serde_json::json!({ "error": message })))
}

async fn read(
    shared: &Shared,
    query: Query,
    id: Option<protocol::PriceId>,
) -> Result<Vec<PriceJson>, Reply> {
    let records = shared.store.records(&query, id).await.map_err(|e| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database: {e}"),
        )
    })?;
    records
        .into_iter()
        .map(PriceJson::of)
        .collect::<Result<_, _>>()
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))
}

fn json(value: impl Serialize) -> Reply {
    (
        StatusCode::OK,
        axum::Json(serde_json::to_value(value).unwrap_or_default()),
    )
}

async fn latest_price(
    State(shared): State<Shared>,
    Params(params): Params<std::collections::HashMap<String, String>>,
) -> Reply {
    let feed = feed(&params);
    let max_age = match duration(&params, "max_age", shared.latest_max_age) {
        Ok(max_age) => max_age,
        Err(reply) => return reply,
    };
    let query = Query {
        feed: Some(feed.clone()),
        limit: 1,
        newest_first: true,
        ..Query::default()
    };
    let newest = match read(&shared, query, None).await {
        Ok(mut prices) if !prices.is_empty() => prices.remove(0),
        Ok(_) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no stored price for feed {feed:?}"),
            );
        }
        Err(reply) => return reply,
    };
    let age = std::time::Duration::from_millis(now_ms().saturating_sub(newest.observed_at_ms));
    if age > max_age {
        let whole = |d: std::time::Duration| {
            humantime::format_duration(std::time::Duration::from_secs(d.as_secs()))
        };
        let message = format!(
            "the newest stored {feed} price ({}) was observed {} ago, longer than max_age {}: \
             the network may have stopped storing prices; GET /prices?limit=1 returns it anyway",
            newest.id,
            whole(age),
            whole(max_age),
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": message,
                "id": newest.id,
                "age_ms": age.as_millis() as u64,
                "max_age_ms": max_age.as_millis() as u64,
            })),
        );
    }
    json(newest)
}

/// Prices a `/prices/stream` subscriber may fall behind by before it is told it missed some.
const STREAM_BUFFER: usize = 1_024;
/// How far back each look at the database reaches again: a row becomes visible when its
/// transaction commits, which may be after the storage time it carries.
const STREAM_LOOKBACK_MS: u64 = 5_000;

/// Reads what was stored since it last looked, every second while anyone listens, and hands each
/// new price to every `/prices/stream` subscriber. Polling serves PostgreSQL shared with other
/// writers and the embedded database alike; the rows are the same whoever wrote them.
async fn poll_stored(store: Arc<Store>, stored: tokio::sync::broadcast::Sender<Arc<PriceJson>>) {
    let mut newest_ms = now_ms();
    // Ids already sent, with their storage times, kept for the lookback.
    let mut sent: std::collections::HashMap<String, u64> = Default::default();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut failing = false;
    loop {
        tick.tick().await;
        if stored.receiver_count() == 0 {
            newest_ms = now_ms();
            sent.clear();
            continue;
        }
        let since_ms = newest_ms.saturating_sub(STREAM_LOOKBACK_MS);
        let query = Query {
            since_ms,
            // A bound the database's timestamps can hold (a day ahead covers any clock skew).
            before_ms: now_ms() + 86_400_000,
            limit: MAX_PAGE,
            by_storage: true,
            ..Query::default()
        };
        let records = match store.records(&query, None).await {
            Ok(records) => {
                failing = false;
                records
            }
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%error, "/prices/stream cannot read new prices; retrying");
                }
                continue;
            }
        };
        for record in records {
            let at = record.inserted_at_ms.max(0) as u64;
            newest_ms = newest_ms.max(at);
            if sent.insert(record.id.clone(), at).is_some() {
                continue;
            }
            if let Ok(price) = PriceJson::of(record) {
                let _ = stored.send(Arc::new(price));
            }
        }
        sent.retain(|_, at| *at >= since_ms);
    }
}

/// The `feed` parameter; ETH/USD without one.
fn feed(params: &std::collections::HashMap<String, String>) -> String {
    params
        .get("feed")
        .cloned()
        .unwrap_or_else(|| "ETH/USD".to_owned())
}

/// The duration parameter `name` (`default` without one), or the error reply that says how to
/// write one.
fn duration(
    params: &std::collections::HashMap<String, String>,
    name: &str,
    default: std::time::Duration,
) -> Result<std::time::Duration, Reply> {
    match params.get(name).map(|t| humantime::parse_duration(t)) {
        None => Ok(default),
        Some(Ok(duration)) => Ok(duration),
        Some(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("{name}: {e}; give a duration like 90s, 30m or 2h"),
        )),
    }
}

/// `/prices/stream?feed=ETH/USD`: each newly stored price, from whichever node wrote it, as a
/// Server-Sent Event `price` (its id as the event id, the price as in `/prices/{id}`). A client
/// that reads too slowly gets an event `lagged` saying how many it missed.
async fn price_stream(
    State(shared): State<Shared>,
    Params(params): Params<std::collections::HashMap<String, String>>,
) -> impl IntoResponse {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    let feed = params.get("feed").cloned();
    let receiver = shared.stored.subscribe();
    let events = futures_util::stream::unfold(receiver, move |mut receiver| {
        let feed = feed.clone();
        async move {
            loop {
                let event = match receiver.recv().await {
                    Ok(price) if feed.as_ref().is_none_or(|f| *f == price.feed) => Event::default()
                        .event("price")
                        .id(price.id.clone())
                        .json_data(&*price),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => Ok(Event::default().event("lagged").data(
                        format!("{missed} prices were not sent: this client read too slowly; GET /prices has them"),
                    )),
                    Err(RecvError::Closed) => return None,
                };
                return Some((event, receiver));
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// `/prices/aggregate?feed=ETH/USD&window=30m`: `protocol::aggregate` over the prices stored
/// within the window (default: the latest price's default max age).
async fn aggregate_price(
    State(shared): State<Shared>,
    Params(params): Params<std::collections::HashMap<String, String>>,
) -> Reply {
    let feed = feed(&params);
    let window = match duration(&params, "window", shared.latest_max_age) {
        Ok(window) => window,
        Err(reply) => return reply,
    };
    let query = Query {
        feed: Some(feed.clone()),
        since_ms: now_ms().saturating_sub(window.as_millis() as u64),
        limit: MAX_PAGE,
        newest_first: true,
        ..Query::default()
    };
    let records = match shared.store.records(&query, None).await {
        Ok(records) => records,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the database: {e}"),
            );
        }
    };
    let mut decimals = 0;
    let mut samples = Vec::new();
    for record in records {
        match record.signed_parts() {
            Ok(parts) => {
                decimals = parts.body.decimals;
                samples.push(protocol::Sample {
                    id: parts.body.id,
                    origin: parts.origin,
                    price: parts.body.price,
                    observed_at_ms: parts.body.observed_at_ms,
                });
            }
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    let Some(aggregate) = protocol::aggregate(samples) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no {feed} price was stored within the last {}",
                humantime::format_duration(window)
            ),
        );
    };
    let price = |p: protocol::Price| p.display(decimals);
    let prices: Vec<serde_json::Value> = aggregate
        .samples
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id.to_string(),
                "origin": s.origin.to_string(),
                "price": price(s.price),
                "observed_at_ms": s.observed_at_ms,
            })
        })
        .collect();
    json(serde_json::json!({
        "feed": feed,
        "window_ms": window.as_millis() as u64,
        "origins": aggregate.samples.len(),
        "median": price(aggregate.median.price),
        "median_id": aggregate.median.id.to_string(),
        "min": price(aggregate.min),
        "max": price(aggregate.max),
        "q1": price(aggregate.q1),
        "q3": price(aggregate.q3),
        "interquartile_range": price(protocol::Price(aggregate.q3.0 - aggregate.q1.0)),
        "prices": prices,
    }))
}

async fn one_price(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    let Some(id) = crate::store::parse_id(&id) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a price id (a UUID)"),
        );
    };
    match read(&shared, Query::default(), Some(id)).await {
        Ok(mut prices) if !prices.is_empty() => json(prices.remove(0)),
        Ok(_) => error(StatusCode::NOT_FOUND, format!("no stored price {id}")),
        Err(reply) => reply,
    }
}

async fn prices(
    State(shared): State<Shared>,
    Params(params): Params<std::collections::HashMap<String, String>>,
) -> Reply {
    let moment = |name: &str| -> Result<Option<u64>, Reply> {
        params
            .get(name)
            .map(|text| crate::cli::parse_moment(text))
            .transpose()
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("{name}: {e}")))
    };
    let (since, before) = match (moment("since"), moment("before")) {
        (Ok(since), Ok(before)) => (since, before),
        (Err(reply), _) | (_, Err(reply)) => return reply,
    };
    let limit = match params.get("limit").map(|l| l.parse::<u64>()) {
        None => 100,
        Some(Ok(limit)) if (1..=MAX_PAGE).contains(&limit) => limit,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("limit: a whole number from 1 to {MAX_PAGE}"),
            );
        }
    };
    if let Some(unknown) = params
        .keys()
        .find(|k| !["since", "before", "limit", "feed"].contains(&k.as_str()))
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown parameter {unknown:?}"),
        );
    }
    let query = Query {
        feed: params.get("feed").cloned(),
        since_ms: since.unwrap_or(0),
        before_ms: before.unwrap_or(i64::MAX as u64),
        limit,
        newest_first: true,
        by_storage: false,
    };
    match read(&shared, query, None).await {
        Ok(prices) => json(prices),
        Err(reply) => reply,
    }
}

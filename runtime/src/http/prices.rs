//! The stored prices, for their consumers: `/prices/latest`, `/prices/aggregate`,
//! `/prices/stream`, `/prices/{id}` and `/prices`.

use std::sync::Arc;

use axum::extract::{Path, Query as Params, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::Shared;
use crate::driver::now_ms;
use crate::store::{Query, Record, Store};

/// Most prices one page returns.
const MAX_PAGE: u64 = 1_000;

/// A stored price as consumers get it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PriceJson {
    /// The price id: a UUID whose first bits are the observation time and the origin's address.
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

#[derive(Debug, Clone, Serialize, ToSchema)]
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

/// What every error answers.
#[derive(Serialize, ToSchema)]
pub struct ErrorJson {
    /// What went wrong, and what to do about it.
    pub error: String,
}

/// `/prices/latest`'s 404: when the newest price is older than `max_age`, its id and age too.
#[derive(Serialize, ToSchema)]
pub struct StaleJson {
    pub error: String,
    /// The newest stored price's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
}

/// `/prices/aggregate`'s answer: the median of the newest price of each origin in the window.
#[derive(Serialize, ToSchema)]
pub struct AggregateJson {
    pub feed: String,
    pub window_ms: u64,
    /// Distinct origins counted, one price each.
    pub origins: usize,
    pub median: String,
    /// The id of the stored price that is the median (the lower one of an even count).
    pub median_id: String,
    pub min: String,
    pub max: String,
    pub q1: String,
    pub q3: String,
    pub interquartile_range: String,
    /// Every price counted, to be fetched from `/prices/{id}` and checked.
    pub prices: Vec<SampleJson>,
}

#[derive(Serialize, ToSchema)]
pub struct SampleJson {
    pub id: String,
    pub origin: String,
    pub price: String,
    pub observed_at_ms: u64,
}

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    let error = ErrorJson {
        error: message.into(),
    };
    (status, json(error).1)
}

/// The stored rows `query` asks for, or the reply that says the database cannot be read.
async fn records(
    shared: &Shared,
    query: &Query,
    id: Option<protocol::PriceId>,
) -> Result<Vec<Record>, Reply> {
    shared.store.records(query, id).await.map_err(|e| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database: {e}"),
        )
    })
}

async fn read(
    shared: &Shared,
    query: Query,
    id: Option<protocol::PriceId>,
) -> Result<Vec<PriceJson>, Reply> {
    records(shared, &query, id)
        .await?
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

/// The newest stored price, unless it is older than `max_age`: a stale price is never served as
/// fresh.
#[utoipa::path(get, path = "/prices/latest", tag = "prices",
    params(("feed" = Option<String>, Query, description = "The feed, like ETH/USD (the default)"),
        ("max_age" = Option<String>, Query, pattern = r"^[0-9]{1,6}(ms|s|m|h|d)([0-9]{1,6}(ms|s|m|h|d))*$",
            description = "The oldest price to answer with, like 90s, 30m or 1h30m (default: three price intervals)")),
    responses(
        (status = 200, description = "The newest stored price", body = PriceJson),
        (status = 400, description = "A parameter cannot be read", body = ErrorJson),
        (status = 404, description = "No current price: none stored for the feed, or the newest is older than max_age (the body says how old)", body = StaleJson),
        (status = 503, description = "The database cannot be read", body = ErrorJson)))]
pub(super) async fn latest_price(
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
        let stale = StaleJson {
            error: message,
            id: Some(newest.id),
            age_ms: Some(age.as_millis() as u64),
            max_age_ms: Some(max_age.as_millis() as u64),
        };
        // No current price: the request is sound, the server works, what it asks for is missing.
        return (StatusCode::NOT_FOUND, json(stale).1);
    }
    json(newest)
}

/// Prices a `/prices/stream` subscriber may fall behind by before it is told it missed some.
pub(super) const STREAM_BUFFER: usize = 1_024;
/// How far back each look at the database reaches again: a row becomes visible when its
/// transaction commits, which may be after the storage time it carries.
const STREAM_LOOKBACK_MS: u64 = 5_000;

/// Reads what was stored since it last looked, every second while anyone listens, and hands each
/// new price to every `/prices/stream` subscriber. Polling serves PostgreSQL shared with other
/// writers and the embedded database alike; the rows are the same whoever wrote them.
pub(super) async fn poll_stored(
    store: Arc<Store>,
    stored: tokio::sync::broadcast::Sender<Arc<PriceJson>>,
) {
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
#[utoipa::path(get, path = "/prices/stream", tag = "prices",
    params(("feed" = Option<String>, Query, description = "Only this feed's prices (default: every feed)")),
    responses((status = 200, description = "Server-Sent Events: `price` with a price as in \
        /prices/{id}, `lagged` when the client read too slowly", content_type = "text/event-stream")))]
pub(super) async fn price_stream(
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
#[utoipa::path(get, path = "/prices/aggregate", tag = "prices",
    params(("feed" = Option<String>, Query, description = "The feed, like ETH/USD (the default)"),
        ("window" = Option<String>, Query, pattern = r"^[0-9]{1,6}(ms|s|m|h|d)([0-9]{1,6}(ms|s|m|h|d))*$",
            description = "How far back, like 30m or 1h30m (default: three price intervals)")),
    responses(
        (status = 200, description = "The median of the newest price of each origin", body = AggregateJson),
        (status = 400, description = "A parameter cannot be read", body = ErrorJson),
        (status = 500, description = "A stored row cannot be read", body = ErrorJson),
        (status = 404, description = "No price stored within the window", body = ErrorJson),
        (status = 503, description = "The database cannot be read", body = ErrorJson)))]
pub(super) async fn aggregate_price(
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
    let records = match records(&shared, &query, None).await {
        Ok(records) => records,
        Err(reply) => return reply,
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
            StatusCode::NOT_FOUND,
            format!(
                "no {feed} price was stored within the last {}",
                humantime::format_duration(window)
            ),
        );
    };
    let price = |p: protocol::Price| p.display(decimals);
    json(AggregateJson {
        feed,
        window_ms: window.as_millis() as u64,
        origins: aggregate.samples.len(),
        median: price(aggregate.median.price),
        median_id: aggregate.median.id.to_string(),
        min: price(aggregate.min),
        max: price(aggregate.max),
        q1: price(aggregate.q1),
        q3: price(aggregate.q3),
        interquartile_range: price(protocol::Price(aggregate.q3.0 - aggregate.q1.0)),
        prices: aggregate
            .samples
            .iter()
            .map(|s| SampleJson {
                id: s.id.to_string(),
                origin: s.origin.to_string(),
                price: price(s.price),
                observed_at_ms: s.observed_at_ms,
            })
            .collect(),
    })
}

/// One stored price.
#[utoipa::path(get, path = "/prices/{id}", tag = "prices",
    params(("id" = String, Path,
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        description = "The price id, a UUID")),
    responses(
        (status = 200, description = "The price", body = PriceJson),
        (status = 400, description = "Not a price id", body = ErrorJson),
        (status = 404, description = "No price stored under this id", body = ErrorJson),
        (status = 500, description = "The stored row cannot be read", body = ErrorJson),
        (status = 503, description = "The database cannot be read", body = ErrorJson)))]
pub(super) async fn one_price(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
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

/// Stored prices, newest first.
#[utoipa::path(get, path = "/prices", tag = "prices",
    params(("feed" = Option<String>, Query, description = "The feed, like ETH/USD (the default)"),
        ("since" = Option<u64>, Query, minimum = 0, maximum = 9_223_372_036_854_775_807_u64,
            description = "Observed at or after, in unix milliseconds (an RFC 3339 moment like 2026-11-21T10:00:00Z is read too)"),
        ("before" = Option<u64>, Query, minimum = 0, maximum = 9_223_372_036_854_775_807_u64,
            description = "Observed before, in unix milliseconds (or RFC 3339, as since)"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)")),
    responses(
        (status = 200, description = "The prices", body = Vec<PriceJson>),
        (status = 400, description = "A parameter cannot be read", body = ErrorJson),
        (status = 500, description = "A stored row cannot be read", body = ErrorJson),
        (status = 503, description = "The database cannot be read", body = ErrorJson)))]
pub(super) async fn prices(
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

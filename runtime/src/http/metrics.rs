//! What `/metrics` and `/health` show: the node's counters, the runtime's own measures, and the
//! health gauges.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
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
    /// Broadcasts the gossip layer did not send, by its reason (`network::refusal`).
    pub broadcasts_refused: Family<Reason, Counter>,
    pub to_quorum_seconds: Histogram,
    pub to_storage_seconds: Histogram,
    pub(super) registry: Arc<Registry>,
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
            broadcasts_refused: Family::default(),
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
        for reason in crate::network::REFUSALS {
            let _ = m.broadcasts_refused.get_or_create(&Reason { reason });
        }
        registry.register(
            "broadcasts_refused",
            "Broadcasts the gossip layer did not send, by reason (duplicate: it holds the same \
             bytes, sent or received; no peers: no subscribed peer to send to)",
            m.broadcasts_refused.clone(),
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
                    .map(|(why, n)| (why.name(), n))
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
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
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
    #[schema(ignore)]
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
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastStored {
    #[serde(serialize_with = "as_text")]
    #[schema(value_type = String)]
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

//! A deployment's settings, their checks, and the network id (config digest) that every signature
//! carries so that no signature replays across deployments.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::committee::Committee;
use crate::crypto::{Address, Recover, SignatureCheck};
use crate::price::{Feed, MAX_DECIMALS};
use crate::wire::MAX_SIGNATURES;

/// Who may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signers {
    /// Only these addresses; anything signed by someone else is rejected.
    Allowlist(Allowlist),
    /// Any valid signature counts. An explicit choice: one operator with many keys can then reach a
    /// quorum alone.
    Open,
}

impl Signers {
    /// Only `members` may sign.
    pub fn allowlist(members: impl IntoIterator<Item = Address>) -> Signers {
        let set: BTreeSet<Address> = members.into_iter().collect();
        // The operator chose every member and the table never changes, so nobody can lengthen its
        // chains: any key will do, even one everybody knows.
        let ring = Arc::new(Committee::new(0, set.iter().copied()));
        Signers::Allowlist(Allowlist(Arc::new((set, ring))))
    }
}

/// The addresses allowed to sign, and their committee ring, built once and shared by every clone
/// of the config: a simulated network holds thousands of nodes, each of which used to copy both,
/// and looked them up on every message in memory no cache could hold.
#[derive(Clone)]
pub struct Allowlist(Arc<(BTreeSet<Address>, Arc<Committee>)>);

impl Allowlist {
    pub(crate) fn ring(&self) -> Arc<Committee> {
        self.0.1.clone()
    }

    /// Whether `signer` may sign: asked of the ring's hash table, not of the set behind `Deref`,
    /// as every message asks it for each signer.
    pub fn contains(&self, signer: &Address) -> bool {
        self.0.1.contains(*signer)
    }
}

impl std::ops::Deref for Allowlist {
    type Target = BTreeSet<Address>;

    fn deref(&self) -> &BTreeSet<Address> {
        &self.0.0
    }
}

impl PartialEq for Allowlist {
    fn eq(&self, other: &Allowlist) -> bool {
        self.0.0 == other.0.0
    }
}

impl Eq for Allowlist {}

impl std::fmt::Debug for Allowlist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.0.fmt(f)
    }
}

/// Every setting of a node. Times are milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Deployment name, part of the network id.
    pub network: String,
    pub feed: Feed,
    /// Decimals of the fixed-point price.
    pub decimals: u8,
    /// Distinct valid signatures a price needs before it is written.
    pub quorum: usize,
    pub signers: Signers,
    /// Co-signers asked first for each price (the committee); the next as many step in after each
    /// `cosign_step_ms` without quorum. `None`: the quorum, one more than needed with the origin,
    /// as a spare (see [`Config::committee`]).
    pub committee: Option<usize>,
    pub cosign_step_ms: u64,
    /// How often each node observes and publishes its own price (the heartbeat: whatever the
    /// market does).
    pub price_interval_ms: u64,
    /// How often a node observes between its publications, to publish early on a move.
    pub observe_interval_ms: u64,
    /// A node publishes at once when its observation is this far from its last publication, in
    /// basis points; 0 publishes only every `price_interval_ms`.
    pub deviation_bps: u32,
    /// Largest distance from this node's own observation it will co-sign, in basis points.
    pub max_deviation_bps: u32,
    /// A price observed longer ago than this is no longer co-signed.
    pub max_age_ms: u64,
    /// A price observed further in the future than this is rejected.
    pub max_skew_ms: u64,
    /// How old this node's own observation may be to judge somebody else's price; older, it
    /// observes again first.
    pub reference_max_age_ms: u64,
    /// Sources that must answer for an observation to count.
    pub min_sources: usize,
    /// Peers needed before this node publishes its own prices.
    pub min_peers: usize,
    /// Time since the last new signature before a ready price is written.
    pub write_delay_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// A heartbeat older than this never makes its node the writer.
    pub heartbeat_stale_ms: u64,
    /// The writer is chosen anew each term.
    pub writer_term_ms: u64,
    /// Nodes next in the term's order that write a ready price not seen stored, the k-th
    /// `k × backup_step_ms` after it was due: a writer that died or lies silent delays a price by
    /// one step, not a term. The primary key makes an overlap harmless.
    pub backup_writers: usize,
    pub backup_step_ms: u64,
    /// First wait before a failed write is retried (doubling, up to 32 times this).
    pub write_retry_ms: u64,
    /// How long a driver waits for any database call before it reports the call failed. A write
    /// still unanswered after twice this is presumed failed by the node and retried, so a database
    /// that hangs cannot hold a price forever.
    pub database_timeout_ms: u64,
    /// A signer of a ready price not yet seen stored re-broadcasts it this long after it was due.
    pub retransmit_after_ms: u64,
    pub max_retransmits: u32,
    /// A ready price not stored after this long (from its observation) is given up.
    pub ready_ttl_ms: u64,
    /// Prices held in memory at most, whatever the input.
    pub max_prices: usize,
    /// Prices from one origin held at most before quorum.
    pub max_pending_per_origin: usize,
}

impl Config {
    /// The default of [`Config::database_timeout_ms`], which a driver's database calls share.
    pub const DEFAULT_DATABASE_TIMEOUT_MS: u64 = 10_000;

    /// The production defaults for a feed, with the given signers.
    pub fn new(network: &str, feed: Feed, signers: Signers) -> Config {
        Config {
            network: network.to_owned(),
            feed,
            decimals: 8,
            quorum: 3,
            signers,
            committee: None,
            cosign_step_ms: 5_000,
            price_interval_ms: 600_000,
            observe_interval_ms: 30_000,
            deviation_bps: 50,
            max_deviation_bps: 100,
            max_age_ms: 180_000,
            max_skew_ms: 60_000,
            reference_max_age_ms: 60_000,
            min_sources: 2,
            min_peers: 3,
            write_delay_ms: 30_000,
            heartbeat_interval_ms: 5_000,
            heartbeat_stale_ms: 15_000,
            writer_term_ms: 60_000,
            backup_writers: 2,
            backup_step_ms: 10_000,
            write_retry_ms: 1_000,
            database_timeout_ms: Config::DEFAULT_DATABASE_TIMEOUT_MS,
            retransmit_after_ms: 60_000,
            max_retransmits: 5,
            ready_ttl_ms: 3_600_000,
            max_prices: 100_000,
            max_pending_per_origin: 8,
        }
    }

    /// Co-signers asked first for each price: as set, or the quorum.
    pub fn committee(&self) -> usize {
        self.committee.unwrap_or(self.quorum)
    }

    /// How long after the last fault (or after reaching quorum, if later) a price may take to be
    /// stored, as README promises: the write delay, a writer term and a stale heartbeat (a writer
    /// that died or lies silent), and two retransmission periods (a partition's side learning what
    /// the other stored). The simulation and the fault test on real processes both hold nodes to it.
    pub fn liveness_bound_ms(&self) -> u64 {
        self.write_delay_ms
            + self.writer_term_ms
            + self.heartbeat_stale_ms
            + 2 * self.retransmit_after_ms
    }

    /// Checks every setting; the error says which one and what to do.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use ConfigError::*;
        if self.network.is_empty() || self.network.len() > 64 {
            return Err(Network);
        }
        if self.decimals > MAX_DECIMALS {
            return Err(Decimals(self.decimals));
        }
        if self.quorum == 0 || self.quorum > MAX_SIGNATURES {
            return Err(Quorum(self.quorum));
        }
        if let Signers::Allowlist(list) = &self.signers
            && list.len() < self.quorum
        {
            return Err(AllowlistTooSmall {
                signers: list.len(),
                quorum: self.quorum,
            });
        }
        if self.committee() + 1 < self.quorum {
            return Err(Committee {
                committee: self.committee(),
                quorum: self.quorum,
            });
        }
        if self.max_deviation_bps > 10_000 {
            return Err(Deviation(self.max_deviation_bps));
        }
        if self.deviation_bps > 10_000 {
            return Err(Deviation(self.deviation_bps));
        }
        if self.min_sources == 0 {
            return Err(MinSources);
        }
        let durations = [
            ("cosign_step", self.cosign_step_ms),
            ("price_interval", self.price_interval_ms),
            ("observe_interval", self.observe_interval_ms),
            ("max_age", self.max_age_ms),
            ("reference_max_age", self.reference_max_age_ms),
            ("heartbeat_interval", self.heartbeat_interval_ms),
            ("writer_term", self.writer_term_ms),
            ("backup_step", self.backup_step_ms),
            ("write_retry", self.write_retry_ms),
            ("database_timeout", self.database_timeout_ms),
            ("retransmit_after", self.retransmit_after_ms),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, ms)| *ms == 0) {
            return Err(ZeroDuration(name));
        }
        if self.heartbeat_stale_ms <= self.heartbeat_interval_ms {
            return Err(HeartbeatStale);
        }
        if self.ready_ttl_ms < self.max_age_ms {
            return Err(ReadyTtl);
        }
        if self.max_prices == 0 || self.max_pending_per_origin == 0 {
            return Err(Capacity);
        }
        Ok(())
    }

    /// The config digest: keccak256 over the deployment name, feed, decimals, quorum and signer set.
    /// Every signed message carries it, so a signature from one deployment is void in any other.
    pub fn network_id(&self) -> [u8; 32] {
        self.network_id_by(&Recover)
    }

    /// [`Config::network_id`], hashed by `check` (which may share a memo of it: a driver of
    /// thousands of nodes of one deployment hashes its allowlist once, not once per node).
    pub(crate) fn network_id_by(&self, check: &dyn SignatureCheck) -> [u8; 32] {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(b"price-oracle:config:v1\n");
        bytes.push(self.network.len() as u8);
        bytes.extend_from_slice(self.network.as_bytes());
        bytes.extend_from_slice(&self.feed.padded());
        bytes.push(self.decimals);
        bytes.extend_from_slice(&(self.quorum as u32).to_be_bytes());
        match &self.signers {
            Signers::Open => bytes.push(0),
            Signers::Allowlist(list) => {
                bytes.push(1);
                bytes.extend_from_slice(&(list.len() as u32).to_be_bytes());
                list.iter().for_each(|a| bytes.extend_from_slice(&a.0));
            }
        }
        check.keccak(&bytes)
    }

    pub fn allows(&self, signer: Address) -> bool {
        match &self.signers {
            Signers::Open => true,
            Signers::Allowlist(list) => list.contains(&signer),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the network name must have 1 to 64 bytes")]
    Network,
    #[error("decimals must be at most {MAX_DECIMALS}, not {0}")]
    Decimals(u8),
    #[error("quorum must be between 1 and {MAX_SIGNATURES}, not {0}")]
    Quorum(usize),
    #[error(
        "the signer allowlist has {signers} addresses but quorum is {quorum}: add signers or lower the quorum"
    )]
    AllowlistTooSmall { signers: usize, quorum: usize },
    #[error(
        "a committee of {committee} co-signers cannot reach quorum {quorum} with the origin: use at least quorum - 1"
    )]
    Committee { committee: usize, quorum: usize },
    #[error("max deviation is in basis points and at most 10000 (100 %), not {0}")]
    Deviation(u32),
    #[error("at least one price source must be required")]
    MinSources,
    #[error("{0} must be longer than zero")]
    ZeroDuration(&'static str),
    #[error("heartbeat staleness must be longer than the heartbeat interval")]
    HeartbeatStale,
    #[error("ready price TTL must be at least max age")]
    ReadyTtl,
    #[error("price capacities must be at least 1")]
    Capacity,
    #[error("this node's address {0} is not on the signer allowlist: add it, or use another key")]
    NotAllowlisted(Address),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(signers: usize) -> Config {
        let list = (0..signers as u8).map(|i| Address([i; 20]));
        Config::new("test", Feed::eth_usd(), Signers::allowlist(list))
    }

    #[test]
    fn the_committee_is_the_quorum_unless_set() {
        let mut c = config(7);
        c.quorum = 5;
        assert_eq!(c.committee(), 5);
        c.committee = Some(4);
        assert_eq!(c.committee(), 4);
    }

    #[test]
    fn defaults_are_valid_and_each_check_can_fail() {
        assert_eq!(config(4).validate(), Ok(()));
        assert_eq!(
            config(2).validate(),
            Err(ConfigError::AllowlistTooSmall {
                signers: 2,
                quorum: 3
            })
        );
        type Breaks = fn(&mut Config);
        let broken: [(Breaks, ConfigError); 9] = [
            (|c| c.quorum = 0, ConfigError::Quorum(0)),
            (|c| c.network.clear(), ConfigError::Network),
            (|c| c.decimals = 39, ConfigError::Decimals(39)),
            (
                |c| c.committee = Some(1),
                ConfigError::Committee {
                    committee: 1,
                    quorum: 3,
                },
            ),
            (
                |c| c.max_deviation_bps = 10_001,
                ConfigError::Deviation(10_001),
            ),
            (
                |c| c.write_retry_ms = 0,
                ConfigError::ZeroDuration("write_retry"),
            ),
            (
                |c| c.heartbeat_stale_ms = 5_000,
                ConfigError::HeartbeatStale,
            ),
            (|c| c.ready_ttl_ms = 1, ConfigError::ReadyTtl),
            (|c| c.max_prices = 0, ConfigError::Capacity),
        ];
        for (breaks, expected) in broken {
            let mut c = config(4);
            breaks(&mut c);
            assert_eq!(c.validate(), Err(expected));
        }
    }

    #[test]
    fn network_id_covers_every_field_it_names() {
        let base = config(4).network_id();
        let mut other = config(4);
        other.network = "other".into();
        assert_ne!(other.network_id(), base);
        let mut other = config(4);
        other.quorum = 4;
        assert_ne!(other.network_id(), base);
        assert_ne!(config(5).network_id(), base);
        let mut other = config(4);
        other.signers = Signers::Open;
        assert_ne!(other.network_id(), base);
        let mut other = config(4);
        other.feed = Feed::new("BTC/USD").unwrap();
        assert_ne!(other.network_id(), base);
        let mut other = config(4);
        other.max_age_ms += 1;
        assert_eq!(
            other.network_id(),
            base,
            "local policy is not part of the digest"
        );
    }
}

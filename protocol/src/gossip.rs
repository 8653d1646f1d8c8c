//! How the gossip layer treats a peer that sends invalid messages: gossipsub's invalid-message
//! penalty (its P4 score), with the numbers the production node configures and the simulated
//! network applies. They live here, once, so that what the simulation shows about penalties (who
//! stops hearing whom, and for how long) is what production does.
//!
//! Each message a node rejects adds 1 to a per-peer counter; every [`DECAY_INTERVAL_MS`] the
//! counter is multiplied by [`DECAY`] and, below [`DECAY_TO_ZERO`], reset. The peer's score is
//! `counter² × INVALID_MESSAGE_WEIGHT`. Below 0 the peer is pruned from the mesh (nothing is
//! forwarded to or from it) for at least [`PRUNE_BACKOFF_MS`], below [`PUBLISH_THRESHOLD`] it is not sent the node's own messages, and below
//! [`GRAYLIST_THRESHOLD`] everything it sends is ignored. One invalid message costs -10, three -90.

/// Weight of the squared invalid-message counter.
pub const INVALID_MESSAGE_WEIGHT: f64 = -10.0;
/// The counter's factor per decay interval.
pub const DECAY: f64 = 0.9;
/// How often counters decay (gossipsub's `decay_interval`, one second by default).
pub const DECAY_INTERVAL_MS: u64 = 1_000;
/// A decayed counter below this is reset to zero (gossipsub's default `decay_to_zero`).
pub const DECAY_TO_ZERO: f64 = 0.1;
/// How long a link pruned from the mesh stays out of it (gossipsub's `prune_backoff`).
pub const PRUNE_BACKOFF_MS: u64 = 60_000;
/// Below this score no gossip (IHAVE/IWANT) is exchanged with the peer.
pub const GOSSIP_THRESHOLD: f64 = -10.0;
/// Below this score the node's own messages are not published to the peer.
pub const PUBLISH_THRESHOLD: f64 = -50.0;
/// Below this score everything the peer sends is ignored.
pub const GRAYLIST_THRESHOLD: f64 = -80.0;

/// How long a node's gossip layer remembers a message id (gossipsub's `duplicate_cache_time`):
/// within it, the same bytes are neither forwarded nor published again. Half the retransmission
/// period, never more than gossipsub's default of 60 s: a copy is flooded well within it. A
/// retransmission does not depend on it, since its nonce gives it another id (gossipsub's
/// publish asks the cache as it was at its last insert, so a quiet node remembers longer).
pub fn duplicate_cache_ms(config: &crate::Config) -> u64 {
    (config.retransmit_after_ms / 2).min(60_000)
}

/// One peer's invalid-message counter as another node keeps it, decayed lazily.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Penalty {
    count: f64,
    /// The decay interval the counter was last brought up to.
    interval: u64,
}

impl Penalty {
    /// One more invalid message at `now` (milliseconds).
    pub fn record(&mut self, now: u64) {
        self.decay(now);
        self.count += 1.0;
    }

    /// The peer's score at `now`: 0 for a peer that sent nothing invalid recently.
    pub fn score(&self, now: u64) -> f64 {
        let mut decayed = *self;
        decayed.decay(now);
        decayed.count * decayed.count * INVALID_MESSAGE_WEIGHT
    }

    fn decay(&mut self, now: u64) {
        let interval = now / DECAY_INTERVAL_MS;
        for _ in self.interval..interval {
            if self.count == 0.0 {
                break;
            }
            self.count *= DECAY;
            if self.count < DECAY_TO_ZERO {
                self.count = 0.0;
            }
        }
        self.interval = self.interval.max(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_invalid_messages_graylist_and_decay_lifts_it() {
        let mut penalty = Penalty::default();
        assert_eq!(penalty.score(0), 0.0);
        penalty.record(0);
        assert_eq!(penalty.score(0), -10.0);
        penalty.record(0);
        penalty.record(0);
        assert!(penalty.score(0) < GRAYLIST_THRESHOLD);
        // 3 × 0.9^k: out of the graylist after 1 s, back to a score of 0 after 33 s.
        assert!(penalty.score(DECAY_INTERVAL_MS) > GRAYLIST_THRESHOLD);
        assert!(penalty.score(32 * DECAY_INTERVAL_MS) < 0.0);
        assert_eq!(penalty.score(33 * DECAY_INTERVAL_MS), 0.0);
    }
}

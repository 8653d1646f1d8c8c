//! Counters of what a node did and what it dropped. Peer misbehaviour is counted here, never
//! returned as an error.

use std::collections::BTreeMap;

use crate::io::Verdict;
use crate::wire::DecodeError;

/// Provably bad input: the message is rejected and its sender penalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Misbehaviour {
    Malformed(DecodeError),
    WrongNetwork,
    WrongFeed,
    /// Id not minted by the rules: bad version bits, or its time is not the observation time.
    BadId,
    /// No signature by the address the id was minted for.
    NoOriginSignature,
    UnknownSigner,
    BadSignature,
    /// Observed further in the future than clock skew explains.
    FromFuture,
}

impl Misbehaviour {
    /// A short, stable name without the details (lengths, versions), for metrics labels and
    /// reports: a bounded set, whatever peers send.
    pub fn name(self) -> &'static str {
        use DecodeError::*;
        match self {
            Misbehaviour::Malformed(error) => match error {
                TooLong(_) => "malformed: too long",
                Truncated => "malformed: truncated",
                Version(_) => "malformed: unknown version",
                Feed => "malformed: feed",
                Decimals(_) => "malformed: decimals",
                SignatureCount(_) => "malformed: signature count",
                TrailingBytes => "malformed: trailing bytes",
                Unsorted => "malformed: signers unsorted",
                DuplicateSigner => "malformed: duplicate signer",
            },
            Misbehaviour::WrongNetwork => "wrong network",
            Misbehaviour::WrongFeed => "wrong feed",
            Misbehaviour::BadId => "bad id",
            Misbehaviour::NoOriginSignature => "no origin signature",
            Misbehaviour::UnknownSigner => "unknown signer",
            Misbehaviour::BadSignature => "bad signature",
            Misbehaviour::FromFuture => "from the future",
        }
    }
}

/// Input dropped without blame: late, repeated, or beyond what this node keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ignored {
    /// Nothing this node did not already have.
    Duplicate,
    /// New signatures on a price already at quorum: kept, not forwarded.
    AlreadyReady,
    AlreadyStored,
    Stale,
    /// Another body under an id this node already holds.
    Equivocation,
    /// The origin already has as many prices waiting for quorum as one may.
    OriginLimit,
    /// This node holds as many prices as it may.
    Full,
}

impl Ignored {
    /// Every reason, in the order of the enum.
    pub const ALL: [Ignored; 7] = [
        Ignored::Duplicate,
        Ignored::AlreadyReady,
        Ignored::AlreadyStored,
        Ignored::Stale,
        Ignored::Equivocation,
        Ignored::OriginLimit,
        Ignored::Full,
    ];

    /// A short, stable name, for metrics labels and reports.
    pub fn name(self) -> &'static str {
        match self {
            Ignored::Duplicate => "duplicate",
            Ignored::AlreadyReady => "already at quorum",
            Ignored::AlreadyStored => "already stored",
            Ignored::Stale => "stale",
            Ignored::Equivocation => "equivocation",
            Ignored::OriginLimit => "origin limit",
            Ignored::Full => "full",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Counters {
    /// First: most copies a node is sent, it ignores.
    pub ignored: IgnoredCounts,
    pub published: u64,
    /// Of those, published before their interval because the price moved (`deviation_bps`).
    pub published_on_deviation: u64,
    pub publications_skipped: u64,
    pub cosigned: u64,
    pub refused: u64,
    pub quorum_reached: u64,
    pub writes: u64,
    pub inserted: u64,
    pub already_present: u64,
    pub write_failures: u64,
    pub broadcasts: u64,
    pub retransmits: u64,
    pub expired_without_quorum: u64,
    pub expired_unstored: u64,
    pub sources_insufficient: u64,
    /// Signatures from this node's own signer that did not verify: a local fault.
    pub own_signature_faults: u64,
    /// By [`Misbehaviour::name`]: a bounded set of keys, whatever numbers peers put in messages.
    pub rejected: BTreeMap<&'static str, u64>,
}

/// Messages ignored, by reason: a count in place for each, as a node ignores most copies it is
/// sent, and a map's node took a cache line of its own to count each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoredCounts([u64; Ignored::ALL.len()]);

impl IgnoredCounts {
    pub fn get(&self, why: Ignored) -> u64 {
        self.0.get(why as usize).copied().unwrap_or(0)
    }

    /// The reasons counted at least once, with their counts, in the order of the enum.
    pub fn iter(&self) -> impl Iterator<Item = (Ignored, u64)> + '_ {
        Ignored::ALL
            .into_iter()
            .map(|why| (why, self.get(why)))
            .filter(|&(_, n)| n > 0)
    }

    /// A reason left out of [`Ignored::ALL`] is not counted, rather than panic on a peer's
    /// message (the tests hold `ALL` to every reason).
    fn add(&mut self, why: Ignored) {
        if let Some(count) = self.0.get_mut(why as usize) {
            *count += 1;
        }
    }
}

impl Counters {
    /// Every plain counter with a stable name (a metric's, without prefix or `_total`) and what it
    /// counts: the one list a driver exports, so that nothing counted stays invisible.
    pub fn named(&self) -> [(&'static str, &'static str, u64); 16] {
        [
            (
                "prices_published",
                "Prices this node published",
                self.published,
            ),
            (
                "prices_published_on_deviation",
                "Prices published before their interval because the observation moved",
                self.published_on_deviation,
            ),
            (
                "publications_skipped",
                "Publications skipped: too few sources or peers, or a full bound",
                self.publications_skipped,
            ),
            (
                "prices_cosigned",
                "Prices this node co-signed",
                self.cosigned,
            ),
            (
                "cosign_refusals",
                "Prices this node refused to co-sign",
                self.refused,
            ),
            (
                "quorums_reached",
                "Prices that reached quorum at this node",
                self.quorum_reached,
            ),
            ("writes", "Writes this node started", self.writes),
            ("prices_stored", "Prices this node stored", self.inserted),
            (
                "duplicate_inserts_avoided",
                "Writes that found the price already stored",
                self.already_present,
            ),
            (
                "write_failures",
                "Writes that failed or never answered",
                self.write_failures,
            ),
            (
                "broadcasts",
                "Messages this node published on the topic",
                self.broadcasts,
            ),
            (
                "retransmits",
                "Prices sent again, not yet seen stored or short of quorum",
                self.retransmits,
            ),
            (
                "expired_without_quorum",
                "Prices given up before reaching quorum",
                self.expired_without_quorum,
            ),
            (
                "expired_unstored",
                "Prices at quorum given up unstored after the ready TTL",
                self.expired_unstored,
            ),
            (
                "sources_insufficient",
                "Observations with fewer answering sources than needed",
                self.sources_insufficient,
            ),
            (
                "own_signature_faults",
                "Signatures by this node's own key that did not verify: a local fault",
                self.own_signature_faults,
            ),
        ]
    }

    pub(crate) fn count(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Accept => {}
            Verdict::Ignore(why) => self.ignored.add(why),
            Verdict::Reject(kind) => *self.rejected.entry(kind.name()).or_default() += 1,
        }
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_is_counted_apart_and_listed_in_order() {
        let mut counters = Counters::default();
        for why in [Ignored::Full, Ignored::Duplicate, Ignored::Full] {
            counters.count(Verdict::Ignore(why));
        }
        counters.count(Verdict::Accept);
        assert_eq!(counters.ignored.get(Ignored::Full), 2);
        assert_eq!(counters.ignored.get(Ignored::Stale), 0);
        let listed: Vec<_> = counters.ignored.iter().collect();
        assert_eq!(listed, [(Ignored::Duplicate, 1), (Ignored::Full, 2)]);
        assert!(
            Ignored::ALL
                .iter()
                .enumerate()
                .all(|(i, &why)| why as usize == i)
        );
    }

    /// A reason added to `Ignored` stops this match compiling until it is given its place here,
    /// and then `ALL` must hold it in that place.
    #[test]
    fn all_lists_every_reason_in_its_place() {
        let place = |why: Ignored| match why {
            Ignored::Duplicate => 0,
            Ignored::AlreadyReady => 1,
            Ignored::AlreadyStored => 2,
            Ignored::Stale => 3,
            Ignored::Equivocation => 4,
            Ignored::OriginLimit => 5,
            Ignored::Full => 6,
        };
        assert_eq!(Ignored::ALL.len(), 7);
        assert!(
            Ignored::ALL
                .iter()
                .enumerate()
                .all(|(i, &why)| place(why) == i)
        );
    }
}

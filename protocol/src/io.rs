//! What goes into a node ([`Event`]) and what comes out ([`Action`]). The driver executes every
//! action and reports the outcome back as an event; nothing else crosses the boundary.

use crate::crypto::{Address, Signature};
use crate::metrics::{Ignored, Misbehaviour};
use crate::price::{Price, PriceId};
use crate::signatures::Signatures;
use crate::wire::Message;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The deadline from [`crate::Node::poll_timeout`] has passed.
    TimerDue,
    /// Answer to [`Action::FetchPrices`]: the prices of the sources that answered, already in the
    /// feed's fixed-point units. Which sources failed, and why, is the driver's to log.
    PricesFetched { answered: Vec<Price> },
    /// A gossip message arrived. Exactly one [`Action::Verdict`] answers it.
    Gossip { message: MessageRef, bytes: Vec<u8> },
    /// Answer to [`Action::Sign`].
    Signed { id: PriceId, signature: Signature },
    /// Answer to [`Action::ReadDatabase`]: every heartbeat row with its age by the database's clock,
    /// and the ids already stored from `stored_since` on.
    DatabaseRead {
        heartbeats: Vec<HeartbeatRow>,
        stored: Vec<PriceId>,
    },
    /// [`Action::Heartbeat`] or [`Action::ReadDatabase`] failed: the database is out of reach.
    DatabaseUnreachable,
    /// Answer to [`Action::Write`].
    WriteFinished { id: PriceId, outcome: WriteOutcome },
    /// The number of connected gossip peers changed.
    PeersChanged { count: usize },
}

/// The driver's handle on a received copy of a message, echoed back in the verdict. The driver
/// keeps what it needs to act on the verdict (the sender to penalise, the id to forward) under it;
/// the protocol never looks at who sent what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageRef {
    pub token: u64,
}

/// One row of the heartbeat table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatRow {
    pub node: Address,
    /// Milliseconds since the row was last written, by the database's own clock.
    pub age_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WriteOutcome {
    /// This write stored the price.
    Inserted,
    /// The id was already stored (by another writer, or an earlier attempt whose answer was lost).
    AlreadyPresent,
    /// Not stored; the node retries.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Ask every price source; answer with [`Event::PricesFetched`].
    FetchPrices,
    /// Sign this digest with the node's key; answer with [`Event::Signed`].
    Sign { id: PriceId, digest: [u8; 32] },
    /// Publish these bytes on the gossip topic.
    Broadcast {
        id: PriceId,
        why: Broadcast,
        bytes: Vec<u8>,
    },
    /// The verdict on a received message: forward it, drop it quietly, or drop it and penalise.
    Verdict {
        message: MessageRef,
        verdict: Verdict,
    },
    /// Upsert this node's heartbeat row (the database stamps its own time).
    Heartbeat,
    /// Read the heartbeat table, and the stored ids from `stored_since` on (none if `None`).
    ReadDatabase { stored_since: Option<PriceId> },
    /// Insert this price unless its id is already stored; answer with [`Event::WriteFinished`].
    /// Boxed: a row is large and written once per price, while every other action is small and
    /// frequent, and each action takes the size of the largest.
    Write(Box<PriceRow>),
    /// Something a person watching the node wants to know. Needs no answer.
    Report(Report),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Broadcast {
    /// This node's own price, first signature.
    Publish,
    /// A received price with this node's signature added.
    CoSign,
    /// Signatures from different messages merged into one that reaches quorum.
    Merge,
    /// A ready price still not seen stored, sent again.
    Retransmit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Valid and new: forward it.
    Accept,
    /// Harmless but not worth forwarding.
    Ignore(Ignored),
    /// Invalid: drop it and penalise the sender.
    Reject(Misbehaviour),
}

/// A row for the prices table, to be written: a message with at least quorum valid signatures.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PriceRow {
    pub message: Message,
    /// Who minted the price (its first signer).
    pub origin: Address,
    /// When the last new signature arrived, by the writer's clock.
    pub last_signature_at_ms: u64,
    pub writer: Address,
}

impl PriceRow {
    pub fn signatures(&self) -> &Signatures {
        self.message.signatures()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Report {
    Observed {
        price: Price,
        sources: usize,
    },
    SourcesInsufficient {
        answered: usize,
        needed: usize,
    },
    WaitingForPeers {
        peers: usize,
        needed: usize,
    },
    PeersEnough {
        peers: usize,
    },
    Published {
        id: PriceId,
        price: Price,
    },
    CoSigned {
        id: PriceId,
        origin: Address,
    },
    Refused {
        id: PriceId,
        why: Refusal,
    },
    /// `after_ms`: time since the price's observation, by this node's clock.
    QuorumReached {
        id: PriceId,
        signers: usize,
        after_ms: u64,
    },
    /// This node's write found the price in the database: stored by this write
    /// (`WriteOutcome::Inserted`) or by an earlier one (`WriteOutcome::AlreadyPresent`).
    Stored {
        id: PriceId,
        outcome: WriteOutcome,
        signers: usize,
        after_ms: u64,
    },
    WriterChanged {
        writer: bool,
    },
    /// A signature this node's own key made did not verify: the key or the signer is broken, and
    /// the node can neither publish nor co-sign until it is fixed.
    OwnSignatureFault {
        id: PriceId,
    },
    Expired {
        id: PriceId,
        reached_quorum: bool,
    },
}

impl Action {
    /// The price this action is about, if one (a verdict names the copy it answers, not a price).
    pub fn price_id(&self) -> Option<PriceId> {
        match self {
            Action::Sign { id, .. } | Action::Broadcast { id, .. } => Some(*id),
            Action::Write(row) => Some(row.message.body.id),
            Action::Report(report) => report.price_id(),
            Action::FetchPrices
            | Action::Verdict { .. }
            | Action::Heartbeat
            | Action::ReadDatabase { .. } => None,
        }
    }
}

impl Report {
    /// The price this report is about, if one.
    pub fn price_id(&self) -> Option<PriceId> {
        match *self {
            Report::Published { id, .. }
            | Report::CoSigned { id, .. }
            | Report::Refused { id, .. }
            | Report::QuorumReached { id, .. }
            | Report::Stored { id, .. }
            | Report::OwnSignatureFault { id }
            | Report::Expired { id, .. } => Some(id),
            Report::Observed { .. }
            | Report::SourcesInsufficient { .. }
            | Report::WaitingForPeers { .. }
            | Report::PeersEnough { .. }
            | Report::WriterChanged { .. } => None,
        }
    }
}

/// Why this node did not co-sign a price it was asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// Further from this node's own observation than the deviation bound.
    OutOfBand,
    /// Observed too long ago to be co-signed.
    Stale,
}

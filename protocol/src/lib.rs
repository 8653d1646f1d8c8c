//! The price oracle's protocol: a sans-IO state machine that owns every rule.
//!
//! A driver (the production runtime, or the simulation) owns one [`Node`] and feeds it [`Event`]s
//! with the current unix time in milliseconds through [`Node::drive`], which drains every action
//! into the driver's [`Io`]; it feeds [`Event::TimerDue`] once [`Node::poll_timeout`]'s deadline
//! passes.
//! The node does no I/O, reads no clock and draws randomness only from the seed it was given.

pub mod aggregate;
pub mod audit;
mod book;
pub mod clock;
mod codec;
mod committee;
pub mod config;
pub mod crypto;
mod drive;
mod election;
pub mod gossip;
mod held;
#[cfg(feature = "arbitrary")]
pub mod hostile;
pub mod io;
pub mod journal;
pub mod metrics;
mod node;
mod prefetch;
pub mod price;
mod receive;
pub mod signatures;
mod snapshot;
mod stored;
pub mod testing;
pub mod timers;
pub mod wire;

pub use aggregate::{Aggregate, Sample, aggregate};
pub use audit::{Flaw, audit};
pub use clock::Clock;
pub use config::{Allowlist, Config, ConfigError, Signers};
pub use crypto::{Address, Keypair, Recover, Signature, SignatureCheck, keccak256};
pub use drive::Io;
pub use io::{
    Action, Broadcast, Event, HeartbeatRow, MessageRef, PriceRow, Refusal, Report, Verdict,
    WriteOutcome,
};
pub use metrics::{Counters, Ignored, IgnoredCounts, Misbehaviour};
pub use node::{Footprint, Node};
pub use prefetch::Prefetch;
pub use price::{Feed, Price, PriceBody, PriceId};
pub use signatures::Signatures;
pub use snapshot::RestoreError;
pub use timers::Timer;
pub use wire::{DecodeError, MAX_MESSAGE_LEN, MAX_SIGNATURES, Message, message_id};

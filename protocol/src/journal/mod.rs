//! The flight recorder's format. A [`Node`] is a pure function of its config, its address, its
//! seed, its start time and the `(now, event)`s it is fed (its own signatures among them, as
//! [`Event::Signed`]), so a recording of exactly those replays a node's life bit for bit on a
//! fresh [`Node`], without its private key.
//!
//! A recording is [`MAGIC`] then records, each a little-endian `u32` length, a kind byte and a
//! body: one [`Record::Start`] (or, in a file that continues another, a [`Record::Snapshot`] of
//! the node at that point), then [`Record::Fed`] for every event the node handled and, every
//! [`CHECK_EVERY`] events, a [`Record::Check`]: a hash over every action the node has produced so
//! far, which a replay must match. A recording cut off mid-write reads up to its last whole
//! record.
//!
//! [`Tape`] records a driver's node (it wraps [`Node::drive`]); [`Replay`] feeds a recording back.

mod encoding;
mod replay;
mod tape;

use std::hash::{Hash, Hasher};

use crate::codec::Reader;
use crate::config::Config;
use crate::crypto::Address;
use crate::io::{Action, Event};

use encoding::{frame, put_config, put_fed, put_u64, take_config, take_event};
pub use replay::{Divergence, Replay, ReplayError, Replayed, Seen, replay};
pub use tape::Tape;

/// The first bytes of every recording file.
/// 2: a node's state holds its nonce stream, and its prices when they were last passed on.
pub const MAGIC: &[u8; 16] = b"oracle-journal2\n";
/// Events between two checks of the actions' hash.
pub const CHECK_EVERY: u64 = 64;
/// No record is longer (a gossip message is at most `MAX_MESSAGE_LEN`; a database read lists
/// at most a window of ids): a longer length is a corrupt file, not an allocation.
const MAX_RECORD_LEN: usize = 16 << 20;

/// How a recording begins: everything `Node::new` was given but the private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub config: Config,
    pub me: Address,
    pub seed: u64,
    /// The `now` the node was created at.
    pub started_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Start(Start),
    /// The node when this file began, after a start whose file was rotated away
    /// ([`Node::snapshot`]).
    Snapshot(Vec<u8>),
    Fed {
        now: u64,
        event: Event,
    },
    /// After `fed` events, the hash of every action the node produced ([`ActionHash`]).
    Check {
        fed: u64,
        hash: u64,
    },
}

/// Why bytes are not a recording, and where (the byte offset of the record).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error("not a recording: it does not begin with {MAGIC:?}")]
    Magic,
    #[error("record at byte {offset}: {what}")]
    Record { offset: usize, what: &'static str },
}

impl Record {
    /// Appends the record, framed, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Start(start) => frame(out, 0, |out| {
                put_config(out, &start.config);
                out.extend_from_slice(&start.me.0);
                put_u64(out, start.seed);
                put_u64(out, start.started_at);
            }),
            Record::Fed { now, event } => put_fed(out, *now, event),
            Record::Snapshot(bytes) => frame(out, 3, |out| out.extend_from_slice(bytes)),
            Record::Check { fed, hash } => frame(out, 2, |out| {
                put_u64(out, *fed);
                put_u64(out, *hash);
            }),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Record, &'static str> {
        let mut r = Reader(bytes);
        let record = match r.u8()? {
            0 => Record::Start(Start {
                config: take_config(&mut r)?,
                me: Address(r.take()?),
                seed: r.u64()?,
                started_at: r.u64()?,
            }),
            1 => Record::Fed {
                now: r.u64()?,
                event: take_event(&mut r)?,
            },
            2 => Record::Check {
                fed: r.u64()?,
                hash: r.u64()?,
            },
            3 => Record::Snapshot(r.bytes(r.0.len())?.to_vec()),
            _ => return Err("unknown record kind"),
        };
        if !r.0.is_empty() {
            return Err("bytes follow the record's end");
        }
        Ok(record)
    }
}

/// The records of a recording, in order, each with its byte offset. Stops at the first malformed
/// record (yielding the error) and before a last record cut off mid-write
/// ([`Records::cut_off`] says how many bytes it had).
pub struct Records<'a> {
    bytes: &'a [u8],
    offset: usize,
    failed: bool,
}

/// Reads a recording.
pub fn records(bytes: &[u8]) -> Result<Records<'_>, JournalError> {
    if !bytes.starts_with(MAGIC) {
        return Err(JournalError::Magic);
    }
    Ok(Records {
        bytes,
        offset: MAGIC.len(),
        failed: false,
    })
}

impl Records<'_> {
    /// Bytes after the last whole record: a record cut off mid-write.
    pub fn cut_off(&self) -> usize {
        self.bytes.len() - self.offset
    }
}

impl Iterator for Records<'_> {
    type Item = Result<(usize, Record), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = &self.bytes[self.offset..];
        let (len, body) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let offset = self.offset;
        if len > MAX_RECORD_LEN {
            self.failed = true;
            let what = "longer than any record";
            return Some(Err(JournalError::Record { offset, what }));
        }
        let body = body.get(..len)?;
        self.offset += 4 + len;
        match Record::decode(body) {
            Ok(record) => Some(Ok((offset, record))),
            Err(what) => {
                self.failed = true;
                Some(Err(JournalError::Record { offset, what }))
            }
        }
    }
}

/// A running hash over every action a node produced, in order (FNV-1a over each action's
/// derived `Hash`): two runs agree on it only if they acted alike, bytes included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionHash(u64);

impl Default for ActionHash {
    fn default() -> ActionHash {
        ActionHash(0xcbf2_9ce4_8422_2325)
    }
}

impl ActionHash {
    pub fn add(&mut self, action: &Action) {
        action.hash(self);
    }

    pub fn value(&self) -> u64 {
        self.0
    }
}

impl Hasher for ActionHash {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

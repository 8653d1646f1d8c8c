//! A node's state as bytes, so that a flight recording can begin mid-life
//! ([`crate::journal::Record::Snapshot`]) once the files before it are rotated away. It holds
//! everything a rule reads; not the counters, which only metrics read (a restored node counts
//! from zero), nor the config and address, which the recording's start holds.

use std::collections::VecDeque;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::book::{Book, Entry, Phase};
use crate::codec::{Reader, put_len, put_u64, put_u128};
use crate::committee::Committee;
use crate::config::{Config, ConfigError, Signers};
use crate::crypto::{Address, Recover, Signature};
use crate::metrics::Counters;
use crate::node::{Lease, Node};
use crate::price::{Feed, Price, PriceBody, PriceId};
use crate::timers::{Timer, Timers};

/// Why bytes are not a snapshot for this config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("the recorded config is invalid: {0}")]
    Config(#[from] ConfigError),
    #[error("snapshot: {0}")]
    Bytes(&'static str),
}

impl Node {
    /// The node's state (call it between two drives: no action is pending then).
    pub fn snapshot(&self) -> Vec<u8> {
        debug_assert!(self.actions.is_empty(), "a snapshot between drives");
        let mut out = Vec::new();
        put_u64(&mut out, self.now);
        let timers = self.timers.all(&self.book);
        put_len(&mut out, timers.len());
        for (timer, at) in timers {
            put_timer(&mut out, timer);
            put_u64(&mut out, at);
        }
        put_len(&mut out, self.book.len());
        self.book.entries().for_each(|e| put_entry(&mut out, e));
        put_ids(&mut out, self.book.stored_ids());
        put_ids(&mut out, self.book.awaiting_reference().iter());
        match self.config.signers {
            Signers::Open => {
                put_len(&mut out, self.committee.len());
                self.committee
                    .members()
                    .for_each(|m| out.extend_from_slice(&m.0));
            }
            Signers::Allowlist(_) => put_len(&mut out, 0),
        }
        put_option(&mut out, self.reference, |out, (price, at)| {
            put_u128(out, price.0);
            put_u64(out, at);
        });
        put_option(&mut out, self.last_published, |out, p| put_u128(out, p.0));
        out.push(u8::from(self.fetch_in_flight));
        out.push(u8::from(self.publish_pending));
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&self.rng.get_seed());
        put_u128(&mut out, self.rng.get_word_pos());
        put_u64(&mut out, self.peers as u64);
        put_option(&mut out, self.lease, |out, lease| {
            put_u64(out, lease.rank as u64);
            put_u64(out, lease.until);
        });
        out
    }

    /// The node `snapshot` was taken of, for `config` and `me`.
    pub fn restore(
        config: impl Into<Arc<Config>>,
        me: Address,
        snapshot: &[u8],
    ) -> Result<Node, RestoreError> {
        let config = config.into();
        config.validate()?;
        let r = &mut Reader(snapshot);
        let now = r.u64()?;
        let deadlines = r.list(9, |r| Ok((take_timer(r)?, r.u64()?)))?;
        let mut book = Book::default();
        for _ in 0..r.len(100)? {
            take_entry(r, &mut book)?;
        }
        // A price's timers are kept in its entry: set once the prices are back.
        let mut timers = Timers::default();
        for &(timer, at) in &deadlines {
            if timer.kind().1.is_some_and(|id| !book.holds(id)) {
                return Err(RestoreError::Bytes("a timer for a price not held"));
            }
            timers.set(&mut book, timer, at);
        }
        if timers.len() != deadlines.len() {
            return Err(RestoreError::Bytes("a timer twice"));
        }
        // Written in ascending order; sorted all the same, so that no order of ids makes each
        // insertion shift the deque.
        let mut stored = take_ids(r)?;
        stored.sort_unstable();
        for id in stored {
            book.insert_stored(id);
        }
        for id in take_ids(r)? {
            book.await_reference(id);
        }
        let open_members = r.len(20)?;
        let open_members = match &config.signers {
            Signers::Allowlist(_) => Vec::new(),
            Signers::Open => (0..open_members)
                .map(|_| r.take().map(Address))
                .collect::<Result<_, _>>()?,
        };
        let reference = take_option(r, |r| Ok((Price(r.u128()?), r.u64()?)))?;
        let last_published = take_option(r, |r| Ok(Price(r.u128()?)))?;
        let fetch_in_flight = r.u8()? != 0;
        let publish_pending = r.u8()? != 0;
        let sequence = u16::from_le_bytes(r.take()?);
        let mut rng = Box::new(ChaCha8Rng::from_seed(r.take()?));
        rng.set_word_pos(r.u128()?);
        let key = crate::node::table_key(&rng);
        book.rekey(key);
        let committee = match &config.signers {
            Signers::Allowlist(list) => list.ring(),
            Signers::Open => Arc::new(Committee::new(key, open_members)),
        };
        let peers = r.u64()? as usize;
        let lease = take_option(r, |r| {
            Ok(Lease {
                rank: r.u64()? as usize,
                until: r.u64()?,
            })
        })?;
        if !r.0.is_empty() {
            return Err(RestoreError::Bytes("bytes follow the snapshot's end"));
        }
        Ok(Node {
            network_id: config.network_id(),
            me,
            check: Arc::new(Recover),
            now,
            actions: VecDeque::new(),
            timers,
            book,
            committee,
            reference,
            last_published,
            fetch_in_flight,
            publish_pending,
            sequence,
            rng,
            peers,
            lease,
            counters: Counters::default(),
            config,
        })
    }
}

impl From<&'static str> for RestoreError {
    fn from(what: &'static str) -> RestoreError {
        RestoreError::Bytes(what)
    }
}

fn put_timer(out: &mut Vec<u8>, timer: Timer) {
    let (kind, id) = timer.kind();
    out.push(kind);
    if let Some(id) = id {
        put_u128(out, id.0);
    }
}

fn take_timer(r: &mut Reader) -> Result<Timer, &'static str> {
    let kind = r.u8()?;
    let id = match Timer::is_price_kind(kind) {
        true => Some(PriceId(r.u128()?)),
        false => None,
    };
    Timer::of_kind(kind, id).ok_or("unknown timer")
}

fn put_entry(out: &mut Vec<u8>, entry: &Entry) {
    let body = &entry.body;
    put_u128(out, body.id.0);
    out.extend_from_slice(&body.feed.padded());
    put_u128(out, body.price.0);
    out.push(body.decimals);
    put_u64(out, body.observed_at_ms);
    out.extend_from_slice(&entry.digest);
    out.extend_from_slice(&entry.origin.0);
    put_len(out, entry.signatures.len());
    for (signer, signature) in &entry.signatures {
        out.extend_from_slice(&signer.0);
        out.extend_from_slice(&signature.0);
    }
    put_u64(out, entry.last_signature_at);
    out.push(match entry.phase() {
        Phase::Collecting => 0,
        Phase::Ready => 1,
        Phase::Writing => 2,
    });
    out.push(u8::from(entry.decided));
    put_option(out, entry.wave, |out, wave| {
        put_option(out, wave, |out, w| put_u64(out, u64::from(w)))
    });
    put_u64(out, u64::from(entry.retransmits));
    put_u64(out, u64::from(entry.write_failures));
    put_u64(out, entry.retry_at);
    put_option(out, entry.passed_on_at, put_u64);
}

/// Reads one entry into `book`, in its phase.
fn take_entry(r: &mut Reader, book: &mut Book) -> Result<(), &'static str> {
    let body = PriceBody {
        id: PriceId(r.u128()?),
        feed: Feed::from_padded(r.take()?).map_err(|_| "feed")?,
        price: Price(r.u128()?),
        decimals: r.u8()?,
        observed_at_ms: r.u64()?,
    };
    let digest = r.take()?;
    let origin = Address(r.take()?);
    let mut entry = Entry::new(body, digest, origin, 0);
    for _ in 0..r.len(85)? {
        entry
            .signatures
            .insert(Address(r.take()?), Signature(r.take()?));
    }
    entry.last_signature_at = r.u64()?;
    let phase = match r.u8()? {
        0 => Phase::Collecting,
        1 => Phase::Ready,
        2 => Phase::Writing,
        _ => return Err("unknown phase"),
    };
    entry.decided = r.u8()? != 0;
    entry.wave = take_option(r, |r| {
        take_option(r, |r| u32::try_from(r.u64()?).map_err(|_| "wave"))
    })?;
    entry.retransmits = u32::try_from(r.u64()?).map_err(|_| "retransmits")?;
    entry.write_failures = u32::try_from(r.u64()?).map_err(|_| "write failures")?;
    entry.retry_at = r.u64()?;
    entry.passed_on_at = take_option(r, |r| r.u64())?;
    let id = body.id;
    if book.holds(id) {
        return Err("a price twice");
    }
    book.insert(entry);
    book.set_phase(id, phase);
    Ok(())
}

fn put_ids<'a>(out: &mut Vec<u8>, ids: impl ExactSizeIterator<Item = &'a PriceId>) {
    put_len(out, ids.len());
    ids.for_each(|id| put_u128(out, id.0));
}

fn take_ids(r: &mut Reader) -> Result<Vec<PriceId>, &'static str> {
    r.list(16, |r| Ok(PriceId(r.u128()?)))
}

fn put_option<T>(out: &mut Vec<u8>, value: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put(out, value);
        }
    }
}

fn take_option<T>(
    r: &mut Reader,
    take: impl FnOnce(&mut Reader) -> Result<T, &'static str>,
) -> Result<Option<T>, &'static str> {
    match r.u8()? {
        0 => Ok(None),
        1 => take(r).map(Some),
        _ => Err("an option neither absent nor present"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::price::Feed;
    use crate::testing::{body, keys};

    /// A snapshot is read from disk: one naming a price twice is refused, not counted twice
    /// among its origin's prices still collecting.
    #[test]
    fn a_price_twice_is_refused() {
        let keys = keys(2);
        let body = body(&keys[1], 900, 1);
        let mut bytes = Vec::new();
        put_entry(
            &mut bytes,
            &Entry::new(body, [7; 32], keys[1].address(), 900),
        );
        let mut book = Book::default();
        assert_eq!(take_entry(&mut Reader(&bytes), &mut book), Ok(()));
        assert_eq!(
            take_entry(&mut Reader(&bytes), &mut book),
            Err("a price twice")
        );
        assert_eq!(book.collecting(keys[1].address()), 1);
    }

    /// A price's timers are kept in its entry: a snapshot naming a timer of a price it does not
    /// hold cannot be restored, and says why.
    #[test]
    fn a_timer_of_a_price_not_held_is_refused() {
        let keys = keys(3);
        let signers = Signers::allowlist(keys.iter().map(|k| k.address()));
        let config = Config::new("testnet", Feed::eth_usd(), signers);
        let me = keys[0].address();
        let node = Node::new(config.clone(), me, 7, 1_000).expect("a valid config");
        let snapshot = node.snapshot();
        assert_eq!(
            Node::restore(config.clone(), me, &snapshot)
                .expect("restores")
                .snapshot(),
            snapshot
        );
        // The timers follow the clock: their count, then each. One more, for a price not held.
        let (clock, rest) = snapshot.split_at(8);
        let count = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
        let mut altered = clock.to_vec();
        put_len(&mut altered, count as usize + 1);
        put_timer(&mut altered, Timer::Expire(body(&keys[1], 900, 1).id));
        put_u64(&mut altered, 5_000);
        altered.extend_from_slice(&rest[4..]);
        let error = Node::restore(config, me, &altered).err();
        assert_eq!(
            error,
            Some(RestoreError::Bytes("a timer for a price not held"))
        );
    }
}

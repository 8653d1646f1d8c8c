//! The per-price bookkeeping of a node: the prices it holds, the ids it knows stored, how many of
//! each origin's prices still collect signatures, and which wait for a fresh observation. One type,
//! so that no count can drift from the prices it counts: a price's phase changes only here, and
//! [`Book::check`] states the invariants, which the hostile harness checks after every event.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use crate::crypto::Address;
use crate::held::Held;
use crate::prefetch::Prefetch;
use crate::price::{PriceBody, PriceId};
use crate::signatures::Signatures;
use crate::stored::StoredIds;
use crate::timers::PriceDeadlines;

/// What a node holds about one price id.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub body: PriceBody,
    pub digest: [u8; 32],
    pub origin: Address,
    /// Distinct, verified, allowed signers.
    pub signatures: Signatures,
    pub last_signature_at: u64,
    /// Changed only through [`Book::set_phase`], which keeps the per-origin counts.
    phase: Phase,
    /// This node has decided whether to sign (it signs an id at most once).
    pub decided: bool,
    /// This node's co-signing wave for the price, once looked up (`Some(None)`: never). A `u32`:
    /// eight bytes with both options, where a `usize` takes sixteen.
    pub wave: Option<Option<u32>>,
    pub retransmits: u32,
    pub write_failures: u32,
    /// After a failed write, not written again before this.
    pub retry_at: u64,
    /// When this node last passed on a copy of the price that brought it nothing new.
    pub passed_on_at: Option<u64>,
    /// The price's timers (the node's `Timers` orders them).
    pub deadlines: PriceDeadlines,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Collecting,
    Ready,
    Writing,
}

impl Entry {
    /// A price still collecting signatures, none held yet.
    pub fn new(body: PriceBody, digest: [u8; 32], origin: Address, now: u64) -> Entry {
        Entry {
            body,
            digest,
            origin,
            signatures: Signatures::new(),
            last_signature_at: now,
            phase: Phase::Collecting,
            decided: false,
            wave: None,
            retransmits: 0,
            write_failures: 0,
            retry_at: 0,
            passed_on_at: None,
            deadlines: PriceDeadlines::default(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Reached its quorum (ready, or being written).
    pub fn reached_quorum(&self) -> bool {
        self.phase != Phase::Collecting
    }
}

/// In the order written: the prices held, which every message asks, first; then the ids stored,
/// which every first copy of a price asks.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Book {
    /// By id, for the lookups every message makes (`Held`). A walk in order sorts first
    /// (`entries`): walks are rare (a heartbeat's, a new writer's, a snapshot's), and keeping the
    /// order on every insert and removal cost more.
    prices: Held,
    /// Ids known to be stored, until they are too old to be accepted again.
    stored: StoredIds,
    /// Prices still collecting signatures, by origin.
    collecting_by_origin: BTreeMap<Address, usize>,
    /// Prices this node will judge once its fresh observation arrives.
    awaiting_reference: BTreeSet<PriceId>,
}

impl Book {
    /// An empty book whose table hashes with `key` (from the node's seed).
    pub fn new(key: u64) -> Book {
        Book {
            prices: Held::new(key),
            ..Book::default()
        }
    }

    /// The lines every message reads: the held prices' slots and table, and the stored ids.
    pub fn prefetch(&self, prefetch: &impl Prefetch) {
        prefetch.fetch(&self.prices);
        prefetch.fetch(&self.stored);
    }

    /// The entries of the newest prices, which most messages are about.
    pub fn prefetch_newest(&self, prefetch: &impl Prefetch) {
        self.prices.prefetch_newest(prefetch);
    }

    pub fn get(&self, id: PriceId) -> Option<&Entry> {
        self.prices.get(id)
    }

    pub fn get_mut(&mut self, id: PriceId) -> Option<&mut Entry> {
        self.prices.get_mut(id)
    }

    pub fn holds(&self, id: PriceId) -> bool {
        self.prices.contains(id)
    }

    pub fn len(&self) -> usize {
        self.prices.len()
    }

    /// In ascending order of id.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + use<'_> {
        self.in_order().into_iter().map(|(_, entry)| entry)
    }

    /// The least id among the prices at quorum. Every heartbeat asks it, so it sorts no more
    /// than it must: ids come off a heap least first until one is at quorum, most often the
    /// first (the oldest prices are the ones waiting to be stored).
    pub fn oldest_ready(&self) -> Option<PriceId> {
        let mut ids: BinaryHeap<Reverse<PriceId>> =
            self.prices.iter().map(|(id, _)| Reverse(id)).collect();
        std::iter::from_fn(|| ids.pop().map(|Reverse(id)| id))
            .find(|&id| self.prices.get(id).is_some_and(Entry::reached_quorum))
    }

    /// Every price held and its id, in ascending order of id.
    fn in_order(&self) -> Vec<(PriceId, &Entry)> {
        let mut held: Vec<_> = self.prices.iter().collect();
        held.sort_unstable_by_key(|&(id, _)| id);
        held
    }

    /// The table hashed anew with `key`: a restored node's is known once its seed is read.
    pub fn rekey(&mut self, key: u64) {
        self.prices.rekey(key);
    }

    /// In no particular order, for a use no order can change.
    pub fn entries_unordered(&self) -> impl Iterator<Item = &Entry> {
        self.prices.iter().map(|(_, entry)| entry)
    }

    /// Prices of `origin` still collecting signatures.
    pub fn collecting(&self, origin: Address) -> usize {
        self.collecting_by_origin.get(&origin).copied().unwrap_or(0)
    }

    /// Holds a new price, collecting.
    pub fn insert(&mut self, entry: Entry) {
        debug_assert_eq!(entry.phase, Phase::Collecting);
        debug_assert!(
            !self.holds(entry.body.id),
            "{} is held already",
            entry.body.id
        );
        *self.collecting_by_origin.entry(entry.origin).or_default() += 1;
        self.prices.insert(entry.body.id, Box::new(entry));
    }

    pub fn set_phase(&mut self, id: PriceId, phase: Phase) {
        let Some(entry) = self.prices.get_mut(id) else {
            return;
        };
        let (was, origin) = (entry.phase, entry.origin);
        entry.phase = phase;
        match (was == Phase::Collecting, phase == Phase::Collecting) {
            (true, false) => self.leave_collecting(origin),
            (false, true) => *self.collecting_by_origin.entry(origin).or_default() += 1,
            _ => {}
        }
    }

    /// Forgets a price, and its timers with it (the caller tells the node's `Timers`). The entry
    /// stays in its box: moved out, its signatures held in place would be copied.
    pub fn remove(&mut self, id: PriceId) -> Option<Box<Entry>> {
        let entry = self.prices.remove(id)?;
        if entry.phase == Phase::Collecting {
            self.leave_collecting(entry.origin);
        }
        self.awaiting_reference.remove(&id);
        Some(entry)
    }

    fn leave_collecting(&mut self, origin: Address) {
        if let Some(n) = self.collecting_by_origin.get_mut(&origin) {
            *n -= 1;
            if *n == 0 {
                self.collecting_by_origin.remove(&origin);
            }
        }
    }

    /// Prices waiting for this node's fresh observation.
    pub fn awaiting_reference(&self) -> &BTreeSet<PriceId> {
        &self.awaiting_reference
    }

    /// Ids known stored.
    pub fn stored_ids(&self) -> impl ExactSizeIterator<Item = &PriceId> {
        self.stored.iter()
    }

    pub fn await_reference(&mut self, id: PriceId) {
        self.awaiting_reference.insert(id);
    }

    pub fn take_awaiting_reference(&mut self) -> BTreeSet<PriceId> {
        std::mem::take(&mut self.awaiting_reference)
    }

    pub fn is_stored(&self, id: PriceId) -> bool {
        self.stored.contains(id)
    }

    pub fn stored_len(&self) -> usize {
        self.stored.len()
    }

    /// Remembers an id as stored (the price itself is removed by the caller first).
    pub fn insert_stored(&mut self, id: PriceId) {
        self.stored.insert(id);
    }

    /// Forgets stored ids older than `horizon`: no price that old is accepted again.
    pub fn forget_stored_before(&mut self, horizon: u64) {
        self.stored.forget_before(PriceId::first_at(horizon));
    }

    /// The invariants, or the first one broken: the timers' own (`Timers::check`), stored
    /// ids strictly ascending, counts match the prices, bounds hold, a price at quorum has its
    /// quorum, nothing is both held and stored, and every awaited judgement is for a price held
    /// (a price's timers are kept in its entry).
    #[cfg(feature = "arbitrary")]
    pub fn check(
        &self,
        timers: &crate::timers::Timers,
        config: &crate::Config,
    ) -> Result<(), String> {
        use crate::wire::MAX_SIGNATURES;
        timers.check(self)?;
        self.stored.check()?;
        let mut collecting = BTreeMap::<Address, usize>::new();
        for (id, entry) in self.in_order() {
            if entry.body.id != id {
                return Err(format!("{id} holds the body of {}", entry.body.id));
            }
            if self.is_stored(id) {
                return Err(format!("{id} is held and known stored"));
            }
            let signers = entry.signatures.len();
            if signers > MAX_SIGNATURES {
                return Err(format!("{id} holds {signers} signatures"));
            }
            match entry.phase {
                Phase::Collecting => *collecting.entry(entry.origin).or_default() += 1,
                _ if signers < config.quorum => {
                    return Err(format!("{id} is {:?} with {signers} signers", entry.phase));
                }
                _ => {}
            }
        }
        if collecting != self.collecting_by_origin {
            return Err(format!(
                "collecting counts {:?}, the prices say {collecting:?}",
                self.collecting_by_origin
            ));
        }
        if let Some((origin, n)) = collecting
            .iter()
            .find(|(_, n)| **n > config.max_pending_per_origin)
        {
            return Err(format!("{origin} has {n} prices collecting"));
        }
        if self.prices.len() > config.max_prices {
            return Err(format!("{} prices held", self.prices.len()));
        }
        if let Some(id) = self.awaiting_reference.iter().find(|id| !self.holds(**id)) {
            return Err(format!("{id} awaits a reference but is not held"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{body, keys};

    /// The table has an order of its own; every walk that reads the order gets the ids'.
    #[test]
    fn entries_come_in_the_order_of_their_ids_whatever_the_order_held() {
        let keys = keys(5);
        let mut book = Book::default();
        let mut ids = Vec::new();
        for (k, at) in [(3, 900), (0, 100), (4, 500), (1, 700), (2, 300), (0, 800)] {
            let body = body(&keys[k], at, 1);
            ids.push(body.id);
            book.insert(Entry::new(body, [0; 32], keys[k].address(), at));
        }
        book.remove(ids[2]);
        ids.remove(2);
        ids.sort();
        let walked: Vec<PriceId> = book.entries().map(|e| e.body.id).collect();
        assert_eq!(walked, ids);
    }

    /// The heartbeat's `stored_since`: the least id at quorum, whatever the table's order and
    /// however many collecting prices are older.
    #[test]
    fn the_oldest_ready_price_is_the_least_id_at_quorum() {
        let keys = keys(4);
        let mut book = Book::new(9);
        assert_eq!(book.oldest_ready(), None);
        let mut ids = Vec::new();
        for (k, at) in [(2, 700), (0, 100), (3, 500), (1, 300), (0, 900)] {
            let body = body(&keys[k], at, 1);
            ids.push(body.id);
            book.insert(Entry::new(body, [0; 32], keys[k].address(), at));
        }
        assert_eq!(book.oldest_ready(), None, "all collecting");
        book.set_phase(ids[4], Phase::Ready);
        book.set_phase(ids[0], Phase::Writing);
        assert_eq!(book.oldest_ready(), Some(ids[0]));
        book.set_phase(ids[2], Phase::Ready);
        assert_eq!(book.oldest_ready(), Some(ids[2]));
        book.remove(ids[2]);
        assert_eq!(book.oldest_ready(), Some(ids[0]));
    }

    /// Every node holds every price it sees until it is stored, and each message it handles
    /// touches its entry and the signatures held in it: with room for four in place an entry (592
    /// bytes) fits one of mimalloc's 640-byte blocks, ten cache lines; past 640 bytes it would take
    /// a 768-byte block.
    #[test]
    fn an_entry_fits_ten_cache_lines() {
        assert!(std::mem::size_of::<Entry>() <= 640);
    }
}

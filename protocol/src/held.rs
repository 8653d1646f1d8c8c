//! The prices a node holds, by id: the newest few in slots of their own, the rest in a hash table.
//!
//! A price's copies reach a node within moments of each other (its publication, a few
//! co-signatures, a merge), and few prices are in flight at once, so nearly every message is
//! about one of the newest prices. Their ids sit on one cache line beside the node's other hot
//! fields; a lookup in the table took two more lines, its control bytes and its bucket, both cold
//! in a node woken among thousands.

use foldhash::fast::FixedState;

use crate::book::Entry;
use crate::prefetch::Prefetch;
use crate::price::PriceId;

/// How many of the newest prices have slots: measured, two beat one, four and eight.
const SLOTS: usize = 2;

#[expect(
    clippy::disallowed_types,
    reason = "looked up by id; walked in its own order only where no order can matter"
)]
type PriceTable = std::collections::HashMap<PriceId, Box<Entry>, FixedState>;

/// Laid out in the order written: the slots' ids, one cache line, first.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Held {
    /// The id of each slot's price; a slot without an entry holds nothing, whatever its id says.
    ids: [PriceId; SLOTS],
    slots: [Option<Box<Entry>>; SLOTS],
    /// The slot the next price takes; the price in it moves to the table. The slots are taken
    /// in turn, so the one taken is the oldest's.
    next: usize,
    /// Every other price. Its hasher is keyed from the node's seed, so ids chosen to collide
    /// cannot be computed by anyone else, and runs stay deterministic. Boxed: entries are large,
    /// and a table of them grew by half.
    table: PriceTable,
}

impl Held {
    /// Nothing held; the table hashes with `key`.
    pub fn new(key: u64) -> Held {
        Held {
            ids: [PriceId(0); SLOTS],
            slots: Default::default(),
            next: 0,
            table: PriceTable::with_hasher(FixedState::with_seed(key)),
        }
    }

    /// Shows `prefetch` the lines of the slots' entries a message reads first: the body it is
    /// compared with and the signatures it is checked against. Reads the slots.
    pub fn prefetch_newest(&self, prefetch: &impl Prefetch) {
        for entry in self.slots.iter().flatten() {
            // The body's first field and its last as laid out: together, every line it takes
            // (the prefetch tests hold that).
            prefetch.fetch(&entry.body);
            prefetch.fetch(&entry.body.decimals);
            prefetch.fetch(&entry.signatures);
        }
    }

    pub fn get(&self, id: PriceId) -> Option<&Entry> {
        match self.slot(id) {
            Some(slot) => self.slots[slot].as_deref(),
            None => self.table.get(&id).map(|entry| &**entry),
        }
    }

    pub fn get_mut(&mut self, id: PriceId) -> Option<&mut Entry> {
        match self.slot(id) {
            Some(slot) => self.slots[slot].as_deref_mut(),
            None => self.table.get_mut(&id).map(|entry| &mut **entry),
        }
    }

    pub fn contains(&self, id: PriceId) -> bool {
        self.slot(id).is_some() || self.table.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count() + self.table.len()
    }

    /// Holds a price, in a slot, in place of any held under its id, as a map would (the book
    /// never inserts an id it holds, and asserts so).
    pub fn insert(&mut self, id: PriceId, entry: Box<Entry>) {
        self.remove(id);
        let slot = self.next;
        self.next = (slot + 1) % SLOTS;
        if let Some(oldest) = self.slots[slot].replace(entry) {
            self.table.insert(self.ids[slot], oldest);
        }
        self.ids[slot] = id;
    }

    pub fn remove(&mut self, id: PriceId) -> Option<Box<Entry>> {
        match self.slot(id) {
            Some(slot) => self.slots[slot].take(),
            None => self.table.remove(&id),
        }
    }

    /// Every price held and its id, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (PriceId, &Entry)> {
        let slots = (self.ids.iter().zip(&self.slots))
            .filter_map(|(&id, entry)| Some((id, &**entry.as_ref()?)));
        slots.chain(self.table.iter().map(|(&id, entry)| (id, &**entry)))
    }

    /// The table hashed anew with `key`: a restored node's is known once its seed is read.
    pub fn rekey(&mut self, key: u64) {
        let mut table =
            PriceTable::with_capacity_and_hasher(self.table.len(), FixedState::with_seed(key));
        table.extend(self.table.drain());
        self.table = table;
    }

    fn slot(&self, id: PriceId) -> Option<usize> {
        (0..SLOTS).find(|&slot| self.ids[slot] == id && self.slots[slot].is_some())
    }
}

impl Default for Held {
    fn default() -> Held {
        Held::new(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{body, keys};

    /// Prices move from the slots to the table as newer ones come, and are found, changed and
    /// removed wherever they are.
    #[test]
    fn a_price_is_found_in_a_slot_or_in_the_table() {
        let keys = keys(3);
        let mut held = Held::new(5);
        let ids: Vec<PriceId> = (0..(SLOTS as u64 + 3))
            .map(|i| {
                let body = body(&keys[i as usize % 3], 1_000 + i, 1);
                let entry = Entry::new(body, [i as u8; 32], keys[0].address(), i);
                held.insert(body.id, Box::new(entry));
                body.id
            })
            .collect();
        assert_eq!(held.len(), ids.len());
        assert_eq!(held.table.len(), 3, "the three oldest moved to the table");
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(held.get(id).map(|e| e.digest[0]), Some(i as u8));
            held.get_mut(id).unwrap().retransmits = i as u32;
        }
        let removed = [ids[1], ids[SLOTS + 1]];
        for id in removed {
            assert_eq!(held.remove(id).map(|e| e.body.id), Some(id));
            assert!(!held.contains(id));
            assert!(held.remove(id).is_none());
        }
        let mut walked: Vec<(PriceId, u32)> =
            held.iter().map(|(id, e)| (id, e.retransmits)).collect();
        walked.sort();
        let mut expected: Vec<(PriceId, u32)> = (ids.iter().copied().zip(0..))
            .filter(|(id, _)| !removed.contains(id))
            .collect();
        expected.sort();
        assert_eq!(walked, expected);
        assert_eq!(held.len(), ids.len() - 2);
        held.rekey(6);
        assert!(
            ids.iter()
                .all(|&id| held.contains(id) != removed.contains(&id))
        );
    }

    /// An id held again replaces what it held, in a slot or in the table, and is held once.
    #[test]
    fn an_id_held_again_is_replaced_not_held_twice() {
        let keys = keys(1);
        let mut held = Held::new(5);
        let ids: Vec<PriceId> = (0..SLOTS as u64 + 1)
            .map(|i| {
                let body = body(&keys[0], 1_000 + i, 1);
                held.insert(
                    body.id,
                    Box::new(Entry::new(body, [0; 32], keys[0].address(), i)),
                );
                body.id
            })
            .collect();
        // The first is in the table by now, the last in a slot.
        for id in [ids[0], ids[SLOTS]] {
            let body = held.get(id).unwrap().body;
            held.insert(
                id,
                Box::new(Entry::new(body, [9; 32], keys[0].address(), 0)),
            );
            assert_eq!(held.len(), ids.len());
            assert_eq!(held.iter().filter(|&(i, _)| i == id).count(), 1);
            assert_eq!(held.remove(id).map(|e| e.digest), Some([9; 32]));
            assert!(!held.contains(id));
            held.insert(
                id,
                Box::new(Entry::new(body, [0; 32], keys[0].address(), 0)),
            );
        }
    }
}

//! The ids a node knows stored, kept until they are too old to be accepted again: thousands of
//! them, minted in time order, so each new one goes at the back or near it and the oldest leave
//! from the front. Every lookup a node makes is near the back: a fresh price is newer than all of
//! them, a price learnt stored was published a moment ago, and a late copy is of a recent price.

use std::collections::VecDeque;

use crate::price::PriceId;

#[derive(Debug, Default)]
pub(crate) struct StoredIds {
    /// In ascending order.
    ids: VecDeque<PriceId>,
    /// The last of `ids`, kept beside the deque's header: most lookups end here, and the deque's
    /// back is cold in a node woken among thousands.
    newest: Option<PriceId>,
}

impl StoredIds {
    pub fn contains(&self, id: PriceId) -> bool {
        self.newest.is_some_and(|newest| id <= newest) && self.search(id).is_ok()
    }

    pub fn insert(&mut self, id: PriceId) {
        if self.newest.is_none_or(|newest| newest < id) {
            self.ids.push_back(id);
            self.newest = Some(id);
        } else if let Err(at) = self.search(id) {
            self.ids.insert(at, id);
        }
    }

    /// Forgets the ids before `first`.
    pub fn forget_before(&mut self, first: PriceId) {
        let kept_from = self.ids.partition_point(|&id| id < first);
        self.ids.drain(..kept_from);
        self.newest = self.ids.back().copied();
    }

    /// In ascending order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &PriceId> {
        self.ids.iter()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Where `id` is, or where it would go, as a binary search says; looked for from the back,
    /// by doubling steps and then halving, so a lookup near the back touches only the back.
    fn search(&self, id: PriceId) -> Result<usize, usize> {
        // The first index whose id is not below `id` lies in `lo..=hi`.
        let (mut lo, mut hi) = (0, self.ids.len());
        let mut step = 1;
        while hi > 0 {
            let probe = hi.saturating_sub(step);
            if self.ids[probe] < id {
                lo = probe + 1;
                break;
            }
            hi = probe;
            step *= 2;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ids[mid] < id {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        match self.ids.get(lo) {
            Some(&found) if found == id => Ok(lo),
            _ => Err(lo),
        }
    }

    /// Ascending without repeats, and `newest` the last.
    #[cfg(feature = "arbitrary")]
    pub fn check(&self) -> Result<(), String> {
        let ids = &self.ids;
        if let Some(i) = (1..ids.len()).find(|&i| ids[i - 1] >= ids[i]) {
            return Err(format!(
                "stored ids out of order: {} then {}",
                ids[i - 1],
                ids[i]
            ));
        }
        if self.newest != ids.back().copied() {
            return Err(format!(
                "newest stored {:?}, last {:?}",
                self.newest,
                ids.back()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The search from the back answers as a binary search does, wherever the id falls.
    #[test]
    fn the_search_from_the_back_finds_what_a_binary_search_finds() {
        for len in 0..40u128 {
            let mut stored = StoredIds::default();
            (0..len).for_each(|i| stored.insert(PriceId(10 * i + 10)));
            let sorted: Vec<PriceId> = stored.iter().copied().collect();
            for probe in 0..(10 * len + 30) {
                let id = PriceId(probe);
                assert_eq!(
                    stored.search(id),
                    sorted.binary_search(&id),
                    "{len} ids, {probe}"
                );
                assert_eq!(stored.contains(id), sorted.contains(&id));
            }
        }
    }

    #[test]
    fn ids_inserted_in_any_order_stay_ascending_and_forgotten_from_the_front() {
        let mut stored = StoredIds::default();
        for id in [50, 10, 40, 20, 30, 40, 60, 5].map(PriceId) {
            stored.insert(id);
        }
        let ids = |s: &StoredIds| s.iter().map(|id| id.0).collect::<Vec<_>>();
        assert_eq!(ids(&stored), [5, 10, 20, 30, 40, 50, 60]);
        stored.forget_before(PriceId(25));
        assert_eq!(ids(&stored), [30, 40, 50, 60]);
        assert!(stored.contains(PriceId(60)) && !stored.contains(PriceId(61)));
        stored.forget_before(PriceId(100));
        assert_eq!((stored.len(), stored.newest), (0, None));
    }
}

//! Who co-signs which price: the signers sit on a hash ring; the committee of a price is the next
//! `size` signers after the price's position (the origin skipped), the next `size` form the second
//! wave, and so on. Signatures per price stay the same at 10 or 10,000 nodes, and every node finds
//! its own wave in O(log n).

use foldhash::fast::FixedState;

use crate::crypto::{Address, Recover, SignatureCheck};
use crate::price::PriceId;

#[expect(
    clippy::disallowed_types,
    reason = "looked up by address only; nothing walks it, so its order cannot matter"
)]
type Positions = std::collections::HashMap<Address, u64, FixedState>;

#[derive(Debug, Clone)]
pub(crate) struct Committee {
    ring: Vec<(u64, Address)>,
    /// Each member's position, so a lookup costs no keccak. A hash table: every message asks it
    /// whether each signer is allowed, and a B-tree of thousands of addresses compared a dozen
    /// of them per question. Keyed: in an open network, members are whoever signs, and an
    /// address is cheap to grind, so nobody must be able to compute which ones collide.
    positions: Positions,
}

fn position(bytes: &[u8], check: &dyn SignatureCheck) -> u64 {
    let hash = check.keccak(bytes);
    u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"))
}

impl Committee {
    /// The ring of `members`, its table hashed with `key`.
    pub fn new(key: u64, members: impl IntoIterator<Item = Address>) -> Committee {
        let mut committee = Committee {
            ring: Vec::new(),
            positions: Positions::with_hasher(FixedState::with_seed(key)),
        };
        members.into_iter().for_each(|m| committee.insert(m));
        committee
    }

    pub fn insert(&mut self, member: Address) {
        let entry = (position(&member.0, &Recover), member);
        if let Err(at) = self.ring.binary_search(&entry) {
            self.ring.insert(at, entry);
            self.positions.insert(member, entry.0);
        }
    }

    /// The members, in ring order.
    pub fn members(&self) -> impl Iterator<Item = Address> + '_ {
        self.ring.iter().map(|&(_, member)| member)
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn contains(&self, member: Address) -> bool {
        self.positions.contains_key(&member)
    }

    /// The wave (0 = the committee) in which `member` co-signs price `id` minted by `origin`;
    /// `None` if `member` is the origin or not on the ring.
    pub fn wave(
        &self,
        id: PriceId,
        origin: Address,
        member: Address,
        size: usize,
        check: &dyn SignatureCheck,
    ) -> Option<usize> {
        if member == origin || size == 0 {
            return None;
        }
        let n = self.ring.len();
        let index = |a: Address| {
            let at = *self.positions.get(&a)?;
            self.ring.binary_search(&(at, a)).ok()
        };
        let mine = index(member)?;
        let at = position(&id.0.to_be_bytes(), check);
        let start = self.ring.partition_point(|&(p, _)| p < at);
        let distance = |i: usize| (i + n - start) % n;
        let mut rank = distance(mine);
        if index(origin).is_some_and(|o| distance(o) < rank) {
            rank -= 1;
        }
        Some(rank / size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u8) -> Vec<Address> {
        (0..n).map(|i| Address([i; 20])).collect()
    }

    #[test]
    fn each_wave_has_exactly_size_members_and_skips_the_origin() {
        let all = members(20);
        let committee = Committee::new(7, all.clone());
        for minute in 0..50u64 {
            let origin = all[minute as usize % 20];
            let id = PriceId::mint(minute * 60_000, 0, origin);
            let mut waves = vec![0; 7];
            for &m in &all {
                match committee.wave(id, origin, m, 3, &Recover) {
                    Some(w) => waves[w] += 1,
                    None => assert_eq!(m, origin),
                }
            }
            assert_eq!(waves, [3, 3, 3, 3, 3, 3, 1]);
        }
    }

    #[test]
    fn committees_spread_over_members() {
        let all = members(50);
        let committee = Committee::new(7, all.clone());
        let mut load = vec![0; 50];
        for i in 0..2_000u64 {
            let id = PriceId::mint(i, 0, all[0]);
            for (k, &m) in all.iter().enumerate() {
                if committee.wave(id, all[0], m, 2, &Recover) == Some(0) {
                    load[k] += 1;
                }
            }
        }
        assert_eq!(load[0], 0, "the origin never co-signs its own price");
        assert!(load[1..].iter().all(|&l| l > 0), "{load:?}");
        assert_eq!(load.iter().sum::<usize>(), 4_000);
    }
}

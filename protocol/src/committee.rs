//! Who co-signs which price: the signers sit on a hash ring; the committee of a price is the next
//! `size` signers after the price's position (the origin skipped), the next `size` form the second
//! wave, and so on. Signatures per price stay the same at 10 or 10,000 nodes, and every node finds
//! its own wave in O(log n).

use foldhash::fast::FixedState;

use crate::crypto::{Address, Recover, SignatureCheck};
use crate::price::PriceId;

#[expect(
    clippy::disallowed_types,
    reason = "looked up by address only; nothing reads its order"
)]
type Positions = std::collections::HashMap<Address, u64, FixedState>;

#[derive(Debug, Clone)]
pub(crate) struct Committee {
    ring: Vec<(u64, Address)>,
    /// Each member's position, so a lookup costs no keccak. A hash table: under an allowlist every
    /// message asks it whether each signer is allowed, and a B-tree of thousands of addresses
    /// compared a dozen of them per question. Keyed: in an open network, members are whoever
    /// signs, and an address is cheap to grind, so nobody must be able to compute which ones
    /// collide.
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

    /// The index of the first ring entry not below `key`, as `partition_point` would find it.
    /// Positions are hash outputs, spread evenly over the ring, so the entry is most often within
    /// a few places of where its position's share of the ring puts it: the search starts there and
    /// gallops out. A binary search of thousands of members took a dozen probes, each a miss.
    fn first_not_below(&self, key: (u64, Address)) -> usize {
        let ring = &self.ring;
        let n = ring.len();
        if n == 0 {
            return 0;
        }
        let guess = ((u128::from(key.0) * n as u128) >> 64) as usize;
        // The answer lies in `[low, high]`: every entry before `low` is below the key, and every
        // entry from `high` on is not.
        let (mut low, mut high) = (0, n);
        let mut step = 1;
        if ring[guess] < key {
            low = guess + 1;
            while guess + step < n {
                if ring[guess + step] < key {
                    low = guess + step + 1;
                    step *= 2;
                } else {
                    high = guess + step;
                    break;
                }
            }
        } else {
            high = guess;
            while step <= guess {
                if ring[guess - step] < key {
                    low = guess - step + 1;
                    break;
                }
                high = guess - step;
                step *= 2;
            }
        }
        low + ring[low..high].partition_point(|entry| *entry < key)
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
            let entry = (*self.positions.get(&a)?, a);
            let i = self.first_not_below(entry);
            (self.ring.get(i) == Some(&entry)).then_some(i)
        };
        let mine = index(member)?;
        let at = position(&id.0.to_be_bytes(), check);
        let start = self.first_not_below((at, Address([0; 20])));
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

    /// The galloping search finds what a binary search finds, for members, for positions
    /// between them, and at both ends of the ring, in rings small and large, even and skewed.
    #[test]
    fn the_search_from_a_guess_finds_what_a_binary_search_finds() {
        // Positions no hash would give: crowded at both ends of the ring.
        let mut skewed = Committee::new(1, members(0));
        skewed.ring = (0..300u64)
            .map(|i| match i % 2 {
                0 => (i, Address([i as u8; 20])),
                _ => (u64::MAX - 1_000 + i, Address([i as u8; 20])),
            })
            .collect();
        skewed.ring.sort_unstable();
        for committee in [
            Committee::new(1, members(0)),
            Committee::new(1, members(1)),
            Committee::new(1, members(2)),
            Committee::new(1, members(200)),
            skewed,
        ] {
            let mut keys: Vec<(u64, Address)> = committee.ring.clone();
            for (p, a) in committee.ring.iter().copied() {
                keys.extend([(p.wrapping_sub(1), a), (p.wrapping_add(1), a)]);
                keys.push((p, Address([0; 20])));
                keys.push((p, Address([0xff; 20])));
            }
            keys.extend(
                (0..1_000u64).map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15), Address([3; 20]))),
            );
            keys.extend([(0, Address([0; 20])), (u64::MAX, Address([0xff; 20]))]);
            for key in keys {
                let expected = committee.ring.partition_point(|entry| *entry < key);
                assert_eq!(committee.first_not_below(key), expected, "{key:?}");
            }
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

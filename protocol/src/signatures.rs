//! A price's signatures by signer: a vector kept sorted by address, one signature per signer.
//!
//! A price carries a handful of signatures (the quorum and a spare, at most
//! [`MAX_SIGNATURES`](crate::MAX_SIGNATURES) on the wire), and every node holds every price it
//! sees until it is stored: a B-tree spent a kilobyte-sized leaf on each, a sorted vector spends
//! what the signatures take, and room for four in place. The first four are held in the entry or
//! message that owns them: every message a node receives is first compared with the signatures it
//! holds, and those sit in the price's entry, on the lines after its body, where a vector's were
//! behind one more pointer (and one more allocation per price held and per message decoded).

use smallvec::SmallVec;

use crate::crypto::{Address, Signature};

/// Signer and signature pairs, the first four held in place (a price's quorum and a spare).
pub(crate) type Pairs = SmallVec<[(Address, Signature); 4]>;

/// Signatures by signer, in ascending order of signer (the wire's order).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Signatures(Pairs);

impl Signatures {
    pub fn new() -> Signatures {
        Signatures::default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, signer: &Address) -> Option<&Signature> {
        self.get_key_value(signer).map(|(_, signature)| signature)
    }

    pub fn get_mut(&mut self, signer: &Address) -> Option<&mut Signature> {
        let i = self.position(signer).ok()?;
        Some(&mut self.0[i].1)
    }

    pub fn get_key_value(&self, signer: &Address) -> Option<(&Address, &Signature)> {
        let i = self.position(signer).ok()?;
        let (signer, signature) = &self.0[i];
        Some((signer, signature))
    }

    pub fn contains_key(&self, signer: &Address) -> bool {
        self.position(signer).is_ok()
    }

    /// Holds `signature` as `signer`'s; returns the one it replaces, as a map does.
    pub fn insert(&mut self, signer: Address, signature: Signature) -> Option<Signature> {
        match self.position(&signer) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, signature)),
            Err(i) => {
                self.0.insert(i, (signer, signature));
                None
            }
        }
    }

    /// In ascending order of signer.
    pub fn as_slice(&self) -> &[(Address, Signature)] {
        &self.0
    }

    /// In ascending order of signer.
    pub fn iter(&self) -> Iter<'_> {
        self.0.iter().map(|(signer, signature)| (signer, signature))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Address> {
        self.0.iter().map(|(signer, _)| signer)
    }

    /// Where `signer` is, or would go. A price holds a handful of signatures, cold in memory:
    /// a scan from the front reads them in order, which the hardware fetches ahead, where a
    /// binary search jumped between lines.
    fn position(&self, signer: &Address) -> Result<usize, usize> {
        let at = (self.0.iter())
            .position(|(held, _)| held >= signer)
            .unwrap_or(self.0.len());
        match self.0.get(at) {
            Some((held, _)) if held == signer => Ok(at),
            _ => Err(at),
        }
    }
}

/// Signer and signature pairs, in ascending order of signer.
pub type Iter<'a> = std::iter::Map<
    std::slice::Iter<'a, (Address, Signature)>,
    fn(&'a (Address, Signature)) -> (&'a Address, &'a Signature),
>;

impl<'a> IntoIterator for &'a Signatures {
    type Item = (&'a Address, &'a Signature);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<(Address, Signature)> for Signatures {
    /// Later signatures by the same signer replace earlier ones, as in a map.
    fn from_iter<I: IntoIterator<Item = (Address, Signature)>>(pairs: I) -> Signatures {
        let mut signatures = Signatures::new();
        pairs
            .into_iter()
            .for_each(|(signer, signature)| _ = signatures.insert(signer, signature));
        signatures
    }
}

impl std::fmt::Debug for Signatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(byte: u8) -> Address {
        Address([byte; 20])
    }

    #[test]
    fn signers_stay_sorted_and_unique_as_in_a_map() {
        let mut signatures = Signatures::new();
        assert_eq!(signatures.insert(signer(3), Signature([3; 65])), None);
        assert_eq!(signatures.insert(signer(1), Signature([1; 65])), None);
        assert_eq!(signatures.insert(signer(2), Signature([2; 65])), None);
        assert_eq!(
            signatures.insert(signer(1), Signature([9; 65])),
            Some(Signature([1; 65]))
        );
        assert_eq!(signatures.len(), 3);
        let keys: Vec<_> = signatures.keys().copied().collect();
        assert_eq!(keys, [signer(1), signer(2), signer(3)]);
        assert_eq!(signatures.get(&signer(1)), Some(&Signature([9; 65])));
        assert!(!signatures.contains_key(&signer(4)));
    }

    #[test]
    fn past_the_four_held_in_place_order_and_lookups_hold() {
        let mut signatures = Signatures::new();
        for byte in [9, 2, 7, 4, 1, 8, 3] {
            assert_eq!(signatures.insert(signer(byte), Signature([byte; 65])), None);
        }
        assert_eq!(
            signatures.insert(signer(7), Signature([0; 65])),
            Some(Signature([7; 65]))
        );
        let keys: Vec<_> = signatures.keys().copied().collect();
        assert_eq!(keys, [1, 2, 3, 4, 7, 8, 9].map(signer));
        assert_eq!(signatures.get(&signer(9)), Some(&Signature([9; 65])));
        assert_eq!(signatures.get(&signer(7)), Some(&Signature([0; 65])));
        assert_eq!(signatures.get(&signer(5)), None);
        let collected: Signatures = signatures.iter().map(|(a, s)| (*a, *s)).collect();
        assert_eq!(collected, signatures);
    }
}

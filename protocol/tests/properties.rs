//! Invariants over random input: the decoder is total and canonical, and no sequence of events,
//! however hostile, makes a node panic, sign an id twice, broadcast an invalid signature, or write
//! a price without a quorum of distinct, valid, allowed signatures.

mod common;

use proptest::prelude::*;
use protocol::hostile::{Hostile, Violation};
use protocol::*;

const T0: u64 = 1_767_225_600_000;
const PRICE: u128 = 301_245_000_000;

proptest! {
    #[test]
    fn decoding_is_total_and_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        if let Ok(message) = Message::decode(&bytes) {
            prop_assert_eq!(message.encode(), bytes);
        }
    }

    #[test]
    fn flipped_bytes_of_a_valid_message_decode_canonically(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), cut in any::<prop::sample::Index>()) {
        let keys = common::keys(3);
        let mut bytes = common::signed([1; 32], common::body(&keys[0], T0, PRICE), &[&keys[0], &keys[1], &keys[2]]).encode();
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(message) = Message::decode(&bytes) {
            prop_assert_eq!(message.encode(), bytes);
        }
    }

    #[test]
    fn any_message_round_trips(
        id in any::<u128>(), units in any::<u128>(), decimals in 0u8..=38, at in any::<u64>(),
        network in any::<[u8; 32]>(),
        signatures in proptest::collection::btree_map(any::<[u8; 20]>(), any::<[u8; 32]>(), 1..=16),
    ) {
        let body = PriceBody { id: PriceId(id), feed: common::feed(), price: Price(units), decimals, observed_at_ms: at };
        let signatures = signatures
            .into_iter()
            .map(|(a, s)| (Address(a), Signature([s, s, [s[0]; 32]].concat()[..65].try_into().unwrap())))
            .collect();
        let message = Message::new(network, body, signatures).unwrap();
        prop_assert_eq!(Message::decode(&message.encode()), Ok(message));
    }

    /// Signatures answer as a map does, however many (four are held in place, the rest spill).
    #[test]
    fn signatures_behave_as_a_map(
        inserts in proptest::collection::vec((0u8..24, any::<u8>()), 0..40),
        asked in proptest::collection::vec(0u8..24, 0..8),
    ) {
        let mut signatures = Signatures::new();
        let mut map = std::collections::BTreeMap::new();
        for (signer, byte) in inserts {
            let (signer, signature) = (Address([signer; 20]), Signature([byte; 65]));
            prop_assert_eq!(signatures.insert(signer, signature), map.insert(signer, signature));
        }
        prop_assert_eq!(signatures.len(), map.len());
        prop_assert!(signatures.iter().eq(map.iter()));
        for signer in asked.into_iter().map(|byte| Address([byte; 20])) {
            prop_assert_eq!(signatures.get(&signer), map.get(&signer));
            prop_assert_eq!(signatures.get_mut(&signer), map.get_mut(&signer));
            prop_assert_eq!(signatures.contains_key(&signer), map.contains_key(&signer));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The hostile harness (shared with the `node_events` fuzz target), fed from random bytes.
    #[test]
    fn no_event_sequence_breaks_a_node(bytes in proptest::collection::vec(any::<u8>(), 0..6_000)) {
        if let Err(Violation(what)) = Hostile::run(&bytes) {
            prop_assert!(false, "{}", what);
        }
    }
}

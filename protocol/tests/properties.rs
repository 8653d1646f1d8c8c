//! Invariants over random input: the decoder is total and canonical, and no sequence of events,
//! however hostile, makes a node panic, sign an id twice, broadcast an invalid signature, or write
//! a price without a quorum of distinct, valid, allowed signatures.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
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
}

/// One thing that can happen to a node.
#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Fetched(Vec<i16>),
    /// A price from `origin` (4 is not allowlisted) signed by the keys in `signers`, with a price
    /// off by `deviation` per mille, observed `age_s` seconds ago, id sequence `sequence`, and
    /// optionally one byte changed.
    Price {
        origin: usize,
        signers: u8,
        deviation: i16,
        age_s: i32,
        sequence: u16,
        corrupt: Option<(usize, u8)>,
    },
    Junk(Vec<u8>),
    /// Answer the pending signature request `which`, correctly or with a wrong key.
    AnswerSign {
        which: usize,
        honest: bool,
    },
    Database {
        my_age_ms: u64,
        others_age_ms: u64,
        stored: bool,
    },
    Unreachable,
    FinishWrite {
        which: usize,
        outcome: u8,
    },
    Peers(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..40_000).prop_map(Op::Advance),
        2 => proptest::collection::vec(-30i16..30, 0..4).prop_map(Op::Fetched),
        8 => (0usize..5, any::<u8>(), -30i16..30, -120i32..400, 0u16..3, proptest::option::weighted(0.2, (0usize..1500, any::<u8>())))
            .prop_map(|(origin, signers, deviation, age_s, sequence, corrupt)| Op::Price { origin, signers, deviation, age_s, sequence, corrupt }),
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Op::Junk),
        4 => (0usize..8, proptest::bool::weighted(0.9)).prop_map(|(which, honest)| Op::AnswerSign { which, honest }),
        2 => (0u64..30_000, 0u64..30_000, any::<bool>()).prop_map(|(my_age_ms, others_age_ms, stored)| Op::Database { my_age_ms, others_age_ms, stored }),
        1 => Just(Op::Unreachable),
        3 => (0usize..8, 0u8..3).prop_map(|(which, outcome)| Op::FinishWrite { which, outcome }),
        1 => (0usize..6).prop_map(Op::Peers),
    ]
}

struct World {
    node: Node,
    keys: Vec<Keypair>,
    config: Config,
    now: u64,
    pending_signs: Vec<(PriceId, [u8; 32])>,
    pending_writes: Vec<PriceId>,
    signed_ids: BTreeSet<PriceId>,
    written: BTreeMap<PriceId, usize>,
    gossip_in: u64,
    verdicts_out: u64,
}

impl World {
    fn feed(&mut self, event: Event) -> Result<(), TestCaseError> {
        if matches!(event, Event::Gossip { .. }) {
            self.gossip_in += 1;
        }
        self.node.handle(self.now, event);
        let network_id = self.node.network_id();
        while let Some(action) = self.node.poll_action() {
            match action {
                Action::Sign { id, digest } => {
                    prop_assert!(self.signed_ids.insert(id), "asked to sign {} twice", id);
                    self.pending_signs.push((id, digest));
                }
                Action::Write(row) => {
                    prop_assert_eq!(row.audit(&self.config), Ok(()));
                    *self.written.entry(row.message.body.id).or_default() += 1;
                    self.pending_writes.push(row.message.body.id);
                }
                Action::Broadcast { bytes, .. } => {
                    let message = Message::decode(&bytes).expect("a node only sends what decodes");
                    let digest = message.body.digest(&network_id);
                    for (&signer, signature) in message.signatures() {
                        prop_assert!(
                            signature.is_by(&digest, signer),
                            "broadcast an invalid signature"
                        );
                    }
                }
                Action::Verdict { .. } => self.verdicts_out += 1,
                _ => {}
            }
        }
        prop_assert_eq!(self.gossip_in, self.verdicts_out, "one verdict per message");
        let (prices, _, _) = self.node.footprint();
        prop_assert!(prices <= self.node.config().max_prices);
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        let network_id = self.node.network_id();
        let me = self.node.address();
        match op {
            Op::Advance(ms) => {
                self.now += ms;
                self.feed(Event::TimerDue)
            }
            Op::Fetched(offsets) => {
                let answered = offsets
                    .iter()
                    .map(|&d| Price((PRICE as i128 + i128::from(d) * 1_000_000) as u128))
                    .collect();
                self.feed(Event::PricesFetched { answered })
            }
            Op::Price {
                origin,
                signers,
                deviation,
                age_s,
                sequence,
                corrupt,
            } => {
                let observed = (self.now as i64 - i64::from(age_s) * 1000) as u64;
                let units = (PRICE as i128 + PRICE as i128 * i128::from(deviation) / 1000) as u128;
                let mut body = common::body(&self.keys[origin], observed, units);
                body.id = PriceId::mint(observed, sequence, self.keys[origin].address());
                let chosen: Vec<&Keypair> = (0..5)
                    .filter(|k| signers & (1 << k) != 0)
                    .map(|k| &self.keys[k])
                    .collect();
                if chosen.is_empty() {
                    return Ok(());
                }
                let mut bytes = common::signed(network_id, body, &chosen).encode();
                if let Some((at, value)) = corrupt {
                    let at = at % bytes.len();
                    bytes[at] = value;
                }
                self.feed(common::gossip(bytes))
            }
            Op::Junk(bytes) => self.feed(common::gossip(bytes)),
            Op::AnswerSign { which, honest } => {
                if self.pending_signs.is_empty() {
                    return Ok(());
                }
                let (id, digest) = self.pending_signs.remove(which % self.pending_signs.len());
                let key = if honest {
                    self.keys.iter().find(|k| k.address() == me).unwrap()
                } else {
                    &self.keys[4]
                };
                let signature = key.sign(&digest);
                self.feed(Event::Signed { id, signature })
            }
            Op::Database {
                my_age_ms,
                others_age_ms,
                stored,
            } => {
                let heartbeats = self
                    .keys
                    .iter()
                    .map(|k| Heartbeat {
                        node: k.address(),
                        age_ms: if k.address() == me {
                            my_age_ms
                        } else {
                            others_age_ms
                        },
                    })
                    .collect();
                let stored = if stored {
                    self.written.keys().copied().collect()
                } else {
                    vec![]
                };
                self.feed(Event::DatabaseRead { heartbeats, stored })
            }
            Op::Unreachable => self.feed(Event::DatabaseUnreachable),
            Op::FinishWrite { which, outcome } => {
                if self.pending_writes.is_empty() {
                    return Ok(());
                }
                let id = self
                    .pending_writes
                    .remove(which % self.pending_writes.len());
                let outcome = [
                    WriteOutcome::Inserted,
                    WriteOutcome::AlreadyPresent,
                    WriteOutcome::Failed,
                ][outcome as usize];
                self.feed(Event::WriteFinished { id, outcome })
            }
            Op::Peers(count) => self.feed(Event::PeersChanged { count }),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_event_sequence_breaks_a_node(me in 0usize..4, quorum in 1usize..=4, small in any::<bool>(), ops in proptest::collection::vec(op(), 1..120)) {
        let keys = common::keys(5);
        let mut config = common::config(&keys[..4]);
        config.quorum = quorum;
        config.committee = 3;
        if small {
            config.max_prices = 6;
            config.max_pending_per_origin = 2;
        }
        let node = Node::new(config.clone(), keys[me].address(), 7, T0).unwrap();
        let mut world = World {
            node, keys, config, now: T0,
            pending_signs: vec![], pending_writes: vec![], signed_ids: BTreeSet::new(),
            written: BTreeMap::new(), gossip_in: 0, verdicts_out: 0,
        };
        for op in ops {
            world.apply(op)?;
        }
    }
}

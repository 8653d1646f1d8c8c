//! One node at a time: feed events, assert the exact actions.

mod common;

use common::{body, config, gossip, keys, signed, step, verdict};
use protocol::*;

const T0: u64 = 1_767_225_600_000;
const PRICE: u128 = 301_245_000_000;

/// When [`observing_node`] is settled: past its first observation, which happens within 10 s.
const READY: u64 = T0 + 10_000;

/// A node for `keys[me]` at READY, past its first heartbeats and observation (PRICE, not published:
/// it waits for a peer), so that only what a test feeds it happens next.
fn observing_node(keys: &[Keypair], me: usize) -> Node {
    let mut cfg = config(keys);
    cfg.min_peers = 1;
    let mut node = Node::new(cfg, keys[me].address(), 42, T0).unwrap();
    step(&mut node, READY, Event::TimerDue);
    step(
        &mut node,
        READY,
        Event::PricesFetched {
            answered: vec![Price(PRICE)],
        },
    );
    node
}

/// Steps through other timers until the node's next timer is `wanted`; returns when. Observations
/// between publications are answered with PRICE, which has not moved.
fn until_timer(node: &mut Node, wanted: Timer) -> u64 {
    loop {
        let (at, timer) = node.poll_timeout().unwrap();
        if timer == wanted {
            return at;
        }
        let actions = step(node, at, Event::TimerDue);
        if actions.contains(&Action::FetchPrices) {
            let answered = vec![Price(PRICE)];
            step(node, at, Event::PricesFetched { answered });
        }
    }
}

/// Steps through heartbeats until the node's next timer is its first observation; returns when.
fn first_observation(node: &mut Node) -> u64 {
    until_timer(node, Timer::Observe)
}

fn writes(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| matches!(a, Action::Write(_)))
        .collect()
}

fn sign_action(node: &Node, body: PriceBody) -> Action {
    Action::Sign {
        id: body.id,
        digest: body.digest(&node.network_id()),
    }
}

#[test]
fn starts_with_a_heartbeat_then_observes_and_publishes() {
    let keys = keys(4);
    let mut node = Node::new(config(&keys), keys[0].address(), 42, T0).unwrap();
    assert_eq!(node.poll_timeout(), Some((T0, Timer::Heartbeat)));
    assert_eq!(
        step(&mut node, T0, Event::TimerDue),
        [
            Action::Heartbeat,
            Action::ReadDatabase { stored_since: None }
        ]
    );
    let at = first_observation(&mut node);
    let interval = config(&keys).price_interval_ms;
    assert!(
        (T0..T0 + interval).contains(&at),
        "first observation within one interval of start"
    );
    // Restarted later, the node keeps its phase of the interval.
    let restart = T0 + 123_456;
    let mut later = Node::new(config(&keys), keys[0].address(), 7, restart).unwrap();
    step(&mut later, restart, Event::TimerDue);
    let later_at = until_timer(&mut later, Timer::Observe);
    assert!(later_at >= restart);
    assert_eq!(later_at % interval, at % interval);
    assert_eq!(step(&mut node, at, Event::TimerDue), [Action::FetchPrices]);

    let actions = step(
        &mut node,
        at,
        Event::PricesFetched {
            answered: vec![Price(3), Price(PRICE), Price(PRICE + 2)],
        },
    );
    let Action::Sign { id, digest } = actions[2] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        actions,
        [
            Action::Report(Report::Observed {
                price: Price(PRICE),
                sources: 3
            }),
            Action::Report(Report::Published {
                id,
                price: Price(PRICE)
            }),
            Action::Sign { id, digest },
        ]
    );
    assert!(id.is_from(keys[0].address()) && id.unix_ms() == at);

    let actions = step(
        &mut node,
        at,
        Event::Signed {
            id,
            signature: keys[0].sign(&digest),
        },
    );
    let [
        Action::Broadcast {
            id: sent,
            why: Broadcast::Publish,
            bytes,
        },
    ] = &actions[..]
    else {
        panic!("{actions:?}")
    };
    let message = Message::decode(bytes).unwrap();
    assert_eq!(
        (*sent, message.body.id, message.body.price),
        (id, id, Price(PRICE))
    );
    assert_eq!(
        message.signatures().keys().copied().collect::<Vec<_>>(),
        [keys[0].address()]
    );
    assert_eq!(node.counters().published, 1);
}

/// Nodes started together (after an outage, say) must not read the database together for ever:
/// after the heartbeat at start, each beats at its own phase of the interval, which comes from its
/// address (as publications do), so a restart keeps it.
#[test]
fn heartbeats_keep_a_phase_of_their_own_from_the_second_on() {
    let keys = keys(8);
    let interval = config(&keys).heartbeat_interval_ms;
    let second_beat = |key: &Keypair, start: u64| {
        let mut node = Node::new(config(&keys), key.address(), 42, start).unwrap();
        assert_eq!(node.poll_timeout(), Some((start, Timer::Heartbeat)));
        step(&mut node, start, Event::TimerDue);
        until_timer(&mut node, Timer::Heartbeat)
    };
    let phases: std::collections::BTreeSet<u64> = keys
        .iter()
        .map(|key| {
            let at = second_beat(key, T0);
            assert!((T0 + 1..=T0 + interval).contains(&at), "{at}");
            at % interval
        })
        .collect();
    assert!(phases.len() > keys.len() / 2, "{phases:?}");
    let restart = T0 + 123_457;
    let at = second_beat(&keys[0], restart);
    assert_eq!(at % interval, second_beat(&keys[0], T0) % interval);
}

#[test]
fn a_move_of_deviation_bps_publishes_before_the_interval() {
    let keys = keys(4);
    let mut cfg = config(&keys);
    cfg.min_peers = 0;
    // Every second, so that the first look comes before the node's phase of the interval.
    cfg.observe_interval_ms = 1_000;
    let deviation = PRICE * u128::from(cfg.deviation_bps) / 10_000;
    let mut node = Node::new(cfg.clone(), keys[0].address(), 42, T0).unwrap();
    let fetched = |units: u128| Event::PricesFetched {
        answered: vec![Price(units)],
    };
    let observed = |units: u128| {
        Action::Report(Report::Observed {
            price: Price(units),
            sources: 1,
        })
    };

    // Before its first publication, a move publishes nothing: the interval publishes first.
    let watch = until_timer(&mut node, Timer::Watch);
    assert_eq!(watch, T0 + cfg.observe_interval_ms);
    assert_eq!(
        step(&mut node, watch, Event::TimerDue),
        [Action::FetchPrices]
    );
    let far = PRICE * 2;
    assert_eq!(step(&mut node, watch, fetched(far)), [observed(far)]);

    let at = first_observation(&mut node);
    step(&mut node, at, Event::TimerDue);
    step(&mut node, at, fetched(PRICE));
    assert_eq!(node.counters().published, 1);

    // One unit short of the deviation: observed, not published.
    let watch = until_timer(&mut node, Timer::Watch);
    assert_eq!(
        step(&mut node, watch, Event::TimerDue),
        [Action::FetchPrices]
    );
    let short = PRICE + deviation - 1;
    assert_eq!(step(&mut node, watch, fetched(short)), [observed(short)]);

    // The deviation itself: published at once, judged by co-signers like any other price.
    let watch = until_timer(&mut node, Timer::Watch);
    assert!(
        watch < at + cfg.price_interval_ms,
        "before the next interval"
    );
    step(&mut node, watch, Event::TimerDue);
    let moved = PRICE - deviation;
    let actions = step(&mut node, watch, fetched(moved));
    let Action::Report(Report::Published { id, price }) = actions[1] else {
        panic!("{actions:?}")
    };
    assert_eq!((price, id.unix_ms()), (Price(moved), watch));
    assert!(matches!(actions[2], Action::Sign { .. }), "{actions:?}");
    assert_eq!(
        (
            node.counters().published,
            node.counters().published_on_deviation
        ),
        (2, 1)
    );

    // Measured from the last publication: the same price again is no move.
    let watch = until_timer(&mut node, Timer::Watch);
    step(&mut node, watch, Event::TimerDue);
    assert_eq!(step(&mut node, watch, fetched(moved)), [observed(moved)]);

    // deviation_bps 0: no observation between publications at all.
    cfg.deviation_bps = 0;
    let mut quiet = Node::new(cfg, keys[0].address(), 42, T0).unwrap();
    let mut timers = vec![];
    for _ in 0..5 {
        let (at, timer) = quiet.poll_timeout().unwrap();
        timers.push(timer);
        step(&mut quiet, at, Event::TimerDue);
    }
    assert!(!timers.contains(&Timer::Watch), "{timers:?}");
}

#[test]
fn too_few_sources_or_peers_publish_nothing() {
    let keys = keys(4);
    let mut cfg = config(&keys);
    cfg.min_sources = 2;
    cfg.min_peers = 3;
    let mut node = Node::new(cfg, keys[0].address(), 42, T0).unwrap();
    let at = first_observation(&mut node);
    step(&mut node, at, Event::TimerDue);
    assert_eq!(
        step(
            &mut node,
            at,
            Event::PricesFetched {
                answered: vec![Price(PRICE)]
            }
        ),
        [Action::Report(Report::SourcesInsufficient {
            answered: 1,
            needed: 2
        })]
    );
    let at = at + 600_000;
    step(&mut node, at, Event::TimerDue);
    let answered = vec![Price(PRICE), Price(PRICE)];
    assert_eq!(
        step(&mut node, at, Event::PricesFetched { answered }),
        [
            Action::Report(Report::Observed {
                price: Price(PRICE),
                sources: 2
            }),
            Action::Report(Report::WaitingForPeers {
                peers: 0,
                needed: 3
            }),
        ]
    );
    assert_eq!(
        step(&mut node, at, Event::PeersChanged { count: 3 }),
        [Action::Report(Report::PeersEnough { peers: 3 })]
    );
    assert_eq!(node.counters().publications_skipped, 2);
}

#[test]
fn committee_member_observes_then_cosigns() {
    let keys = keys(4);
    let mut node = Node::new(config(&keys), keys[1].address(), 42, T0).unwrap();
    step(&mut node, T0, Event::TimerDue);
    let b = body(&keys[0], T0, PRICE + 100);
    let bytes = signed(node.network_id(), b, &[&keys[0]]).encode();
    // No recent observation of its own yet: it observes first.
    assert_eq!(
        step(&mut node, T0 + 50, gossip(bytes)),
        [verdict(Verdict::Accept), Action::FetchPrices]
    );
    assert_eq!(
        step(
            &mut node,
            T0 + 80,
            Event::PricesFetched {
                answered: vec![Price(PRICE)]
            }
        ),
        [
            Action::Report(Report::Observed {
                price: Price(PRICE),
                sources: 1
            }),
            sign_action(&node, b)
        ]
    );
    let signature = keys[1].sign(&b.digest(&node.network_id()));
    let actions = step(
        &mut node,
        T0 + 90,
        Event::Signed {
            id: b.id,
            signature,
        },
    );
    let [
        Action::Report(Report::CoSigned { id, origin }),
        Action::Broadcast {
            why: Broadcast::CoSign,
            bytes,
            ..
        },
    ] = &actions[..]
    else {
        panic!("{actions:?}")
    };
    assert_eq!((*id, *origin), (b.id, keys[0].address()));
    assert_eq!(Message::decode(bytes).unwrap().signatures().len(), 2);
}

#[test]
fn a_price_awaiting_an_observation_outlasts_a_fetch_short_of_sources() {
    // With the watch's observations between publications, and without (deviation_bps 0).
    for deviation_bps in [50, 0] {
        let keys = keys(4);
        let mut cfg = config(&keys);
        cfg.deviation_bps = deviation_bps;
        let mut node = Node::new(cfg, keys[1].address(), 42, T0).unwrap();
        // The first observation answers; then the exchanges fail until its reference is stale.
        let stale = T0 + 70_000;
        let mut observed = false;
        while let Some((at, _)) = node.poll_timeout().filter(|&(at, _)| at < stale) {
            if step(&mut node, at, Event::TimerDue).contains(&Action::FetchPrices) {
                let answered = if observed { vec![] } else { vec![Price(PRICE)] };
                observed = true;
                step(&mut node, at, Event::PricesFetched { answered });
            }
        }
        assert!(observed);
        let b = body(&keys[0], stale, PRICE + 100);
        let bytes = signed(node.network_id(), b, &[&keys[0]]).encode();
        assert_eq!(
            step(&mut node, stale, gossip(bytes)),
            [verdict(Verdict::Accept), Action::FetchPrices]
        );
        // Short again: the price is still fresh, so it keeps waiting.
        let answered = vec![];
        assert_eq!(
            step(&mut node, stale + 80, Event::PricesFetched { answered }),
            [Action::Report(Report::SourcesInsufficient {
                answered: 0,
                needed: 1
            })]
        );
        // The node asks again within an observe interval, and that answer decides the price.
        let at = loop {
            let (at, _) = node.poll_timeout().unwrap();
            if step(&mut node, at, Event::TimerDue).contains(&Action::FetchPrices) {
                break at;
            }
        };
        let interval = node.config().observe_interval_ms;
        assert!(
            at <= stale + 80 + interval,
            "deviation_bps {deviation_bps}: {at}"
        );
        let answered = vec![Price(PRICE)];
        let actions = step(&mut node, at, Event::PricesFetched { answered });
        assert!(actions.ends_with(&[sign_action(&node, b)]), "{actions:?}");
    }
}

#[test]
fn a_signature_its_own_key_did_not_make_is_reported() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 1);
    let net = node.network_id();
    let b = body(&keys[0], READY, PRICE);
    let actions = step(
        &mut node,
        READY,
        gossip(signed(net, b, &[&keys[0]]).encode()),
    );
    assert!(actions.contains(&sign_action(&node, b)));
    // The driver's key is not the node's: the signature does not verify as the node's own.
    let signature = keys[2].sign(&b.digest(&net));
    assert_eq!(
        step(
            &mut node,
            READY,
            Event::Signed {
                id: b.id,
                signature
            }
        ),
        [Action::Report(Report::OwnSignatureFault { id: b.id })]
    );
    assert_eq!(node.counters().own_signature_faults, 1);
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "not drained")]
fn handling_an_event_before_draining_the_last_is_refused() {
    let keys = keys(4);
    let mut node = Node::new(config(&keys), keys[0].address(), 42, T0).unwrap();
    node.handle(T0, Event::TimerDue);
    node.handle(T0, Event::TimerDue);
}

#[test]
fn never_signs_the_same_id_twice() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 1);
    let b = body(&keys[0], READY, PRICE);
    let first = signed(node.network_id(), b, &[&keys[0]]).encode();
    assert_eq!(
        step(&mut node, READY, gossip(first)),
        [verdict(Verdict::Accept), sign_action(&node, b)]
    );
    // Another version of the same price, before this node's own signature came back.
    let second = signed(node.network_id(), b, &[&keys[0], &keys[2]]).encode();
    assert_eq!(
        step(&mut node, READY + 1, gossip(second)),
        [verdict(Verdict::Accept)]
    );
}

#[test]
fn a_later_wave_never_signs_a_price_older_than_max_age() {
    let keys = keys(6);
    let b = body(&keys[0], READY, PRICE);
    let mut refused_stale = 0;
    for me in 1..6 {
        // Waves 100 s apart: with a committee of 2 among 5, the third wave comes after max_age.
        let mut cfg = config(&keys);
        cfg.committee = Some(2);
        cfg.cosign_step_ms = 100_000;
        let max_age = cfg.max_age_ms;
        let mut node = Node::new(cfg, keys[me].address(), 42, T0).unwrap();
        let fetched = || Event::PricesFetched {
            answered: vec![Price(PRICE)],
        };
        step(&mut node, READY, fetched());
        let message = signed(node.network_id(), b, &[&keys[0]]);
        let mut actions = step(&mut node, READY, gossip(message.encode()));
        for now in (READY..READY + 240_000).step_by(1_000) {
            if now > READY {
                actions = step(&mut node, now, Event::TimerDue);
            }
            if actions.contains(&Action::FetchPrices) {
                actions.extend(step(&mut node, now, fetched()));
            }
            for action in &actions {
                match action {
                    Action::Sign { id, .. } if *id == b.id => assert!(
                        now <= b.observed_at_ms + max_age,
                        "node {me} signed {} ms after the observation",
                        now - b.observed_at_ms
                    ),
                    Action::Report(Report::Refused {
                        why: Refusal::Stale,
                        ..
                    }) => refused_stale += 1,
                    _ => {}
                }
            }
        }
    }
    assert_eq!(refused_stale, 1, "the third wave's only member");
}

#[test]
fn refuses_prices_out_of_band_or_stale() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 1);
    let far = body(&keys[0], READY, PRICE + PRICE / 50); // 2 % away, bound is 1 %
    let net = node.network_id();
    let actions = step(
        &mut node,
        READY,
        gossip(signed(net, far, &[&keys[0]]).encode()),
    );
    assert_eq!(
        actions,
        [
            verdict(Verdict::Accept),
            Action::Report(Report::Refused {
                id: far.id,
                why: Refusal::OutOfBand
            })
        ]
    );
    let now = READY + 200_000;
    let old = body(&keys[0], now - 180_001, PRICE);
    let actions = step(
        &mut node,
        now,
        gossip(signed(net, old, &[&keys[0]]).encode()),
    );
    assert_eq!(actions, [verdict(Verdict::Ignore(Ignored::Stale))]);
    assert_eq!(node.counters().refused, 1);
}

#[test]
fn later_waves_wait_and_stand_down_once_quorum_is_reached() {
    let keys = keys(12);
    let cfg = config(&keys);
    // Find a node of the second wave for some price.
    let keys = &keys;
    let (me, b) = (1..12)
        .flat_map(|me| (0..50).map(move |i| (me, body(&keys[0], READY + i, PRICE))))
        .find(|&(me, b)| {
            let mut node = observing_node(keys, me);
            let bytes = signed(node.network_id(), b, &[&keys[0]]).encode();
            let first = step(&mut node, b.observed_at_ms, gossip(bytes));
            let sign = sign_action(&node, b);
            let before = step(
                &mut node,
                b.observed_at_ms + cfg.cosign_step_ms - 1,
                Event::TimerDue,
            );
            let at_step = step(
                &mut node,
                b.observed_at_ms + cfg.cosign_step_ms,
                Event::TimerDue,
            );
            first == [verdict(Verdict::Accept)]
                && !before.contains(&sign)
                && at_step.contains(&sign)
        })
        .expect("some node is in the second wave");
    let mut node = observing_node(keys, me);
    let net = node.network_id();
    let others: Vec<&Keypair> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(_, k)| k)
        .collect();
    step(
        &mut node,
        b.observed_at_ms,
        gossip(signed(net, b, &[&keys[0]]).encode()),
    );
    let quorum = signed(net, b, &[others[0], others[1], others[2]]);
    let actions = step(&mut node, b.observed_at_ms + 10, gossip(quorum.encode()));
    assert_eq!(
        actions,
        [
            verdict(Verdict::Accept),
            Action::Report(Report::QuorumReached {
                id: b.id,
                signers: 3,
                after_ms: 10
            }),
        ]
    );
    let sign = sign_action(&node, b);
    assert!(
        !step(&mut node, b.observed_at_ms + 5_000, Event::TimerDue).contains(&sign),
        "no co-sign after quorum"
    );

    // Without quorum, the second wave signs when its turn comes.
    let mut node = observing_node(keys, me);
    step(
        &mut node,
        b.observed_at_ms,
        gossip(signed(net, b, &[&keys[0]]).encode()),
    );
    let sign = sign_action(&node, b);
    assert!(!step(&mut node, b.observed_at_ms + 4_999, Event::TimerDue).contains(&sign));
    assert!(step(&mut node, b.observed_at_ms + 5_000, Event::TimerDue).contains(&sign));
}

#[test]
fn bad_input_is_dropped_counted_and_never_signed() {
    let keys = keys(5);
    let cfg = config(&keys[..4]);
    let mut node = Node::new(cfg.clone(), keys[1].address(), 42, T0).unwrap();
    step(&mut node, T0, Event::TimerDue);
    let net = node.network_id();
    let good = body(&keys[0], T0, PRICE);
    let mut forged = signed(net, good, &[&keys[0]]).encode();
    forged[91 + 20] ^= 1;
    let mut other_network = cfg.clone();
    other_network.network = "elsewhere".into();
    let mut wrong_id = good;
    wrong_id.observed_at_ms += 1;
    let mut bad_version = good;
    bad_version.id = PriceId(good.id.0 & !(0xf << 76));
    let mut other_feed = good;
    other_feed.feed = Feed::new("BTC/USD").unwrap();
    let cases: Vec<(Vec<u8>, Verdict)> = vec![
        (
            vec![],
            Verdict::Reject(Misbehaviour::Malformed(DecodeError::Truncated)),
        ),
        (
            vec![0xff; 4000],
            Verdict::Reject(Misbehaviour::Malformed(DecodeError::TooLong(4000))),
        ),
        (
            signed(other_network.network_id(), good, &[&keys[0]]).encode(),
            Verdict::Reject(Misbehaviour::WrongNetwork),
        ),
        (
            signed(net, other_feed, &[&keys[0]]).encode(),
            Verdict::Reject(Misbehaviour::WrongFeed),
        ),
        (
            signed(net, wrong_id, &[&keys[0]]).encode(),
            Verdict::Reject(Misbehaviour::BadId),
        ),
        (
            signed(net, bad_version, &[&keys[0]]).encode(),
            Verdict::Reject(Misbehaviour::BadId),
        ),
        (
            signed(net, good, &[&keys[0], &keys[4]]).encode(),
            Verdict::Reject(Misbehaviour::UnknownSigner),
        ),
        (
            signed(net, good, &[&keys[2]]).encode(),
            Verdict::Reject(Misbehaviour::NoOriginSignature),
        ),
        (forged, Verdict::Reject(Misbehaviour::BadSignature)),
        (
            signed(net, body(&keys[0], T0 + 60_001, PRICE), &[&keys[0]]).encode(),
            Verdict::Reject(Misbehaviour::FromFuture),
        ),
    ];
    for (i, (bytes, expected)) in cases.into_iter().enumerate() {
        assert_eq!(
            step(&mut node, T0, gossip(bytes)),
            [verdict(expected)],
            "case {i}"
        );
    }
    assert_eq!(node.counters().rejected_total(), 10);
    assert_eq!(node.counters().rejected["bad id"], 2);
    assert_eq!(node.footprint().prices, 0, "nothing kept");

    // A signer listed twice never decodes.
    let mut twice = signed(net, good, &[&keys[0], &keys[2]]).encode();
    let (first, second) = twice[91..].split_at_mut(85);
    second[..20].copy_from_slice(&first[..20]);
    let actions = step(&mut node, T0, gossip(twice));
    assert!(matches!(
        actions[..],
        [Action::Verdict {
            verdict: Verdict::Reject(Misbehaviour::Malformed(
                DecodeError::DuplicateSigner | DecodeError::Unsorted
            )),
            ..
        }]
    ));
}

#[test]
fn equivocation_is_ignored_and_the_first_body_kept() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 3);
    let net = node.network_id();
    let b = body(&keys[0], READY, PRICE);
    step(
        &mut node,
        READY,
        gossip(signed(net, b, &[&keys[0]]).encode()),
    );
    let mut twin = b;
    twin.price = Price(PRICE + 1);
    assert_eq!(
        step(
            &mut node,
            READY,
            gossip(signed(net, twin, &[&keys[0], &keys[1]]).encode())
        ),
        [verdict(Verdict::Ignore(Ignored::Equivocation))]
    );
}

/// The byte offset of `signer`'s signature in an encoded message.
fn signature_at(message: &Message, signer: Address) -> usize {
    let position = message
        .signatures()
        .keys()
        .position(|&s| s == signer)
        .unwrap();
    91 + 85 * position + 20
}

#[test]
fn held_signatures_are_compared_and_a_differing_copy_is_checked() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 3);
    let net = node.network_id();
    let b = body(&keys[0], READY, PRICE + 10_000_000_000); // out of band: this node will not sign
    let pair = signed(net, b, &[&keys[0], &keys[1]]);
    step(&mut node, READY, gossip(pair.encode()));
    // The same bytes again: nothing checked, nothing new.
    assert_eq!(
        step(&mut node, READY, gossip(pair.encode())),
        [verdict(Verdict::Ignore(Ignored::Duplicate))]
    );
    // Same signers, one held signature corrupted: it differs from the held copy, so it is checked.
    // Forwarding it would get this node penalised by every peer that lacks the price.
    let mut corrupted = pair.encode();
    corrupted[signature_at(&pair, keys[1].address())] ^= 1;
    assert_eq!(
        step(&mut node, READY, gossip(corrupted)),
        [verdict(Verdict::Reject(Misbehaviour::BadSignature))]
    );
    // One new valid signature beside a corrupted held one: rejected, and nothing of it is kept.
    let with_new = signed(net, b, &[&keys[0], &keys[2]]);
    let mut mixed = with_new.encode();
    mixed[signature_at(&with_new, keys[0].address())] ^= 1;
    assert_eq!(
        step(&mut node, READY, gossip(mixed)),
        [verdict(Verdict::Reject(Misbehaviour::BadSignature))]
    );
    // The honest copy then brings the quorum.
    let actions = step(&mut node, READY, gossip(with_new.encode()));
    assert_eq!(actions[0], verdict(Verdict::Accept));
    assert!(matches!(
        actions[1],
        Action::Report(Report::QuorumReached { signers: 3, .. })
    ));
}

#[test]
fn a_price_first_seen_beside_a_forged_signature_is_still_cosigned() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 3);
    let net = node.network_id();
    let b = body(&keys[0], READY, PRICE);
    // A relay adds a forged co-signature to a fresh price: the message is rejected, the origin's
    // verified signature kept, and the price treated as if it had come alone. Were it not, the
    // honest copy would then be a duplicate and the relay would have kept this node from signing.
    let forged = signed(net, b, &[&keys[0], &keys[1]]);
    let mut bytes = forged.encode();
    bytes[signature_at(&forged, keys[1].address())] ^= 1;
    assert_eq!(
        step(&mut node, READY, gossip(bytes)),
        [
            verdict(Verdict::Reject(Misbehaviour::BadSignature)),
            sign_action(&node, b)
        ]
    );
    let honest = signed(net, b, &[&keys[0]]).encode();
    assert_eq!(
        step(&mut node, READY, gossip(honest)),
        [verdict(Verdict::Ignore(Ignored::Duplicate))]
    );
}

#[test]
fn an_overdue_copy_with_a_corrupted_signature_is_not_passed_on() {
    let keys = keys(4);
    let (mut node, b) = signer_of_a_ready_price(&keys);
    let net = node.network_id();
    let retransmitting = READY + 30_000 + 60_000;
    let copy = signed(net, b, &[&keys[0], &keys[1], &keys[2]]);
    let mut corrupted = copy.encode();
    corrupted[signature_at(&copy, keys[2].address())] ^= 1;
    assert_eq!(
        step(&mut node, retransmitting, gossip(corrupted))[0],
        verdict(Verdict::Reject(Misbehaviour::BadSignature))
    );
    assert_eq!(
        step(&mut node, retransmitting, gossip(copy.encode()))[0],
        verdict(Verdict::Accept)
    );
}

/// Counts the signature checks a node makes.
#[derive(Default)]
struct CountingCheck(std::sync::atomic::AtomicUsize);

impl SignatureCheck for CountingCheck {
    fn is_by(&self, signature: &Signature, digest: &[u8; 32], signer: Address) -> bool {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        signature.is_by(digest, signer)
    }
}

#[test]
fn checking_stops_at_the_first_invalid_signature() {
    let keys = keys(6);
    let check = std::sync::Arc::new(CountingCheck::default());
    let mut node = observing_node(&keys, 5).with_signature_check(check.clone());
    let net = node.network_id();
    let b = body(&keys[0], READY, PRICE);
    let message = signed(net, b, &[&keys[0], &keys[1], &keys[2], &keys[3], &keys[4]]);
    let mut bytes = message.encode();
    // Every co-signature corrupted: after the origin, the first one checked ends it.
    for signer in &keys[1..5] {
        bytes[signature_at(&message, signer.address())] ^= 1;
    }
    assert_eq!(
        step(&mut node, READY, gossip(bytes)),
        [verdict(Verdict::Reject(Misbehaviour::BadSignature))]
    );
    assert_eq!(check.0.load(std::sync::atomic::Ordering::Relaxed), 2);
}

/// Records what a node hashes through its check.
#[derive(Default)]
struct HashingCheck(std::sync::Mutex<Vec<Vec<u8>>>);

impl SignatureCheck for HashingCheck {
    fn is_by(&self, signature: &Signature, digest: &[u8; 32], signer: Address) -> bool {
        signature.is_by(digest, signer)
    }

    fn keccak(&self, bytes: &[u8]) -> [u8; 32] {
        self.0.lock().unwrap().push(bytes.to_vec());
        protocol::keccak256(bytes)
    }
}

/// What every node hashes alike goes through the check, where a driver of many nodes shares one
/// memo of it: a new price's signed bytes, and its place on the committee ring.
#[test]
fn a_new_price_is_hashed_through_the_check() {
    let keys = keys(6);
    let check = std::sync::Arc::new(HashingCheck::default());
    let mut node = observing_node(&keys, 5).with_signature_check(check.clone());
    let net = node.network_id();
    let b = body(&keys[0], READY, PRICE);
    let bytes = signed(net, b, &[&keys[0]]).encode();
    step(&mut node, READY, gossip(bytes));
    assert_eq!(
        *check.0.lock().unwrap(),
        [b.signed_bytes(&net).to_vec(), b.id.0.to_be_bytes().to_vec()]
    );
}

/// So does the network id, which every node of a deployment hashes from the same config,
/// allowlist and all, when it starts: a driver of thousands hashes it once.
#[test]
fn the_network_id_is_hashed_through_the_check() {
    let keys = keys(4);
    let check = std::sync::Arc::new(HashingCheck::default());
    let node =
        Node::new_with_signature_check(config(&keys), keys[0].address(), 42, T0, check.clone())
            .unwrap();
    assert_eq!(node.network_id(), config(&keys).network_id());
    assert_eq!(check.0.lock().unwrap().len(), 1, "the config's bytes, once");
}

/// The term's key, which every node hashes from the same term at every read, goes through it too.
#[test]
fn the_term_is_hashed_through_the_check() {
    let keys = keys(4);
    let check = std::sync::Arc::new(HashingCheck::default());
    let mut node = observing_node(&keys, 1).with_signature_check(check.clone());
    let heartbeats = rows(&keys, 0);
    let stored = vec![];
    step(&mut node, READY, Event::DatabaseRead { heartbeats, stored });
    let term = READY / node.config().writer_term_ms;
    assert_eq!(*check.0.lock().unwrap(), [term.to_be_bytes().to_vec()]);
}

/// Waves whose turn comes after a price would expire unready set no co-signing timer: by then the
/// price is at quorum or forgotten. With 200 nodes and waves of 3, 5 s apart, waves 1 to 48 (144
/// nodes) fall within max age plus skew (240 s) and wait; the 52 nodes after them keep only the
/// price's expiry.
#[test]
fn no_cosigning_timer_for_a_wave_after_the_price_expires() {
    let keys = keys(200);
    let cfg = config(&keys);
    assert_eq!(
        (
            cfg.committee(),
            cfg.cosign_step_ms,
            cfg.max_age_ms + cfg.max_skew_ms
        ),
        (3, 5_000, 240_000)
    );
    let (mut waiting, mut expiring_only) = (0, 0);
    for me in 1..keys.len() {
        let mut node = observing_node(&keys, me);
        let b = body(&keys[0], READY, PRICE);
        let bytes = signed(node.network_id(), b, &[&keys[0]]).encode();
        let before = node.footprint().timers;
        let actions = step(&mut node, READY, gossip(bytes));
        if actions.iter().any(|a| matches!(a, Action::Sign { .. })) {
            continue;
        }
        match node.footprint().timers - before {
            2 => waiting += 1,
            1 => expiring_only += 1,
            other => panic!("node {me} set {other} timers"),
        }
    }
    assert_eq!((waiting, expiring_only), (144, 52));
}

#[test]
fn a_late_price_needs_a_verified_quorum_before_anything_is_kept() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 3);
    let net = node.network_id();
    // Older than max_age (3 min), younger than the ready TTL: only a price at quorum is worth it.
    let now = READY + 600_000;
    let b = body(&keys[0], READY, PRICE);
    let message = signed(net, b, &[&keys[0], &keys[1], &keys[2]]);
    let mut forged = message.encode();
    forged[signature_at(&message, keys[2].address())] ^= 1;
    assert_eq!(
        step(&mut node, now, gossip(forged)),
        [verdict(Verdict::Reject(Misbehaviour::BadSignature))]
    );
    assert_eq!(
        node.footprint().prices,
        0,
        "no slot held for a forged quorum"
    );
    let actions = step(&mut node, now, gossip(message.encode()));
    assert_eq!(actions[0], verdict(Verdict::Accept));
    assert_eq!(node.footprint().prices, 1);
}

#[test]
fn counters_are_keyed_by_kind_not_by_what_peers_chose() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 3);
    for len in 0..50 {
        let mut junk = vec![0xff; MAX_MESSAGE_LEN + 1 + len];
        junk[0] = 1;
        step(&mut node, READY, gossip(junk));
    }
    assert_eq!(node.counters().rejected.len(), 1);
    assert_eq!(node.counters().rejected["malformed: too long"], 50);
}

#[test]
fn one_origin_cannot_fill_memory() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 3);
    let net = node.network_id();
    let limit = node.config().max_pending_per_origin as u64;
    for i in 0..limit + 5 {
        let far = body(&keys[0], READY + i, PRICE * 2); // out of band: held, never signed
        let v = step(
            &mut node,
            READY + i,
            gossip(signed(net, far, &[&keys[0]]).encode()),
        )[0]
        .clone();
        let expected = if i < limit {
            Verdict::Accept
        } else {
            Verdict::Ignore(Ignored::OriginLimit)
        };
        assert_eq!(v, verdict(expected), "price {i}");
    }
    assert_eq!(node.footprint().prices as u64, limit);
    // Past their age (max age + skew) they are dropped, and the origin may publish again.
    step(&mut node, READY + limit + 240_000, Event::TimerDue);
    assert_eq!(node.footprint().prices, 0);
    assert_eq!(node.counters().expired_without_quorum, limit);
}

fn rows(keys: &[Keypair], age_ms: u64) -> Vec<HeartbeatRow> {
    keys.iter()
        .map(|k| HeartbeatRow {
            node: k.address(),
            age_ms,
        })
        .collect()
}

/// Fresh heartbeat rows read at each heartbeat interval in `times`: the writer's lease stays alive.
fn keep_lease(node: &mut Node, keys: &[Keypair], times: impl Iterator<Item = u64>) {
    for t in times {
        let heartbeats = rows(keys, 0);
        step(
            node,
            t,
            Event::DatabaseRead {
                heartbeats,
                stored: vec![],
            },
        );
    }
}

/// Reads fresh heartbeat rows once a term from `now` on until `node` is the writer; returns when,
/// and the actions of that read.
fn until_writer(node: &mut Node, keys: &[Keypair], mut now: u64) -> (u64, Vec<Action>) {
    loop {
        let heartbeats = rows(keys, 0);
        let actions = step(
            node,
            now,
            Event::DatabaseRead {
                heartbeats,
                stored: vec![],
            },
        );
        if node.is_writer() {
            return (now, actions);
        }
        now += 60_000;
    }
}

/// A price by keys[0] observed at `at`, signed to quorum by keys[0..3], out of band for a node
/// that observed PRICE: it will not sign it, only write it.
fn ready_out_of_band(node: &Node, keys: &[Keypair], at: u64) -> Message {
    let b = body(&keys[0], at, PRICE + 10_000_000_000);
    signed(node.network_id(), b, &[&keys[0], &keys[1], &keys[2]])
}

/// keys[3] elected writer, holding a ready price it did not sign (out of band); returns the node,
/// the row it will write and when it is due.
fn writer_with_a_ready_price(keys: &[Keypair]) -> (Node, PriceRow, u64) {
    let mut node = observing_node(keys, 3);
    // Make this node the writer: find a term in which it wins, from the term's start, so that the
    // write and its retries fall within it.
    let (now, actions) = until_writer(&mut node, keys, T0 + 60_000);
    assert_eq!(
        actions,
        [Action::Report(Report::WriterChanged { writer: true })]
    );
    let ready = ready_out_of_band(&node, keys, now);
    step(&mut node, now, gossip(ready.encode()));
    let write_at = now + 30_000;
    keep_lease(&mut node, keys, (now..write_at).step_by(5_000));
    let row = PriceRow {
        message: ready,
        origin: keys[0].address(),
        last_signature_at_ms: now,
        writer: keys[3].address(),
    };
    (node, row, write_at)
}

/// The order of writers is drawn per term, and nodes read the table at phases of their own: a
/// writer that went on writing past its term's end, until its next read, would write beside the
/// next term's writer, which took over at its own read.
#[test]
fn a_writers_lease_ends_with_its_term() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 3);
    let (elected, _) = until_writer(&mut node, &keys, READY);
    let term_ms = config(&keys).writer_term_ms;
    let term_end = elected - elected % term_ms + term_ms;
    // Ready 25 s later, so due 5 s into the next term; the last read is 5 s before the term ends.
    let signed_at = elected + 25_000;
    keep_lease(&mut node, &keys, (elected..signed_at).step_by(5_000));
    let ready = ready_out_of_band(&node, &keys, signed_at);
    step(&mut node, signed_at, gossip(ready.encode()));
    keep_lease(&mut node, &keys, (signed_at..term_end).step_by(5_000));
    assert!(node.is_writer());
    let due = signed_at + 30_000;
    assert!(due > term_end);
    assert_eq!(writes(step(&mut node, due, Event::TimerDue)), []);
    assert!(!node.is_writer());
}

/// Across a term's change, a writer's role is reported from its first read in the new term: once
/// if it lost it, not at all if it was drawn again (its health must not flicker at every term).
#[test]
fn a_writer_reports_the_change_of_term_once_and_only_if_it_lost_the_role() {
    let keys = keys(4);
    let term_ms = config(&keys).writer_term_ms;
    let mut kept_or_lost = [0, 0];
    for term in 1..40u64 {
        let mut node = observing_node(&keys, 3);
        let start = T0 + term * term_ms;
        if until_writer(&mut node, &keys, start).0 != start {
            continue;
        }
        // Its heartbeats to the first one in the next term, then that read's answer.
        let mut actions = Vec::new();
        let beat = loop {
            let beat = until_timer(&mut node, Timer::Heartbeat);
            actions.extend(step(&mut node, beat, Event::TimerDue));
            if beat >= start + term_ms {
                break beat;
            }
        };
        let heartbeats = rows(&keys, 0);
        let stored = vec![];
        actions.extend(step(
            &mut node,
            beat,
            Event::DatabaseRead { heartbeats, stored },
        ));
        let reports: Vec<&Action> = actions
            .iter()
            .filter(|a| matches!(a, Action::Report(Report::WriterChanged { .. })))
            .collect();
        let lost = Action::Report(Report::WriterChanged { writer: false });
        match node.is_writer() {
            true => assert_eq!(reports, Vec::<&Action>::new(), "term {term}"),
            false => assert_eq!(reports, [&lost], "term {term}"),
        }
        kept_or_lost[usize::from(!node.is_writer())] += 1;
    }
    assert!(kept_or_lost.iter().all(|&n| n > 0), "{kept_or_lost:?}");
}

#[test]
fn the_writer_writes_each_ready_price_once_and_retries_failures() {
    let keys = keys(4);
    let (mut node, row, write_at) = writer_with_a_ready_price(&keys);
    let (b, ready) = (row.message.body, row.message.clone());
    assert_eq!(writes(step(&mut node, write_at - 1, Event::TimerDue)), []);
    assert_eq!(
        writes(step(&mut node, write_at, Event::TimerDue)),
        [Action::Write(Box::new(row.clone()))]
    );
    // Failure: retried after the backoff, not before.
    step(
        &mut node,
        write_at + 10,
        Event::WriteFinished {
            id: b.id,
            outcome: WriteOutcome::Failed,
        },
    );
    keep_lease(&mut node, &keys, [write_at + 11].into_iter());
    assert_eq!(
        writes(step(&mut node, write_at + 1_009, Event::TimerDue)),
        []
    );
    assert_eq!(
        writes(step(&mut node, write_at + 1_010, Event::TimerDue)),
        [Action::Write(Box::new(row))]
    );
    let actions = step(
        &mut node,
        write_at + 1_020,
        Event::WriteFinished {
            id: b.id,
            outcome: WriteOutcome::Inserted,
        },
    );
    assert!(matches!(
        actions[..],
        [Action::Report(Report::Stored {
            outcome: WriteOutcome::Inserted,
            signers: 3,
            ..
        })]
    ));
    // A late copy is recognised as stored.
    assert_eq!(
        step(&mut node, write_at + 2_000, gossip(ready.encode())),
        [verdict(Verdict::Ignore(Ignored::AlreadyStored))]
    );
    assert_eq!((node.counters().writes, node.counters().inserted), (2, 1));
}

#[test]
fn backups_write_a_ready_price_not_seen_stored_one_step_apart() {
    let keys = keys(4);
    // In each term keys[3] has some place in the order; find when it writes a ready price nobody
    // stored: the writer when due, the first backup a step later, the second two steps later.
    let mut delays = std::collections::BTreeSet::new();
    for term in 0..12u64 {
        let mut node = observing_node(&keys, 3);
        // From a term's start: the order is the term's, and the last backup's turn falls within it.
        let now = T0 + (term + 1) * 60_000;
        keep_lease(&mut node, &keys, [now].into_iter());
        let ready = ready_out_of_band(&node, &keys, now);
        step(&mut node, now, gossip(ready.encode()));
        let due = now + node.config().write_delay_ms;
        for t in (now..due + 40_000).step_by(1_000) {
            if t % 5_000 == 0 {
                keep_lease(&mut node, &keys, [t].into_iter());
            }
            if !writes(step(&mut node, t, Event::TimerDue)).is_empty() {
                delays.insert(t - due);
                break;
            }
        }
    }
    let step_ms = config(&keys).backup_step_ms;
    assert_eq!(
        delays.into_iter().collect::<Vec<_>>(),
        [0, step_ms, 2 * step_ms],
        "the writer, then each backup a step later; the last of the 4 never writes"
    );
}

/// A node outside the order of writers keeps only a ready price's expiry: in a large network that
/// is nearly every node for every price, and a write timer there would fire only to do nothing.
/// Once the node takes a place it writes the price when due all the same.
#[test]
fn only_a_node_in_the_order_of_writers_sets_write_timers() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 3);
    // A term in which keys[3] writes; the price arrives while its lease is lost.
    let (now, _) = until_writer(&mut node, &keys, READY);
    step(&mut node, now, Event::DatabaseUnreachable);
    let ready = ready_out_of_band(&node, &keys, now);
    let before = node.footprint().timers;
    step(&mut node, now, gossip(ready.encode()));
    assert_eq!(node.footprint().timers - before, 1, "the expiry, no write");
    // The lease comes back within the term, before the price is due.
    let due = now + node.config().write_delay_ms;
    keep_lease(&mut node, &keys, (now + 5_000..due).step_by(5_000));
    assert!(node.is_writer());
    assert_eq!(writes(step(&mut node, due - 1, Event::TimerDue)), []);
    let row = PriceRow {
        message: ready,
        origin: keys[0].address(),
        last_signature_at_ms: now,
        writer: keys[3].address(),
    };
    assert_eq!(
        writes(step(&mut node, due, Event::TimerDue)),
        [Action::Write(Box::new(row))]
    );
}

#[test]
fn a_write_the_database_never_answers_is_retried() {
    let keys = keys(4);
    let (mut node, row, write_at) = writer_with_a_ready_price(&keys);
    assert_eq!(
        writes(step(&mut node, write_at, Event::TimerDue)),
        [Action::Write(Box::new(row.clone()))]
    );
    // No answer ever comes. Twice the database timeout later the write is presumed failed, and
    // retried after the first backoff.
    let unanswered = write_at + 2 * node.config().database_timeout_ms;
    keep_lease(&mut node, &keys, (write_at..unanswered).step_by(5_000));
    assert_eq!(writes(step(&mut node, unanswered - 1, Event::TimerDue)), []);
    assert_eq!(writes(step(&mut node, unanswered, Event::TimerDue)), []);
    assert_eq!(
        writes(step(&mut node, unanswered + 1_000, Event::TimerDue)),
        [Action::Write(Box::new(row))]
    );
    assert_eq!(node.counters().write_failures, 1);
}

#[test]
fn stale_heartbeats_and_an_unreachable_database_never_make_a_writer() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 0);
    let me = keys[0].address();
    for term in 0..20u64 {
        let now = READY + term * 60_000;
        // Only this node's row is there, but it is stale: no writer at all.
        let heartbeats = vec![HeartbeatRow {
            node: me,
            age_ms: 15_001,
        }];
        step(
            &mut node,
            now,
            Event::DatabaseRead {
                heartbeats,
                stored: vec![],
            },
        );
        assert!(!node.is_writer());
        step(
            &mut node,
            now,
            Event::DatabaseRead {
                heartbeats: vec![HeartbeatRow {
                    node: me,
                    age_ms: 0,
                }],
                stored: vec![],
            },
        );
        assert!(node.is_writer());
        assert_eq!(
            step(&mut node, now, Event::DatabaseUnreachable),
            [Action::Report(Report::WriterChanged { writer: false })]
        );
        assert!(!node.is_writer());
    }
    // Without new reads, the lease runs out by itself.
    step(
        &mut node,
        READY,
        Event::DatabaseRead {
            heartbeats: vec![HeartbeatRow {
                node: me,
                age_ms: 0,
            }],
            stored: vec![],
        },
    );
    let later = READY + 20 * 60_000 + 15_000;
    node.handle(later, Event::TimerDue);
    assert!(!node.is_writer());
}

#[test]
fn time_never_runs_backwards() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 1);
    let b = body(&keys[0], READY + 100_000, PRICE);
    step(&mut node, READY + 100_000, Event::PeersChanged { count: 0 });
    // An event stamped earlier is handled at the latest time seen: the reference from READY is stale.
    let net = node.network_id();
    let actions = step(
        &mut node,
        READY,
        gossip(signed(net, b, &[&keys[0]]).encode()),
    );
    assert_eq!(actions, [verdict(Verdict::Accept), Action::FetchPrices]);
}

#[test]
fn config_errors_are_typed() {
    let keys = keys(4);
    let outsider = Keypair::from_entropy([5; 32]).address();
    assert_eq!(
        Node::new(config(&keys), outsider, 1, T0).err(),
        Some(ConfigError::NotAllowlisted(outsider))
    );
    let mut bad = config(&keys);
    bad.quorum = 5;
    assert_eq!(
        Node::new(bad, keys[0].address(), 1, T0).err(),
        Some(ConfigError::AllowlistTooSmall {
            signers: 4,
            quorum: 5
        })
    );
}

fn broadcasts(actions: &[Action]) -> Vec<Broadcast> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast { why, .. } => Some(*why),
            _ => None,
        })
        .collect()
}

/// keys[1] co-signs a price from keys[0] and completes a quorum with keys[2]'s signature.
fn signer_of_a_ready_price(keys: &[Keypair]) -> (Node, PriceBody) {
    let mut node = observing_node(keys, 1);
    let net = node.network_id();
    let b = body(&keys[0], READY, PRICE);
    step(
        &mut node,
        READY,
        gossip(signed(net, b, &[&keys[0]]).encode()),
    );
    let signature = keys[1].sign(&b.digest(&net));
    step(
        &mut node,
        READY,
        Event::Signed {
            id: b.id,
            signature,
        },
    );
    let actions = step(
        &mut node,
        READY,
        gossip(signed(net, b, &[&keys[0], &keys[2]]).encode()),
    );
    assert_eq!(broadcasts(&actions), [Broadcast::Merge]);
    (node, b)
}

#[test]
fn a_signer_retransmits_a_ready_price_until_it_is_seen_stored() {
    let keys = keys(4);
    let (mut node, b) = signer_of_a_ready_price(&keys);
    // Due at +30 s; first retransmission 60 s later, then after 120 s.
    let first = READY + 30_000 + 60_000;
    assert_eq!(broadcasts(&step(&mut node, first - 1, Event::TimerDue)), []);
    assert_eq!(
        broadcasts(&step(&mut node, first, Event::TimerDue)),
        [Broadcast::Retransmit]
    );
    assert_eq!(
        broadcasts(&step(&mut node, first + 119_999, Event::TimerDue)),
        []
    );
    assert_eq!(
        broadcasts(&step(&mut node, first + 120_000, Event::TimerDue)),
        [Broadcast::Retransmit]
    );
    // The database shows it stored: forgotten, never sent again.
    step(
        &mut node,
        first + 120_001,
        Event::DatabaseRead {
            heartbeats: vec![],
            stored: vec![b.id],
        },
    );
    assert_eq!(node.footprint().prices, 0);
    assert_eq!(
        broadcasts(&step(&mut node, first + 3_600_000, Event::TimerDue)),
        []
    );
    assert_eq!(node.counters().retransmits, 2);
}

/// gossipsub refuses to publish bytes its cache still holds, and a node that received nothing
/// since its last send holds them past the cache time; and bytes a peer could foresee, it could
/// send first. So each send is new bytes, by a nonce from the node's seed.
#[test]
fn each_retransmission_of_the_same_signatures_has_its_own_gossip_id() {
    let keys = keys(4);
    let (mut node, b) = signer_of_a_ready_price(&keys);
    let first = READY + 30_000 + 60_000;
    let mut sent = Vec::new();
    for now in [first, first + 120_000, first + 360_000] {
        for action in step(&mut node, now, Event::TimerDue) {
            if let Action::Broadcast { bytes, .. } = action {
                sent.push(bytes);
            }
        }
    }
    let messages: Vec<Message> = sent.iter().map(|b| Message::decode(b).unwrap()).collect();
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m.body == b
        && m.signatures() == messages[0].signatures()
        && m.signatures().len() == 3));
    let ids: std::collections::BTreeSet<_> = sent.iter().map(|b| message_id(b)).collect();
    assert_eq!(ids.len(), 3);
}

#[test]
fn a_signer_resends_a_price_still_short_of_quorum_while_it_may_be_cosigned() {
    let keys = keys(4);
    let mut node = observing_node(&keys, 1);
    let net = node.network_id();
    let b = body(&keys[0], READY, PRICE);
    step(
        &mut node,
        READY,
        gossip(signed(net, b, &[&keys[0]]).encode()),
    );
    let signature = keys[1].sign(&b.digest(&net));
    let signed = step(
        &mut node,
        READY,
        Event::Signed {
            id: b.id,
            signature,
        },
    );
    assert_eq!(broadcasts(&signed), [Broadcast::CoSign]);
    // The co-signature may have reached nobody who holds the others' pieces: what this node holds
    // goes out again every retransmit_after while a copy can still be co-signed where it arrives
    // (not at max age itself, when it could not).
    let mut sent = Vec::new();
    for now in (READY..READY + 300_000).step_by(1_000) {
        let actions = step(&mut node, now, Event::TimerDue);
        sent.extend(
            broadcasts(&actions)
                .into_iter()
                .map(|why| (now - READY, why)),
        );
    }
    assert_eq!(
        sent,
        [
            (60_000, Broadcast::Retransmit),
            (120_000, Broadcast::Retransmit)
        ]
    );
}

#[test]
fn copies_of_a_price_overdue_for_storing_are_passed_on() {
    let keys = keys(4);
    let (mut node, b) = signer_of_a_ready_price(&keys);
    let net = node.network_id();
    let copy = || gossip(signed(net, b, &[&keys[0], &keys[1], &keys[2]]).encode());
    // Until its signers retransmit it, a copy is nothing new; from then on it is a retransmission
    // on its way to whoever lacks the price, and gossip forwards only what is accepted.
    let retransmitting = READY + 30_000 + 60_000;
    assert_eq!(
        step(&mut node, retransmitting - 1, copy())[0],
        verdict(Verdict::Ignore(Ignored::Duplicate))
    );
    assert_eq!(
        step(&mut node, retransmitting, copy())[0],
        verdict(Verdict::Accept)
    );
    // Once seen stored, never again.
    step(
        &mut node,
        retransmitting + 1,
        Event::DatabaseRead {
            heartbeats: vec![],
            stored: vec![b.id],
        },
    );
    assert_eq!(
        step(&mut node, retransmitting + 2, copy())[0],
        verdict(Verdict::Ignore(Ignored::AlreadyStored))
    );
}

/// The nonce is signed by no one: a relay could send one overdue copy under any number of gossip
/// ids, each flooded anew. A node passes on one copy without news per price every half
/// retransmission period, and only one that carries a quorum.
#[test]
fn an_overdue_copy_without_news_is_passed_on_once_a_period_and_only_with_a_quorum() {
    let keys = keys(4);
    let (mut node, b) = signer_of_a_ready_price(&keys);
    let net = node.network_id();
    let half_period = config(&keys).retransmit_after_ms / 2;
    let copy = |signers: &[&Keypair], nonce: u64| {
        let mut message = signed(net, b, signers);
        message.nonce = nonce;
        gossip(message.encode())
    };
    let quorum = [&keys[0], &keys[1], &keys[2]];
    let retransmitting = READY + 30_000 + 60_000;
    let verdict_at = |node: &mut Node, now, event| step(node, now, event)[0].clone();
    assert_eq!(
        verdict_at(&mut node, retransmitting, copy(&quorum[..2], 1)),
        verdict(Verdict::Ignore(Ignored::Duplicate)),
        "short of quorum"
    );
    assert_eq!(
        verdict_at(&mut node, retransmitting, copy(&quorum, 2)),
        verdict(Verdict::Accept)
    );
    for nonce in 3..10 {
        assert_eq!(
            verdict_at(
                &mut node,
                retransmitting + half_period - 1,
                copy(&quorum, nonce)
            ),
            verdict(Verdict::Ignore(Ignored::Duplicate))
        );
    }
    assert_eq!(
        verdict_at(&mut node, retransmitting + half_period, copy(&quorum, 10)),
        verdict(Verdict::Accept)
    );
}

#[test]
fn retransmissions_are_bounded_and_a_ready_price_expires_after_its_ttl() {
    let keys = keys(4);
    let (mut node, b) = signer_of_a_ready_price(&keys);
    let mut sent = 0;
    let mut now = READY;
    while now + 10_000 < b.observed_at_ms + 3_600_000 {
        now += 10_000;
        sent += broadcasts(&step(&mut node, now, Event::TimerDue)).len();
    }
    assert_eq!(sent, 5, "max_retransmits");
    assert_eq!(node.footprint().prices, 1, "kept until its TTL");
    let actions = step(&mut node, b.observed_at_ms + 3_600_000, Event::TimerDue);
    assert!(actions.contains(&Action::Report(Report::Expired {
        id: b.id,
        reached_quorum: true
    })));
    assert_eq!(
        (node.footprint().prices, node.counters().expired_unstored),
        (0, 1)
    );
}

#[test]
fn an_open_network_accepts_any_valid_signer_and_learns_its_committee() {
    let keys = keys(6);
    let mut config = config(&keys[..1]);
    config.signers = Signers::Open;
    config.committee = Some(1);
    config.quorum = 2;
    let mut node = Node::new(config, keys[0].address(), 42, T0).unwrap();
    step(
        &mut node,
        T0,
        Event::PricesFetched {
            answered: vec![Price(PRICE)],
        },
    );
    let net = node.network_id();
    // Strangers' prices are accepted; co-signing needs a turn in the committee, which grows with
    // the signers this node has verified.
    let mut cosigned = 0;
    for (i, origin) in keys[1..].iter().enumerate() {
        let b = body(origin, T0 + i as u64, PRICE);
        let actions = step(
            &mut node,
            T0 + i as u64,
            gossip(signed(net, b, &[origin]).encode()),
        );
        assert_eq!(actions[0], verdict(Verdict::Accept));
        cosigned += actions
            .iter()
            .filter(|a| matches!(a, Action::Sign { .. }))
            .count();
    }
    assert!(
        cosigned >= 1,
        "in a 2-member ring with a committee of 1, this node co-signs"
    );
    // A forged signature is still refused, allowlist or not.
    let b = body(&keys[5], T0 + 100, PRICE);
    let mut forged = signed(net, b, &[&keys[5]]).encode();
    forged[91 + 20] ^= 1;
    assert_eq!(
        step(&mut node, T0 + 100, gossip(forged)),
        [verdict(Verdict::Reject(Misbehaviour::BadSignature))]
    );
}

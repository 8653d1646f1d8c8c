//! `cargo bench`: signature primitives beside libsecp256k1 on the same machine, the wire format, and
//! one node's throughput on quorums, duplicates and bad input.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::{T0, body, config, feed, gossip, keys, signed};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use k256::ecdsa::{Signature as K256Signature, VerifyingKey, signature::hazmat::PrehashVerifier};
use protocol::{Keypair, Message, Node};

fn primitives(c: &mut Criterion) {
    let keys = keys(16);
    let net = config(&keys).network_id();
    let body = body(&keys[0], 0);
    let digest = body.digest(&net);
    let signature = keys[0].sign(&digest);

    let mut group = c.benchmark_group("primitives");
    group.bench_function("digest of the signed bytes (keccak256, 105 B)", |b| {
        b.iter(|| black_box(&body).digest(black_box(&net)))
    });
    group.bench_function("sign (k256)", |b| {
        b.iter(|| keys[0].sign(black_box(&digest)))
    });
    let parsed = VerifyingKey::from_sec1_bytes(&keys[0].public_key_sec1()).expect("valid key");
    let raw = K256Signature::from_slice(&signature.0[..64]).expect("valid signature");
    group.bench_function("verify, key pre-parsed (k256)", |b| {
        b.iter(|| {
            parsed
                .verify_prehash(black_box(&digest), black_box(&raw))
                .is_ok()
        })
    });
    group.bench_function("recover signer (k256, what a node does)", |b| {
        b.iter(|| black_box(&signature).is_by(black_box(&digest), keys[0].address()))
    });
    for n in [3usize, 16] {
        let signers: Vec<&Keypair> = keys.iter().take(n).collect();
        let message = signed(net, body, &signers);
        let bytes = message.encode();
        group.bench_function(format!("encode, {n} signatures"), |b| {
            b.iter(|| black_box(&message).encode())
        });
        group.bench_function(format!("decode, {n} signatures"), |b| {
            b.iter(|| Message::decode(black_box(&bytes)))
        });
    }
    group.finish();

    // The yardstick: the C library on the same digest.
    use secp256k1::ecdsa::{self, RecoverableSignature};
    let secret =
        secp256k1::SecretKey::from_secret_bytes(keys[0].secret_bytes()).expect("valid key");
    let public = secp256k1::PublicKey::from_secret_key(&secret);
    let message = secp256k1::Message::from_digest(digest);
    let c_signature = ecdsa::sign(message, &secret);
    let c_recoverable = RecoverableSignature::sign_ecdsa_recoverable(message, &secret);
    let mut group = c.benchmark_group("libsecp256k1");
    group.bench_function("sign", |b| {
        b.iter(|| ecdsa::sign(black_box(message), &secret))
    });
    group.bench_function("verify, key pre-parsed", |b| {
        b.iter(|| ecdsa::verify(&c_signature, black_box(message), &public).is_ok())
    });
    group.bench_function("recover signer", |b| {
        b.iter(|| c_recoverable.recover_ecdsa(black_box(message)))
    });
    group.finish();
}

/// Runs `iters` messages through nodes made by `fresh`, `per_node` at most per node so that memory
/// stays at a production-like size; only `handle` and draining the actions are timed.
fn through_nodes(iters: u64, messages: &[Vec<u8>], now: u64, fresh: &dyn Fn() -> Node) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0u64;
    while done < iters {
        let mut node = fresh();
        let batch = (iters - done).min(messages.len() as u64) as usize;
        let inputs: Vec<Vec<u8>> = messages[..batch].to_vec();
        let start = Instant::now();
        for bytes in inputs {
            black_box(feed(&mut node, now, gossip(bytes)));
        }
        total += start.elapsed();
        done += batch as u64;
    }
    total
}

fn node(c: &mut Criterion) {
    let keys = keys(4);
    let config = config(&keys);
    let net = config.network_id();
    let me = keys[3].address();
    const DISTINCT: u64 = 2_000;
    let now = T0 + DISTINCT;
    let fresh = || Node::new(config.clone(), me, 1, now).expect("valid config");
    let quorums: Vec<Vec<u8>> = (0..DISTINCT)
        .map(|i| signed(net, body(&keys[0], i), &[&keys[0], &keys[1], &keys[2]]).encode())
        .collect();

    let mut group = c.benchmark_group("node");
    group.throughput(Throughput::Elements(1));
    group.bench_function("new price arriving with 3 signatures, to ready", |b| {
        b.iter_custom(|iters| through_nodes(iters, &quorums, now, &fresh))
    });

    let mut holder = fresh();
    feed(&mut holder, now, gossip(quorums[0].clone()));
    group.bench_function("duplicate copy of a held price", |b| {
        b.iter_batched(
            || gossip(quorums[0].clone()),
            |event| feed(&mut holder, now, event),
            BatchSize::SmallInput,
        )
    });

    let junk: Vec<u8> = (0..346u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut target = fresh();
    group.bench_function("junk bytes, rejected", |b| {
        b.iter_batched(
            || gossip(junk.clone()),
            |event| feed(&mut target, now, event),
            BatchSize::SmallInput,
        )
    });
    let forged: Vec<Vec<u8>> = quorums
        .iter()
        .map(|bytes| {
            let mut bytes = bytes.clone();
            let origin_entry = Message::decode(&bytes)
                .expect("valid")
                .signatures()
                .keys()
                .position(|&a| a == keys[0].address())
                .expect("origin signed");
            bytes[91 + 85 * origin_entry + 20] ^= 1;
            bytes
        })
        .collect();
    group.bench_function("forged origin signature, rejected", |b| {
        b.iter_custom(|iters| through_nodes(iters, &forged, now, &fresh))
    });
    group.finish();
}

criterion_group!(benches, primitives, node);
criterion_main!(benches);

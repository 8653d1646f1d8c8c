//! The committed test vector pins the signed bytes, digest and signature: a change to what is
//! signed breaks this test, and any Ethereum tool can check the file on its own.

mod common;

use protocol::{Address, Keypair, Message, Price, PriceBody, PriceId, Signature};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Vector {
    private_key: String,
    address: String,
    network_id: String,
    id: String,
    feed: String,
    price: u128,
    decimals: u8,
    observed_at_ms: u64,
    signed_bytes: String,
    digest: String,
    signature: String,
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    hex::decode(text.strip_prefix("0x").unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/signed_price.json");

fn expected() -> Vector {
    let keys = common::keys(3);
    let config = common::config(&keys);
    let origin = &keys[0];
    let body = PriceBody {
        id: PriceId::mint(1_767_225_600_000, 1, origin.address()),
        feed: common::feed(),
        price: Price::parse_decimal("3012.4517", 8).unwrap(),
        decimals: 8,
        observed_at_ms: 1_767_225_600_000,
    };
    let network_id = config.network_id();
    let digest = body.digest(&network_id);
    Vector {
        private_key: hex0x(&origin.secret_bytes()),
        address: origin.address().to_string(),
        network_id: hex0x(&network_id),
        id: format!("0x{:032x}", body.id.0),
        feed: body.feed.to_string(),
        price: body.price.0,
        decimals: body.decimals,
        observed_at_ms: body.observed_at_ms,
        signed_bytes: hex0x(&body.signed_bytes(&network_id)),
        digest: hex0x(&digest),
        signature: hex0x(&origin.sign(&digest).0),
    }
}

#[test]
fn committed_vector_matches_the_code() {
    if std::env::var_os("WRITE_VECTOR").is_some() {
        std::fs::write(
            PATH,
            serde_json::to_string_pretty(&expected()).unwrap() + "\n",
        )
        .unwrap();
    }
    let file: Vector = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert_eq!(file, expected());

    // And from the file's own fields, independently of how `expected` built them:
    let key = Keypair::from_secret(&unhex(&file.private_key)).unwrap();
    assert_eq!(key.address(), Address::parse(&file.address).unwrap());
    let body = PriceBody {
        id: PriceId(u128::from_str_radix(&file.id[2..], 16).unwrap()),
        feed: protocol::Feed::new(&file.feed).unwrap(),
        price: Price(file.price),
        decimals: file.decimals,
        observed_at_ms: file.observed_at_ms,
    };
    let network_id = unhex::<32>(&file.network_id);
    let signed_bytes = hex::decode(&file.signed_bytes[2..]).unwrap();
    assert_eq!(
        body.signed_bytes(&network_id).as_slice(),
        signed_bytes.as_slice()
    );
    assert_eq!(
        protocol::keccak256(&signed_bytes),
        unhex::<32>(&file.digest)
    );
    let signature = Signature(unhex(&file.signature));
    assert!(signature.is_by(&unhex(&file.digest), key.address()));
    assert!(body.id.is_from(key.address()));
}

#[test]
fn encoding_of_the_vector_message() {
    let file: Vector = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let keys = common::keys(3);
    let network_id = unhex::<32>(&file.network_id);
    let body = PriceBody {
        id: PriceId(u128::from_str_radix(&file.id[2..], 16).unwrap()),
        feed: common::feed(),
        price: Price(file.price),
        decimals: 8,
        observed_at_ms: file.observed_at_ms,
    };
    let message = common::signed(network_id, body, &[&keys[0], &keys[1], &keys[2]]);
    let bytes = message.encode();
    assert_eq!(Message::decode(&bytes), Ok(message));
    // One line per field, so a change in the layout shows where.
    let fields = [
        ("version", 0..1),
        ("network_id", 1..33),
        ("id", 33..49),
        ("feed", 49..65),
        ("price", 65..81),
        ("decimals", 81..82),
        ("observed_at_ms", 82..90),
        ("signature_count", 90..91),
    ];
    let mut lines: Vec<String> = fields
        .into_iter()
        .map(|(name, range)| format!("{name:>16}: {}", hex::encode(&bytes[range])))
        .collect();
    let (entries, nonce) = bytes[91..].split_at(bytes.len() - 91 - 8);
    for (i, entry) in entries.chunks(85).enumerate() {
        lines.push(format!(
            "{:>16}: {}",
            format!("signer {i}"),
            hex::encode(&entry[..20])
        ));
        lines.push(format!(
            "{:>16}: {}",
            format!("signature {i}"),
            hex::encode(&entry[20..])
        ));
    }
    lines.push(format!("{:>16}: {}", "nonce", hex::encode(nonce)));
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn audit_accepts_the_vector_quorum_and_names_each_flaw() {
    let keys = common::keys(4);
    let config = common::config(&keys[..3]);
    let net = config.network_id();
    let body = common::body(&keys[0], 1_767_225_600_000, 301_245_170_000);
    let digest = body.digest(&net);
    let sig = |k: &Keypair| (k.address(), k.sign(&digest));
    let good = [sig(&keys[0]), sig(&keys[1]), sig(&keys[2])];
    let origin = keys[0].address();
    assert_eq!(protocol::audit(&config, &net, &body, origin, &good), Ok(()));

    let mut changed = body;
    changed.price = Price(body.price.0 + 1);
    assert_eq!(
        protocol::audit(&config, &net, &changed, origin, &good),
        Err(protocol::Flaw::BadSignature(good[0].0))
    );
    let twice = [good[0], good[1], good[1]];
    assert_eq!(
        protocol::audit(&config, &net, &body, origin, &twice),
        Err(protocol::Flaw::DuplicateSigner(good[1].0))
    );
    let foreign = [good[0], good[1], sig(&keys[3])];
    assert_eq!(
        protocol::audit(&config, &net, &body, origin, &foreign),
        Err(protocol::Flaw::UnknownSigner(keys[3].address()))
    );
    assert_eq!(
        protocol::audit(&config, &net, &body, origin, &good[..2]),
        Err(protocol::Flaw::BelowQuorum {
            signers: 2,
            quorum: 3
        })
    );
    assert_eq!(
        protocol::audit(&config, &net, &body, keys[1].address(), &good),
        Err(protocol::Flaw::BadId)
    );
    assert_eq!(
        protocol::audit(&config, &[0; 32], &body, origin, &good),
        Err(protocol::Flaw::WrongNetwork)
    );
    let not_origin = [good[1], good[2], good[1]];
    assert!(protocol::audit(&config, &net, &body, origin, &not_origin[..2]).is_err());
}

/// The committed seed corpus of the `decode` fuzz target: valid messages (from the test vector's
/// keys), truncations and boundary sizes. Files named `valid-*` must decode; all others must not.
/// `WRITE_CORPUS=1` rewrites it after a change of the wire format.
#[test]
fn fuzz_seed_corpus_matches_the_wire_format() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode");
    if std::env::var_os("WRITE_CORPUS").is_some() {
        let keys = common::keys(16);
        let net = common::config(&keys[..3]).network_id();
        let body = common::body(&keys[0], 1_767_225_600_000, 301_245_170_000);
        let all: Vec<&Keypair> = keys.iter().collect();
        let three = common::signed(net, body, &all[..3]).encode();
        let sixteen = common::signed(net, body, &all).encode();
        let files: [(&str, Vec<u8>); 9] = [
            ("valid-3-signatures", three.clone()),
            (
                "valid-1-signature",
                common::signed(net, body, &all[..1]).encode(),
            ),
            ("valid-16-signatures-max-size", sixteen.clone()),
            ("empty", vec![]),
            ("header-only", three[..91].to_vec()),
            ("truncated-signature", three[..three.len() - 9].to_vec()),
            ("trailing-byte", [three.as_slice(), &[0]].concat()),
            ("over-max-size", [sixteen.as_slice(), &[0]].concat()),
            ("unknown-version", [&[1u8][..], &three[1..]].concat()),
        ];
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            Message::decode(&bytes).is_ok(),
            name.starts_with("valid-"),
            "{name}"
        );
        seen += 1;
    }
    assert!(seen >= 9, "seed corpus is missing from {}", dir.display());
}

//! An audit of the stored rows that shares no code with the protocol crate: the signed bytes are
//! rebuilt from the columns as PROTOCOL.md lays them out, hashed with sha3's keccak and every
//! signature recovered with libsecp256k1.

use std::collections::{BTreeMap, BTreeSet};

use sha3::{Digest, Keccak256};

/// A stored row, as the columns say.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub network_id: Vec<u8>,
    pub feed: String,
    pub price_units: String,
    pub decimals: i16,
    pub observed_at_ms: i64,
    pub origin: String,
    pub signatures: serde_json::Value,
    pub inserted_at_ms: u64,
}

/// Every row of the prices table (duplicates included, should the table allow them).
pub async fn rows(client: &tokio_postgres::Client) -> Vec<Row> {
    let query = "SELECT id::text, network_id, feed, price_units::text, decimals, observed_at_ms, \
                 origin, signatures::text, (extract(epoch FROM inserted_at) * 1000)::bigint \
                 FROM prices ORDER BY inserted_at";
    client
        .query(query, &[])
        .await
        .expect("read the prices")
        .iter()
        .map(|r| Row {
            id: r.get(0),
            network_id: r.get(1),
            feed: r.get(2),
            price_units: r.get(3),
            decimals: r.get(4),
            observed_at_ms: r.get(5),
            origin: r.get(6),
            signatures: serde_json::from_str(r.get(7)).expect("signatures are JSON"),
            inserted_at_ms: r.get::<_, i64>(8) as u64,
        })
        .collect()
}

/// PROTOCOL.md's network id of an allowlisted deployment.
pub fn network_id(network: &str, quorum: u32, signers: &[String]) -> Vec<u8> {
    let mut bytes = b"price-oracle:config:v1\n".to_vec();
    bytes.push(network.len() as u8);
    bytes.extend_from_slice(network.as_bytes());
    bytes.extend_from_slice(&padded16(b"ETH/USD"));
    bytes.push(8);
    bytes.extend_from_slice(&quorum.to_be_bytes());
    bytes.push(1);
    let sorted: BTreeSet<Vec<u8>> = signers.iter().map(|s| unhex(s)).collect();
    bytes.extend_from_slice(&(sorted.len() as u32).to_be_bytes());
    sorted.iter().for_each(|a| bytes.extend_from_slice(a));
    Keccak256::digest(&bytes).to_vec()
}

/// Everything wrong with the rows: ids stored twice, rows for another network, and rows without
/// `quorum` distinct allowlisted signers whose signatures recover over the rebuilt bytes.
pub fn problems(rows: &[Row], network_id: &[u8], signers: &[String], quorum: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for row in rows {
        *seen.entry(row.id.as_str()).or_insert(0) += 1;
    }
    for (id, count) in seen.iter().filter(|(_, n)| **n > 1) {
        problems.push(format!("{id} is stored {count} times"));
    }
    for row in rows {
        if let Err(why) = check_row(row, network_id, signers, quorum) {
            problems.push(format!("{}: {why}", row.id));
        }
    }
    problems
}

fn check_row(
    row: &Row,
    network_id: &[u8],
    signers: &[String],
    quorum: usize,
) -> Result<(), String> {
    if row.network_id != network_id {
        return Err("another network id".into());
    }
    let id = unhex(&row.id.replace('-', ""));
    // The id's last 62 bits are the first 62 of the origin's address.
    let origin = unhex(&row.origin);
    let id_tail = u64::from_be_bytes(id[8..16].try_into().unwrap()) & (u64::MAX >> 2);
    let origin_head = u64::from_be_bytes(origin[..8].try_into().unwrap()) >> 2;
    if id_tail != origin_head {
        return Err(format!("the id does not carry its origin {}", row.origin));
    }
    let units: u128 = row.price_units.parse().map_err(|_| "price_units")?;
    let mut signed = b"price-oracle:v1\n".to_vec();
    signed.extend_from_slice(&row.network_id);
    signed.extend_from_slice(&id);
    signed.extend_from_slice(&padded16(row.feed.as_bytes()));
    signed.extend_from_slice(&units.to_be_bytes());
    signed.push(row.decimals as u8);
    signed.extend_from_slice(&(row.observed_at_ms as u64).to_be_bytes());
    assert_eq!(signed.len(), 105);
    let digest: [u8; 32] = Keccak256::digest(&signed).into();
    let message = secp256k1::Message::from_digest(digest);
    let mut distinct = BTreeSet::new();
    for entry in row
        .signatures
        .as_array()
        .ok_or("signatures is not an array")?
    {
        let signer = entry["signer"]
            .as_str()
            .ok_or("a signature without signer")?;
        let bytes = unhex(
            entry["signature"]
                .as_str()
                .ok_or("a signer without signature")?,
        );
        let recovery = i32::from(bytes[64]) - 27;
        let recovered = secp256k1::ecdsa::RecoveryId::try_from(recovery)
            .and_then(|r| secp256k1::ecdsa::RecoverableSignature::from_compact(&bytes[..64], r))
            .and_then(|s| s.recover_ecdsa(message))
            .map_err(|e| format!("{signer}'s signature does not recover: {e}"))?;
        let hash: [u8; 32] = Keccak256::digest(&recovered.serialize_uncompressed()[1..]).into();
        let address = format!("0x{}", hex::encode(&hash[12..]));
        if address != signer {
            return Err(format!("{signer}'s signature recovers {address}"));
        }
        if !signers.contains(&address) {
            return Err(format!("{address} is not on the signer list"));
        }
        distinct.insert(address);
    }
    if distinct.len() < quorum {
        return Err(format!(
            "{} distinct signers, fewer than {quorum}",
            distinct.len()
        ));
    }
    Ok(())
}

fn padded16(text: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..text.len()].copy_from_slice(text);
    out
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text.trim_start_matches("0x")).expect("hex")
}

//! A price as its columns, in the text forms both databases store: the one mapping between
//! `PriceRow` and a row.

use protocol::{
    Address, Feed, Message, Price, PriceBody, PriceId, PriceRow, Signature, Signatures,
};
use serde::{Deserialize, Serialize};

use super::{Row, StoreError};

/// The columns of a `prices` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Canonical UUID text; its text order is the ids' numeric order.
    pub id: String,
    pub network_id: Vec<u8>,
    pub feed: String,
    /// The fixed-point units as a decimal string: exact, whatever the database's number types.
    pub price_units: String,
    pub decimals: i16,
    pub observed_at_ms: i64,
    pub origin: String,
    /// `[{"signer": "0x…", "signature": "0x…"}, …]`, signers ascending.
    pub signatures: String,
    pub signer_count: i16,
    pub quorum: i16,
    pub last_signed_at_ms: i64,
    pub writer: String,
    /// Set by the database; 0 before insertion.
    pub inserted_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct SignatureEntry {
    signer: String,
    signature: String,
}

impl Record {
    pub fn of(price: &PriceRow, quorum: usize) -> Record {
        let body = price.message.body;
        let entries: Vec<SignatureEntry> = price
            .signatures()
            .iter()
            .map(|(signer, signature)| SignatureEntry {
                signer: signer.to_string(),
                signature: format!("0x{}", hex::encode(signature.0)),
            })
            .collect();
        Record {
            id: body.id.to_string(),
            network_id: price.message.network_id.to_vec(),
            feed: body.feed.as_str().to_owned(),
            price_units: body.price.0.to_string(),
            decimals: i16::from(body.decimals),
            observed_at_ms: body.observed_at_ms as i64,
            origin: price.origin.to_string(),
            signatures: serde_json::to_string(&entries).expect("strings serialise"),
            signer_count: entries.len() as i16,
            quorum: quorum as i16,
            last_signed_at_ms: price.last_signature_at_ms as i64,
            writer: price.writer.to_string(),
            inserted_at_ms: 0,
        }
    }

    /// What was signed, as stored: network, body, origin and every (signer, signature) entry in
    /// order, duplicates kept, so that an audit sees the row exactly as it is.
    pub fn signed_parts(&self) -> Result<SignedParts, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt {
            id: self.id.clone(),
            what,
        };
        let id = parse_id(&self.id).ok_or_else(|| corrupt("id is not a UUID".into()))?;
        let network_id: [u8; 32] = self
            .network_id
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("network id is not 32 bytes".into()))?;
        let feed = Feed::new(&self.feed).map_err(|e| corrupt(format!("feed: {e}")))?;
        let price = self
            .price_units
            .parse::<u128>()
            .map_err(|e| corrupt(format!("price units: {e}")))?;
        let address =
            |text: &str| Address::parse(text).map_err(|e| corrupt(format!("address {text}: {e}")));
        let entries: Vec<SignatureEntry> = serde_json::from_str(&self.signatures)
            .map_err(|e| corrupt(format!("signatures: {e}")))?;
        let mut signatures = Vec::with_capacity(entries.len());
        for entry in &entries {
            let bytes = hex::decode(entry.signature.trim_start_matches("0x"))
                .ok()
                .and_then(|b| <[u8; 65]>::try_from(b).ok())
                .ok_or_else(|| corrupt(format!("signature of {}", entry.signer)))?;
            signatures.push((address(&entry.signer)?, Signature(bytes)));
        }
        let body = PriceBody {
            id,
            feed,
            price: Price(price),
            decimals: u8::try_from(self.decimals).map_err(|e| corrupt(format!("decimals: {e}")))?,
            observed_at_ms: self.observed_at_ms as u64,
        };
        Ok(SignedParts {
            network_id,
            body,
            origin: address(&self.origin)?,
            signatures,
        })
    }

    /// The row back as the protocol's types; any column that does not parse is named.
    pub fn into_row(self) -> Result<Row, StoreError> {
        let parts = self.signed_parts()?;
        let corrupt = |what: &str| StoreError::Corrupt {
            id: self.id.clone(),
            what: what.to_owned(),
        };
        let count = parts.signatures.len();
        let signatures: Signatures = parts.signatures.into_iter().collect();
        if signatures.len() != count {
            return Err(corrupt("a signer is listed twice"));
        }
        let message = Message::new(parts.network_id, parts.body, signatures)
            .ok_or_else(|| corrupt("no signatures, or too many"))?;
        let writer = Address::parse(&self.writer).map_err(|_| corrupt("writer address"))?;
        Ok(Row {
            price: PriceRow {
                message,
                origin: parts.origin,
                last_signature_at_ms: self.last_signed_at_ms as u64,
                writer,
            },
            quorum: self.quorum as usize,
            inserted_at_ms: self.inserted_at_ms as u64,
        })
    }
}

/// A stored price's signed content, entries as stored.
#[derive(Debug, Clone)]
pub struct SignedParts {
    pub network_id: [u8; 32],
    pub body: PriceBody,
    pub origin: Address,
    pub signatures: Vec<(Address, Signature)>,
}

/// A canonical UUID text back to the id.
pub fn parse_id(text: &str) -> Option<PriceId> {
    let hex: String = text.chars().filter(|&c| c != '-').collect();
    (hex.len() == 32)
        .then(|| u128::from_str_radix(&hex, 16).ok())
        .flatten()
        .map(PriceId)
}

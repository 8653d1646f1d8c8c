//! The gossip message: a versioned, canonical binary encoding with a size bound. Decoding is total:
//! every byte string yields a message or a typed error, and a decoded message re-encodes to the same
//! bytes (signers strictly ascending, no trailing bytes, one encoding per message).
//!
//! ```text
//! offset  size  field
//! 0       1     version (2)
//! 1       32    network id
//! 33      16    price id (u128, big-endian)
//! 49      16    feed, ASCII, zero-padded
//! 65      16    price units (u128, big-endian)
//! 81      1     decimals
//! 82      8     observed at, unix ms (u64, big-endian)
//! 90      1     signature count n, 1..=16
//! 91      85*n  n × (signer address 20 ‖ signature r‖s‖v 65), signers strictly ascending
//! 91+85n  8     nonce: drawn at random by the sender for each send (u64, not signed)
//! ```

use crate::crypto::{Address, Signature, keccak256};
use crate::price::{Feed, MAX_DECIMALS, Price, PriceBody, PriceId};
use crate::signatures::Signatures;

/// Version 2 added `nonce`.
pub const VERSION: u8 = 2;
/// Most signatures one message may carry.
pub const MAX_SIGNATURES: usize = 16;
const HEADER_LEN: usize = 91;
const ENTRY_LEN: usize = 20 + 65;
const TRAILER_LEN: usize = 8;
/// No valid message is longer; longer input is refused before it is read.
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + MAX_SIGNATURES * ENTRY_LEN + TRAILER_LEN;

/// The gossip message id of a message's bytes: keccak256 of the bytes, all 32 of them. Every
/// implementation that joins the topic must compute the same id, or its IHAVE/IWANT exchanges fail.
pub fn message_id(bytes: &[u8]) -> [u8; 32] {
    keccak256(bytes)
}

/// A signed price as it travels: the body, the network it belongs to and its signatures by signer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    pub network_id: [u8; 32],
    pub body: PriceBody,
    signatures: Signatures,
    /// Drawn at random by the sender for each send, signed by no one, and read by no receiver: it
    /// gives every send its own gossip id. gossipsub refuses to publish bytes its duplicate cache
    /// holds, and a node that received nothing since its last send holds them past their time;
    /// and bytes a peer could foresee, it could send first, so that the sender's own
    /// retransmission is refused as already seen.
    pub nonce: u64,
}

impl Message {
    /// `None` when there are no signatures or more than [`MAX_SIGNATURES`].
    pub fn new(network_id: [u8; 32], body: PriceBody, signatures: Signatures) -> Option<Message> {
        (1..=MAX_SIGNATURES)
            .contains(&signatures.len())
            .then_some(Message {
                network_id,
                body,
                signatures,
                nonce: 0,
            })
    }

    pub fn signatures(&self) -> &Signatures {
        &self.signatures
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(HEADER_LEN + self.signatures.len() * ENTRY_LEN + TRAILER_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.network_id);
        out.extend_from_slice(&self.body.id.0.to_be_bytes());
        out.extend_from_slice(&self.body.feed.padded());
        out.extend_from_slice(&self.body.price.0.to_be_bytes());
        out.push(self.body.decimals);
        out.extend_from_slice(&self.body.observed_at_ms.to_be_bytes());
        out.push(self.signatures.len() as u8);
        for (signer, signature) in self.signatures.iter() {
            out.extend_from_slice(&signer.0);
            out.extend_from_slice(&signature.0);
        }
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(DecodeError::TooLong(bytes.len()));
        }
        let mut reader = Reader(bytes);
        let version = reader.take::<1>()?[0];
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let network_id = reader.take::<32>()?;
        let id = PriceId(u128::from_be_bytes(reader.take::<16>()?));
        let feed = Feed::from_padded(reader.take::<16>()?).map_err(|_| DecodeError::Feed)?;
        let price = Price(u128::from_be_bytes(reader.take::<16>()?));
        let decimals = reader.take::<1>()?[0];
        if decimals > MAX_DECIMALS {
            return Err(DecodeError::Decimals(decimals));
        }
        let observed_at_ms = u64::from_be_bytes(reader.take::<8>()?);
        let count = reader.take::<1>()?[0] as usize;
        if !(1..=MAX_SIGNATURES).contains(&count) {
            return Err(DecodeError::SignatureCount(count));
        }
        match reader.0.len().cmp(&(count * ENTRY_LEN + TRAILER_LEN)) {
            std::cmp::Ordering::Less => return Err(DecodeError::Truncated),
            std::cmp::Ordering::Greater => return Err(DecodeError::TrailingBytes),
            std::cmp::Ordering::Equal => {}
        }
        // Decoded in place: the message's signatures are written where they stay, not moved in.
        let mut message = Message {
            network_id,
            body: PriceBody {
                id,
                feed,
                price,
                decimals,
                observed_at_ms,
            },
            signatures: Signatures::new(),
            nonce: 0,
        };
        let mut previous: Option<Address> = None;
        for _ in 0..count {
            let signer = Address(reader.take::<20>()?);
            let signature = Signature(reader.take::<65>()?);
            match previous {
                Some(p) if p == signer => return Err(DecodeError::DuplicateSigner),
                Some(p) if p > signer => return Err(DecodeError::Unsorted),
                _ => {}
            }
            previous = Some(signer);
            message.signatures.insert(signer, signature);
        }
        message.nonce = u64::from_be_bytes(reader.take::<8>()?);
        Ok(message)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
}

/// Why bytes are not a message. Each is a peer's fault: the message is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub enum DecodeError {
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_LEN}-byte bound")]
    TooLong(usize),
    #[error("message ends early")]
    Truncated,
    #[error("unknown message version {0}")]
    Version(u8),
    #[error("feed is not zero-padded printable ASCII")]
    Feed,
    #[error("{0} decimals are more than supported")]
    Decimals(u8),
    #[error("{0} signatures, a message carries 1 to {MAX_SIGNATURES}")]
    SignatureCount(usize),
    #[error("bytes follow the nonce")]
    TrailingBytes,
    #[error("signers are not in ascending order")]
    Unsorted,
    #[error("a signer is listed twice")]
    DuplicateSigner,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(signers: u8) -> Message {
        let body = PriceBody {
            id: PriceId::mint(1_700_000_000_000, 3, Address([1; 20])),
            feed: Feed::eth_usd(),
            price: Price(301_245_000_000),
            decimals: 8,
            observed_at_ms: 1_700_000_000_000,
        };
        let signatures = (1..=signers)
            .map(|i| (Address([i; 20]), Signature([i; 65])))
            .collect();
        Message::new([9; 32], body, signatures).unwrap()
    }

    #[test]
    fn round_trips_and_bounds_size() {
        for n in [1, 3, 16] {
            let message = sample(n);
            let bytes = message.encode();
            assert_eq!(
                bytes.len(),
                HEADER_LEN + n as usize * ENTRY_LEN + TRAILER_LEN
            );
            assert_eq!(Message::decode(&bytes), Ok(message));
        }
        assert_eq!(sample(16).encode().len(), MAX_MESSAGE_LEN);
        let resent = Message {
            nonce: 3,
            ..sample(3)
        };
        let bytes = resent.encode();
        assert_eq!(bytes[bytes.len() - 8..], 3u64.to_be_bytes());
        assert_ne!(message_id(&bytes), message_id(&sample(3).encode()));
        assert_eq!(Message::decode(&bytes), Ok(resent));
        assert!(Message::new([0; 32], sample(1).body, Signatures::new()).is_none());
    }

    #[test]
    fn refuses_every_non_canonical_form() {
        let bytes = sample(3).encode();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = bytes.clone();
            f(&mut b);
            Message::decode(&b)
        };
        assert_eq!(Message::decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(with(&|b| b[0] = 1), Err(DecodeError::Version(1)));
        assert_eq!(with(&|b| b[49 + 10] = b'x'), Err(DecodeError::Feed));
        assert_eq!(with(&|b| b[81] = 39), Err(DecodeError::Decimals(39)));
        assert_eq!(with(&|b| b[90] = 0), Err(DecodeError::SignatureCount(0)));
        assert_eq!(with(&|b| b[90] = 17), Err(DecodeError::SignatureCount(17)));
        assert_eq!(with(&|b| b[90] = 4), Err(DecodeError::Truncated));
        assert_eq!(with(&|b| b.push(0)), Err(DecodeError::TrailingBytes));
        assert_eq!(with(&|b| b.truncate(200)), Err(DecodeError::Truncated));
        assert_eq!(
            with(&|b| b.truncate(HEADER_LEN + 3 * ENTRY_LEN)),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            with(&|b| b[91 + ENTRY_LEN..91 + ENTRY_LEN + 20].copy_from_slice(&[1; 20])),
            Err(DecodeError::DuplicateSigner)
        );
        assert_eq!(
            with(&|b| b[91..111].copy_from_slice(&[5; 20])),
            Err(DecodeError::Unsorted)
        );
        let long = vec![1u8; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            Message::decode(&long),
            Err(DecodeError::TooLong(MAX_MESSAGE_LEN + 1))
        );
    }
}

//! Identities and signatures: secp256k1 keys named by Ethereum-style addresses, 65-byte recoverable
//! ECDSA signatures (r, s, v) over a keccak256 digest, so any Ethereum tool (`ecrecover`, eth_keys,
//! coincurve) can check a stored price without our code.

use std::fmt;

use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

/// keccak256, the hash Ethereum tools expect.
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

/// A signer's name: the last 20 bytes of keccak256 of its uncompressed public key (without the 0x04 tag).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address(pub [u8; 20]);

/// Byte order, compared as two big-endian integers: maps keyed by address (signatures, the
/// allowlist, the committee ring) compare addresses on every message, and a call to `memcmp`
/// per comparison was a tenth of a large network's simulation.
impl Ord for Address {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.words().cmp(&other.words())
    }
}

impl PartialOrd for Address {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Address {
    fn words(&self) -> (u128, u32) {
        let (high, low) = self.0.split_at(16);
        (
            u128::from_be_bytes(high.try_into().expect("16 bytes")),
            u32::from_be_bytes(low.try_into().expect("4 bytes")),
        )
    }

    pub fn of(key: &VerifyingKey) -> Address {
        let point = key.to_sec1_point(false);
        Address::of_uncompressed(&point.as_bytes()[1..])
    }

    /// The address of a public key given as its uncompressed point, x ‖ y (64 bytes, no tag).
    pub fn of_uncompressed(point: &[u8]) -> Address {
        let hash = keccak256(point);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }

    /// Parses `0x` followed by 40 hex digits (either case).
    pub fn parse(text: &str) -> Result<Address, ParseAddressError> {
        let digits = text
            .trim()
            .strip_prefix("0x")
            .ok_or(ParseAddressError::MissingPrefix)?;
        let bytes = decode_hex(digits).ok_or(ParseAddressError::NotHex)?;
        let array: [u8; 20] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| ParseAddressError::Length(b.len()))?;
        Ok(Address(array))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAddressError {
    #[error("an address starts with 0x")]
    MissingPrefix,
    #[error("an address is hexadecimal after 0x")]
    NotHex,
    #[error("an address has 20 bytes (40 hex digits), this one has {0}")]
    Length(usize),
}

fn decode_hex(digits: &str) -> Option<Vec<u8>> {
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A 65-byte recoverable ECDSA signature: r (32) ‖ s (32, low-s) ‖ v (27 or 28), Ethereum's layout.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(pub [u8; 65]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Signature {
    /// The signer's address, recovered from the signature over `digest`. `None` for any signature
    /// that is not a canonical (low-s, v of 27 or 28) valid signature.
    pub fn recover(&self, digest: &[u8; 32]) -> Option<(Address, VerifyingKey)> {
        let (signature, recovery) = self.split()?;
        let key = VerifyingKey::recover_from_prehash(digest, &signature, recovery).ok()?;
        Some((Address::of(&key), key))
    }

    /// True when the signature is a canonical, valid signature over `digest` by `signer`. Recovery,
    /// not plain verification, so that `v` is checked too: with a wrong `v` a consumer's `ecrecover`
    /// would name somebody else.
    pub fn is_by(&self, digest: &[u8; 32], signer: Address) -> bool {
        self.recover(digest)
            .is_some_and(|(address, _)| address == signer)
    }

    fn split(&self) -> Option<(EcdsaSignature, RecoveryId)> {
        let recovery = match self.0[64] {
            27 => RecoveryId::new(false, false),
            28 => RecoveryId::new(true, false),
            _ => return None,
        };
        let signature = EcdsaSignature::from_slice(&self.0[..64]).ok()?;
        // High-s twins of valid signatures are refused, so each signature has one encoding.
        if signature.normalize_s() != signature {
            return None;
        }
        Some((signature, recovery))
    }
}

/// How a node decides that a signature over a digest is by a signer, and hashes what every node
/// hashes alike (a price's signed bytes, its place on the committee ring). [`Recover`] is the only
/// production check; a driver that runs many nodes in one process (the simulation) may share one
/// memo of recoveries and hashes between them, since both are pure functions of their input.
pub trait SignatureCheck: Send + Sync {
    fn is_by(&self, signature: &Signature, digest: &[u8; 32], signer: Address) -> bool;

    /// keccak256 of `bytes`.
    fn keccak(&self, bytes: &[u8]) -> [u8; 32] {
        keccak256(bytes)
    }
}

/// [`Signature::is_by`]: recover the signer and compare.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recover;

impl SignatureCheck for Recover {
    fn is_by(&self, signature: &Signature, digest: &[u8; 32], signer: Address) -> bool {
        signature.is_by(digest, signer)
    }
}

/// A node's secret key. Lives with the driver, never inside the state machine: the node asks for
/// signatures through `Action::Sign`.
#[derive(Clone)]
pub struct Keypair {
    secret: SigningKey,
    address: Address,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.address)
    }
}

impl Keypair {
    /// Builds a key from its 32 secret bytes; `None` if they are zero or not below the curve order.
    pub fn from_secret(bytes: &[u8; 32]) -> Option<Keypair> {
        let secret = SigningKey::from_slice(bytes).ok()?;
        Some(Keypair {
            address: Address::of(secret.verifying_key()),
            secret,
        })
    }

    /// A key drawn from the given 32 bytes of entropy, retried deterministically until valid.
    pub fn from_entropy(mut seed: [u8; 32]) -> Keypair {
        loop {
            if let Some(key) = Keypair::from_secret(&seed) {
                return key;
            }
            seed = keccak256(&seed);
        }
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes().into()
    }

    pub fn address(&self) -> Address {
        self.address
    }

    /// The public key, SEC1-compressed (33 bytes).
    pub fn public_key_sec1(&self) -> [u8; 33] {
        let point = self.secret.verifying_key().to_sec1_point(true);
        point
            .as_bytes()
            .try_into()
            .expect("a compressed point has 33 bytes")
    }

    /// RFC 6979 deterministic, low-s, recoverable signature over a 32-byte digest.
    pub fn sign(&self, digest: &[u8; 32]) -> Signature {
        // k256 always returns the low-s form, which `split` insists on.
        let (signature, recovery) = self.secret.sign_prehash_recoverable(digest);
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&signature.to_bytes());
        out[64] = 27 + u8::from(recovery.is_y_odd());
        Signature(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_order_as_their_bytes() {
        let mut bytes = [[0u8; 20]; 6];
        bytes[1][19] = 1;
        bytes[2][15] = 1;
        bytes[3][16] = 0xff;
        bytes[4][0] = 1;
        bytes[5] = [0xff; 20];
        for a in bytes {
            for b in bytes {
                assert_eq!(Address(a).cmp(&Address(b)), a.cmp(&b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn signature_recovers_the_signer_and_rejects_tampering() {
        let key = Keypair::from_entropy([7; 32]);
        let digest = keccak256(b"a price");
        let signature = key.sign(&digest);
        assert_eq!(signature.recover(&digest).unwrap().0, key.address());
        assert!(signature.is_by(&digest, key.address()));

        let other = keccak256(b"another price");
        assert_ne!(
            signature.recover(&other).map(|(a, _)| a),
            Some(key.address())
        );
        assert!(!signature.is_by(&other, key.address()));

        let mut wrong_v = signature;
        wrong_v.0[64] = 29;
        assert!(wrong_v.recover(&digest).is_none());
        wrong_v.0[64] = 55 - signature.0[64]; // the other parity
        assert!(!wrong_v.is_by(&digest, key.address()));
    }

    #[test]
    fn signatures_are_low_s_and_recoverable() {
        let key = Keypair::from_entropy([3; 32]);
        for i in 0..64u8 {
            let digest = keccak256(&[i]);
            assert!(
                key.sign(&digest).is_by(&digest, key.address()),
                "digest {i}"
            );
        }
    }

    #[test]
    fn high_s_twin_is_refused() {
        let key = Keypair::from_entropy([9; 32]);
        let digest = keccak256(b"x");
        let signature = key.sign(&digest);
        let parsed = EcdsaSignature::from_slice(&signature.0[..64]).unwrap();
        let (r, s) = parsed.split_scalars();
        let high = EcdsaSignature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        let mut twin = [0u8; 65];
        twin[..64].copy_from_slice(&high.to_bytes());
        twin[64] = 55 - signature.0[64];
        assert!(Signature(twin).recover(&digest).is_none());
        assert!(!Signature(twin).is_by(&digest, key.address()));
    }

    #[test]
    fn address_parses_and_prints() {
        let key = Keypair::from_entropy([1; 32]);
        let text = key.address().to_string();
        assert_eq!(Address::parse(&text), Ok(key.address()));
        assert_eq!(Address::parse("12"), Err(ParseAddressError::MissingPrefix));
        assert_eq!(Address::parse("0x12"), Err(ParseAddressError::Length(1)));
        assert_eq!(Address::parse("0xzz"), Err(ParseAddressError::NotHex));
    }
}

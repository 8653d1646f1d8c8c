//! The one check of a stored price, for everyone who must trust it without trusting the writer:
//! tests, fuzzing, the simulation's checker and the `verify` command all call this.

use std::collections::BTreeSet;

use crate::config::Config;
use crate::crypto::{Address, Signature};
use crate::price::PriceBody;

/// Why a stored price does not hold up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Flaw {
    #[error("signed for another network")]
    WrongNetwork,
    #[error("feed or decimals differ from this deployment's")]
    WrongFeed,
    #[error("the id was not minted by the origin at the observation time")]
    BadId,
    #[error("the origin {0} has not signed")]
    OriginMissing(Address),
    #[error("signer {0} is listed more than once")]
    DuplicateSigner(Address),
    #[error("signer {0} is not allowed")]
    UnknownSigner(Address),
    #[error("the signature of {0} does not recover to it over the signed bytes")]
    BadSignature(Address),
    #[error("{signers} distinct valid signers, quorum is {quorum}")]
    BelowQuorum { signers: usize, quorum: usize },
}

/// Checks a stored price against the deployment's config: same network, the id minted by its
/// origin, every signer listed once, allowed and recovering from its signature over the exact
/// signed bytes, and at least a quorum of them.
pub fn audit(
    config: &Config,
    network_id: &[u8; 32],
    body: &PriceBody,
    origin: Address,
    signatures: &[(Address, Signature)],
) -> Result<(), Flaw> {
    if *network_id != config.network_id() {
        return Err(Flaw::WrongNetwork);
    }
    fits(config, body)?;
    if !body.id.is_from(origin) {
        return Err(Flaw::BadId);
    }
    let digest = body.digest(network_id);
    let mut seen = BTreeSet::new();
    for &(signer, signature) in signatures {
        if !seen.insert(signer) {
            return Err(Flaw::DuplicateSigner(signer));
        }
        if !config.allows(signer) {
            return Err(Flaw::UnknownSigner(signer));
        }
        if !signature.is_by(&digest, signer) {
            return Err(Flaw::BadSignature(signer));
        }
    }
    if !seen.contains(&origin) {
        return Err(Flaw::OriginMissing(origin));
    }
    if seen.len() < config.quorum {
        return Err(Flaw::BelowQuorum {
            signers: seen.len(),
            quorum: config.quorum,
        });
    }
    Ok(())
}

/// Whether a price body belongs to this deployment's feed and its id was minted by the rules (the
/// version bits, and the id's time equal to the observation time). Checked on every received message
/// and every audited row.
pub(crate) fn fits(config: &Config, body: &PriceBody) -> Result<(), Flaw> {
    if body.feed != config.feed || body.decimals != config.decimals {
        return Err(Flaw::WrongFeed);
    }
    if !body.id.is_well_formed() || body.id.unix_ms() != body.observed_at_ms {
        return Err(Flaw::BadId);
    }
    Ok(())
}

impl crate::io::PriceRow {
    /// [`audit`] of this row.
    pub fn audit(&self, config: &Config) -> Result<(), Flaw> {
        audit(
            config,
            &self.message.network_id,
            &self.message.body,
            self.origin,
            self.signatures().as_slice(),
        )
    }
}

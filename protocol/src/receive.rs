//! The receive path: every check a gossip message passes before it counts, in order of cost, so
//! junk is dropped before any signature is checked, each (price id, signer) is verified once, and
//! a message is accepted (so forwarded) only when every signature in it is valid.

use std::sync::Arc;

use crate::audit::{Flaw, fits};
use crate::book::Phase;
use crate::config::Signers;
use crate::crypto::{Address, Signature};
use crate::io::{Broadcast, Verdict};
use crate::metrics::{Ignored, Misbehaviour};
use crate::node::{MAX_OPEN_MEMBERS, Node};
use crate::price::PriceId;
use crate::signatures::Pairs;
use crate::timers::Timer;
use crate::wire::Message;

/// What a message that passed every check that needs no signature is found to be.
struct Screened {
    origin: Address,
    /// Milliseconds since the price was observed, by this node's clock.
    age_ms: u64,
}

/// What the signatures of a message hold that this node does not: the ones verified (in the order
/// checked, the origin's first) and whether checking stopped at an invalid one.
struct Checked {
    /// In place up to four (beyond, on the heap): one list per message received.
    new: Pairs,
    forged: bool,
}

impl Node {
    pub(crate) fn receive(&mut self, bytes: &[u8]) -> Verdict {
        let message = match Message::decode(bytes) {
            Ok(message) => message,
            Err(error) => return Verdict::Reject(Misbehaviour::Malformed(error)),
        };
        // Screened by reference: a decoded message holds its signatures, and is not passed back.
        let Screened { origin, age_ms } = match self.screen(&message) {
            Ok(screened) => screened,
            Err(verdict) => return verdict,
        };
        let body = message.body;
        let id = body.id;
        let held = self.book.get(id);
        if held.is_some_and(|entry| entry.body != body) {
            return Verdict::Ignore(Ignored::Equivocation);
        }
        let (was_held, was_ready) = (held.is_some(), held.is_some_and(|e| e.reached_quorum()));
        let digest = held.map_or_else(
            || body.digest_by(&self.network_id, &*self.check),
            |e| e.digest,
        );
        let Checked { new, forged } = self.check_signatures(&message, origin, &digest);
        if !was_held {
            // Nothing is kept for an id before its origin's signature is verified; past the
            // co-signing age, only a verified quorum is worth keeping.
            if new.first().is_none_or(|&(signer, _)| signer != origin) {
                return Verdict::Reject(Misbehaviour::BadSignature);
            }
            if age_ms > self.config.max_age_ms {
                if forged {
                    return Verdict::Reject(Misbehaviour::BadSignature);
                }
                if new.len() < self.config.quorum {
                    return Verdict::Ignore(Ignored::Stale);
                }
            }
            if let Err(bound) = self.admit(body, digest, origin) {
                return Verdict::Ignore(bound);
            }
        }
        // Signatures verified before a forgery are kept: each was checked once and need not be
        // again. The message itself is rejected, so nothing unverified is ever forwarded.
        let added = self.add_signatures(id, new.iter().copied());
        new.iter()
            .for_each(|&(signer, _)| self.learn_signer(signer));
        if forged {
            // A price first seen here is co-signed as if it had come alone: a relay adding a
            // forged signature to fresh prices must not keep honest nodes from signing them (the
            // honest copy is a duplicate by then).
            if !was_held
                && self
                    .book
                    .get(id)
                    .is_some_and(|e| e.phase() == Phase::Collecting)
            {
                self.schedule_cosign(id);
            }
            return Verdict::Reject(Misbehaviour::BadSignature);
        }
        if added == 0 {
            return self.duplicate(id, message.signatures().len());
        }
        if was_ready {
            return match self.overdue(id) {
                true => Verdict::Accept,
                false => Verdict::Ignore(Ignored::AlreadyReady),
            };
        }
        let entry = self.book.get(id).expect("admitted or held");
        match entry.phase() {
            Phase::Collecting => self.schedule_cosign(id),
            // Reached quorum from pieces no single message carried: a signer of the price tells
            // everyone. Only signers, so merges per price stay within the committee's size however
            // many nodes there are (the others reach quorum from the same pieces anyway).
            _ if entry.signatures.len() > message.signatures().len()
                && entry.signatures.contains_key(&self.me) =>
            {
                self.broadcast(id, Broadcast::Merge)
            }
            _ => {}
        }
        Verdict::Accept
    }

    /// Every check that needs no signature, cheapest first (after decoding).
    fn screen(&self, message: &Message) -> Result<Screened, Verdict> {
        use Misbehaviour::*;
        let body = message.body;
        let signers = message.signatures();
        if message.network_id != self.network_id {
            return Err(Verdict::Reject(WrongNetwork));
        }
        match fits(&self.config, &body) {
            Ok(()) => {}
            Err(Flaw::WrongFeed) => return Err(Verdict::Reject(WrongFeed)),
            Err(_) => return Err(Verdict::Reject(BadId)),
        }
        if signers.keys().any(|&signer| !self.config.allows(signer)) {
            return Err(Verdict::Reject(UnknownSigner));
        }
        let Some(&origin) = signers.keys().find(|s| body.id.is_from(**s)) else {
            return Err(Verdict::Reject(NoOriginSignature));
        };
        if body.observed_at_ms > self.now + self.config.max_skew_ms {
            return Err(Verdict::Reject(FromFuture));
        }
        // The book never holds a stored id: only an id not held is looked up among the stored.
        let held = self.book.holds(body.id);
        if !held && self.book.is_stored(body.id) {
            return Err(Verdict::Ignore(Ignored::AlreadyStored));
        }
        // Below quorum, only fresh prices are worth anything; at quorum, a late price still deserves
        // storing (it may have been cut off by a partition), up to the ready TTL. The count here is
        // only claimed: it saves work, and `receive` keeps a late new price only once verified.
        let age_ms = self.now.saturating_sub(body.observed_at_ms);
        let below_quorum = signers.len() < self.config.quorum;
        if age_ms > self.config.ready_ttl_ms
            || (!held && below_quorum && age_ms > self.config.max_age_ms)
        {
            return Err(Verdict::Ignore(Ignored::Stale));
        }
        Ok(Screened { origin, age_ms })
    }

    /// Checks every signature this node does not hold byte for byte, the origin's first, and stops
    /// at the first invalid one: one message costs at most one wasted check. A held signer's copy is
    /// compared, not trusted: honest copies are byte-identical (RFC 6979, low s), so a differing
    /// one is checked like a new one, and a copy is never forwarded with a forgery in it.
    fn check_signatures(&self, message: &Message, origin: Address, digest: &[u8; 32]) -> Checked {
        let held = self.book.get(message.body.id).map(|e| &e.signatures);
        let unheld = |(signer, signature): (&Address, &Signature)| {
            (held.and_then(|h| h.get(signer)) != Some(signature)).then_some((*signer, *signature))
        };
        let signatures = message.signatures();
        let origin_first = signatures
            .get_key_value(&origin)
            .into_iter()
            .chain(signatures.iter().filter(|(s, _)| **s != origin));
        let mut checked = Checked {
            new: Pairs::new(),
            forged: false,
        };
        for (signer, signature) in origin_first.filter_map(unheld) {
            if !self.check.is_by(&signature, digest, signer) {
                checked.forged = true;
                break;
            }
            // A second valid signature by a held signer is valid, not new.
            if !held.is_some_and(|h| h.contains_key(&signer)) {
                checked.new.push((signer, signature));
            }
        }
        checked
    }

    /// Nothing new in this copy. Past the moment the price's signers start retransmitting it, a
    /// copy is passed on all the same: it is a retransmission, and gossip forwards only what its
    /// receivers accept, so without this it would stop at the first node that has the price and
    /// never reach the one that lacks it (often the writer, after a partition or lost messages).
    /// One such copy per price every half retransmission period, and only one carrying a quorum:
    /// copies differ in their unsigned nonce, so a relay could otherwise have one set of
    /// signatures flooded anew under any number of gossip ids.
    fn duplicate(&mut self, id: PriceId, signatures: usize) -> Verdict {
        let (now, window) = (self.now, self.config.retransmit_after_ms / 2);
        if signatures >= self.config.quorum
            && self.overdue(id)
            && let Some(entry) = self.book.get_mut(id)
            && entry.passed_on_at.is_none_or(|at| now >= at + window)
        {
            entry.passed_on_at = Some(now);
            return Verdict::Accept;
        }
        Verdict::Ignore(Ignored::Duplicate)
    }

    /// A ready price whose signers have begun retransmitting it, not yet seen stored.
    fn overdue(&self, id: PriceId) -> bool {
        let config = &self.config;
        self.book.get(id).is_some_and(|entry| {
            entry.reached_quorum()
                && self.now
                    >= entry.last_signature_at + config.write_delay_ms + config.retransmit_after_ms
        })
    }

    /// In an open network the committee ring grows with the signers this node has verified.
    fn learn_signer(&mut self, signer: crate::Address) {
        if self.config.signers == Signers::Open && self.committee.len() < MAX_OPEN_MEMBERS {
            Arc::make_mut(&mut self.committee).insert(signer);
        }
    }

    /// Co-signs now if this node is in the price's committee, later if it is in a later wave (the
    /// timer finds the price at quorum and does nothing), never if it is the origin. A wave whose
    /// turn comes after the price would expire unready sets no timer: by then the price is at
    /// quorum (which cancels the timer) or forgotten (which does too). In a large network that is
    /// most nodes, for every price.
    fn schedule_cosign(&mut self, id: PriceId) {
        let Some(entry) = self.book.get(id) else {
            return;
        };
        if entry.decided {
            return;
        }
        let (origin, observed_at) = (entry.origin, entry.body.observed_at_ms);
        let wave = match entry.wave {
            Some(wave) => wave,
            None => {
                let wave = (self.committee)
                    .wave(id, origin, self.me, self.config.committee(), &*self.check)
                    .and_then(|wave| u32::try_from(wave).ok());
                self.book.get_mut(id).expect("held").wave = Some(wave);
                wave
            }
        };
        let Some(wave) = wave else {
            return;
        };
        let at = observed_at + u64::from(wave) * self.config.cosign_step_ms;
        if at <= self.now {
            self.consider_cosign(id);
        } else if at <= self.unready_until(observed_at) {
            self.timers.set(&mut self.book, Timer::CoSign(id), at);
        }
    }
}

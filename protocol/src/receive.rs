//! The receive path: every check a gossip message passes before it counts, in order of cost, so
//! junk is dropped before any signature is checked and each (price id, signer) is verified once.

use crate::audit::{Flaw, fits};
use crate::config::Signers;
use crate::io::{Broadcast, Verdict};
use crate::metrics::{Ignored, Misbehaviour};
use crate::node::{MAX_OPEN_MEMBERS, Node, Phase};
use crate::price::PriceId;
use crate::timers::Timer;
use crate::wire::Message;

impl Node {
    pub(crate) fn receive(&mut self, bytes: &[u8]) -> Verdict {
        use Misbehaviour::*;
        let message = match Message::decode(bytes) {
            Ok(message) => message,
            Err(error) => return Verdict::Reject(Malformed(error)),
        };
        let body = message.body;
        let signers = message.signatures();
        if message.network_id != self.network_id {
            return Verdict::Reject(WrongNetwork);
        }
        match fits(&self.config, &body) {
            Ok(()) => {}
            Err(Flaw::WrongFeed) => return Verdict::Reject(WrongFeed),
            Err(_) => return Verdict::Reject(BadId),
        }
        if signers.keys().any(|&signer| !self.config.allows(signer)) {
            return Verdict::Reject(UnknownSigner);
        }
        let Some((&origin, &origin_signature)) = signers.iter().find(|(s, _)| body.id.is_from(**s))
        else {
            return Verdict::Reject(NoOriginSignature);
        };
        if body.observed_at_ms > self.now + self.config.max_skew_ms {
            return Verdict::Reject(FromFuture);
        }
        let id = body.id;
        if self.stored.contains(&id) {
            return Verdict::Ignore(Ignored::AlreadyStored);
        }
        let age = self.now.saturating_sub(body.observed_at_ms);
        let held = self.prices.contains_key(&id);
        // Below quorum, only fresh prices are worth anything; at quorum, a late price still deserves
        // storing (it may have been cut off by a partition), up to the ready TTL.
        let below_quorum = signers.len() < self.config.quorum;
        if age > self.config.ready_ttl_ms || (!held && below_quorum && age > self.config.max_age_ms)
        {
            return Verdict::Ignore(Ignored::Stale);
        }

        let was_ready = self
            .prices
            .get(&id)
            .is_some_and(|e| e.phase != Phase::Collecting);
        let digest = match self.prices.get(&id) {
            Some(entry) if entry.body != body => return Verdict::Ignore(Ignored::Equivocation),
            Some(entry) => {
                if signers.keys().all(|s| entry.signatures.contains_key(s)) {
                    return self.duplicate(id);
                }
                entry.digest
            }
            None => {
                // The origin's signature is checked before anything is kept for this id.
                let digest = body.digest(&self.network_id);
                if !self.check.is_by(&origin_signature, &digest, origin) {
                    return Verdict::Reject(BadSignature);
                }
                if let Err(bound) = self.admit(body, digest, origin) {
                    return Verdict::Ignore(bound);
                }
                self.add_signatures(id, [(origin, origin_signature)]);
                self.learn_signer(origin);
                digest
            }
        };

        let entry = &self.prices[&id];
        let unseen: Vec<_> = signers
            .iter()
            .filter(|(s, _)| !entry.signatures.contains_key(s))
            .map(|(&s, &sig)| (s, sig))
            .collect();
        let (valid, invalid): (Vec<_>, Vec<_>) = unseen
            .into_iter()
            .partition(|(signer, signature)| self.check.is_by(signature, &digest, *signer));
        // Valid signatures are kept even from a message that also carries a forgery: each was
        // verified once and need never be again.
        let added = self.add_signatures(id, valid.iter().copied());
        valid
            .iter()
            .for_each(|&(signer, _)| self.learn_signer(signer));
        if !invalid.is_empty() {
            return Verdict::Reject(BadSignature);
        }
        if added == 0 && held {
            return self.duplicate(id);
        }
        if was_ready {
            return match self.overdue(id) {
                true => Verdict::Accept,
                false => Verdict::Ignore(Ignored::AlreadyReady),
            };
        }
        let entry = &self.prices[&id];
        match entry.phase {
            Phase::Collecting => self.schedule_cosign(id),
            // Reached quorum from pieces no single message carried: a signer of the price tells
            // everyone. Only signers, so merges per price stay within the committee's size however
            // many nodes there are (the others reach quorum from the same pieces anyway).
            _ if entry.signatures.len() > signers.len()
                && entry.signatures.contains_key(&self.me) =>
            {
                self.broadcast(id, Broadcast::Merge)
            }
            _ => {}
        }
        Verdict::Accept
    }

    /// Nothing new in this copy. Past the moment the price's signers start retransmitting it, a
    /// copy is passed on all the same: it is a retransmission, and gossip forwards only what its
    /// receivers accept, so without this it would stop at the first node that has the price and
    /// never reach the one that lacks it (often the writer, after a partition or lost messages).
    fn duplicate(&self, id: PriceId) -> Verdict {
        match self.overdue(id) {
            true => Verdict::Accept,
            false => Verdict::Ignore(Ignored::Duplicate),
        }
    }

    /// A ready price whose signers have begun retransmitting it, not yet seen stored.
    fn overdue(&self, id: PriceId) -> bool {
        let config = &self.config;
        self.prices.get(&id).is_some_and(|entry| {
            entry.phase != Phase::Collecting
                && self.now
                    >= entry.last_signature_at + config.write_delay_ms + config.retransmit_after_ms
        })
    }

    /// In an open network the committee ring grows with the signers this node has verified.
    fn learn_signer(&mut self, signer: crate::Address) {
        if self.config.signers == Signers::Open && self.committee.len() < MAX_OPEN_MEMBERS {
            self.committee.insert(signer);
        }
    }

    /// Co-signs now if this node is in the price's committee, later if it is in a later wave (the
    /// timer finds the price at quorum and does nothing), never if it is the origin.
    fn schedule_cosign(&mut self, id: PriceId) {
        let entry = &self.prices[&id];
        if entry.decided {
            return;
        }
        let (origin, observed_at) = (entry.origin, entry.body.observed_at_ms);
        let wave = match entry.wave {
            Some(wave) => wave,
            None => {
                let wave = self
                    .committee
                    .wave(id, origin, self.me, self.config.committee);
                self.prices.get_mut(&id).expect("held").wave = Some(wave);
                wave
            }
        };
        let Some(wave) = wave else {
            return;
        };
        let at = observed_at + wave as u64 * self.config.cosign_step_ms;
        if at <= self.now {
            self.consider_cosign(id);
        } else {
            self.timers.set(Timer::CoSign(id), at);
        }
    }
}

//! A Byzantine member: it runs the protocol like everyone (so it holds a key on the allowlist,
//! heartbeats and co-signs) but bends what it sends, as its [`Attack`]s say.

use std::collections::VecDeque;

use protocol::{Address, Broadcast, Keypair, Message, Price, Signature, Signatures};

use crate::dice::Dice;
use crate::scenario::Attack;

/// How often a junk-flooding member sends a junk message, and a replaying member an old one.
const JUNK_EVERY_MS: u64 = 2_000;
const REPLAY_EVERY_MS: u64 = 30_000;
/// Messages older than this are replayed.
const REPLAY_AGE_MS: u64 = 300_000;

pub struct Adversary {
    attacks: Vec<Attack>,
    dice: Dice,
    key: Keypair,
    outsider: Keypair,
    honest: Vec<Address>,
    sent: VecDeque<(u64, Vec<u8>)>,
    next_junk: u64,
    next_replay: u64,
}

impl Adversary {
    pub fn new(
        attacks: Vec<Attack>,
        dice: Dice,
        key: Keypair,
        outsider: Keypair,
        honest: Vec<Address>,
    ) -> Adversary {
        Adversary {
            attacks,
            dice,
            key,
            outsider,
            honest,
            sent: VecDeque::new(),
            next_junk: 0,
            next_replay: REPLAY_AGE_MS,
        }
    }

    /// The offset this member's observations carry, in basis points.
    pub fn lie_bps(attacks: &[Attack]) -> i64 {
        attacks
            .iter()
            .map(|a| match a {
                Attack::Lie(bps) => *bps,
                _ => 0,
            })
            .sum()
    }

    pub fn silent_writer(&self) -> bool {
        self.attacks.contains(&Attack::SilentWriter)
    }

    /// What it sends in place of its node's honest broadcast: the broadcast itself, and the
    /// attacks riding on it.
    pub fn outgoing(&mut self, now: u64, why: Broadcast, bytes: Vec<u8>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if let Ok(message) = Message::decode(&bytes) {
            for attack in self.attacks.clone() {
                if let Some(bent) = self.bend(attack, why, &message, &bytes) {
                    out.push(bent);
                }
            }
        }
        if self.attacks.contains(&Attack::Replay) {
            self.sent.push_back((now, bytes.clone()));
        }
        out.insert(0, bytes);
        out
    }

    fn bend(
        &mut self,
        attack: Attack,
        why: Broadcast,
        message: &Message,
        bytes: &[u8],
    ) -> Option<Vec<u8>> {
        let network_id = message.network_id;
        let digest = message.body.digest(&network_id);
        let mut signatures = message.signatures().clone();
        match attack {
            Attack::Equivocate if why == Broadcast::Publish => {
                let mut body = message.body;
                body.price = Price(body.price.0 + body.price.0 / 50);
                let signature = self.key.sign(&body.digest(&network_id));
                let signatures = Signatures::from_iter([(self.key.address(), signature)]);
                Some(Message::new(network_id, body, signatures)?.encode())
            }
            Attack::InvalidSignature => {
                let own = signatures.get_mut(&self.key.address())?;
                own.0[10] ^= 0x55;
                Some(Message::new(network_id, message.body, signatures)?.encode())
            }
            Attack::CorruptRelay => {
                let me = self.key.address();
                signatures.get(&me)?;
                let other = *signatures.keys().find(|&&signer| signer != me)?;
                signatures.get_mut(&other)?.0[10] ^= 0x55;
                Some(Message::new(network_id, message.body, signatures)?.encode())
            }
            Attack::ForgeSigner => {
                let victim = self.honest[self.dice.below(self.honest.len())];
                let mut forged = [0u8; 65];
                self.dice.fill(&mut forged[..64]);
                forged[64] = 27 + (self.dice.u64() % 2) as u8;
                signatures.insert(victim, Signature(forged));
                Some(Message::new(network_id, message.body, signatures)?.encode())
            }
            Attack::UnknownSigner => {
                signatures.insert(self.outsider.address(), self.outsider.sign(&digest));
                Some(Message::new(network_id, message.body, signatures)?.encode())
            }
            Attack::DuplicateSigner => {
                // The wire format's last entry, listed again: count at offset 90, 85-byte entries,
                // then the 8-byte nonce.
                let count = *bytes.get(90)?;
                let (entries, nonce) = bytes.split_at(bytes.len() - 8);
                let mut out = entries.to_vec();
                out[90] = count + 1;
                out.extend_from_slice(&entries[entries.len() - 85..]);
                out.extend_from_slice(nonce);
                Some(out)
            }
            Attack::Reissue => {
                let mut copy = message.clone();
                copy.nonce = self.dice.u64();
                Some(copy.encode())
            }
            _ => None,
        }
    }

    /// Unprompted sends due by `now`: junk, and replays of old messages.
    pub fn unprompted(&mut self, now: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if self.attacks.contains(&Attack::Junk) && now >= self.next_junk {
            self.next_junk = now + JUNK_EVERY_MS;
            let mut junk = vec![0u8; self.dice.range(1, 1_600) as usize];
            self.dice.fill(&mut junk);
            // Half look like our messages at first glance.
            if self.dice.chance(0.5) {
                junk[0] = protocol::wire::VERSION;
            }
            out.push(junk);
        }
        if self.attacks.contains(&Attack::Replay) && now >= self.next_replay {
            self.next_replay = now + REPLAY_EVERY_MS;
            while self
                .sent
                .front()
                .is_some_and(|(at, _)| at + 2 * REPLAY_AGE_MS < now)
            {
                self.sent.pop_front();
            }
            if let Some((at, bytes)) = self.sent.front()
                && at + REPLAY_AGE_MS <= now
            {
                out.push(bytes.clone());
            }
        }
        out
    }

    /// When [`Adversary::unprompted`] next has something to send.
    pub fn next_unprompted(&self) -> Option<u64> {
        let junk = self
            .attacks
            .contains(&Attack::Junk)
            .then_some(self.next_junk);
        let replay = self
            .attacks
            .contains(&Attack::Replay)
            .then_some(self.next_replay);
        junk.into_iter().chain(replay).min()
    }
}

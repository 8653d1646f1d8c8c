//! The true price, a random walk, and the exchanges every node asks: each quotes the truth with a
//! little noise, and some stall or lie for a while.

use protocol::Price;

use crate::dice::Dice;
use crate::scenario::Sources;

/// 3,000 USD with 8 decimals.
const START_UNITS: i128 = 3_000 * 100_000_000;
/// The walk moves once per simulated second, by up to this many hundredths of a basis point.
const STEP_CENTI_BPS: u64 = 200;

pub struct Market {
    /// The truth at each whole second.
    truth: Vec<i128>,
    sources: Sources,
}

impl Market {
    pub fn new(seed: u64, duration_ms: u64, sources: Sources) -> Market {
        let mut dice = Dice::new(seed, "market", 0);
        let seconds = duration_ms / 1_000 + 2;
        let mut units = START_UNITS;
        let truth = (0..seconds)
            .map(|_| {
                let step = dice.range(0, 2 * STEP_CENTI_BPS) as i128 - STEP_CENTI_BPS as i128;
                units += units * step / 1_000_000;
                units
            })
            .collect();
        Market { truth, sources }
    }

    /// The true price at simulated time `at`.
    pub fn truth(&self, at: u64) -> Price {
        let second = (at / 1_000) as usize;
        Price(self.truth[second.min(self.truth.len() - 1)] as u128)
    }

    /// What the sources answer a node asking at `at` (those that answer), off the truth by `bias`
    /// basis points for a node whose view is skewed on purpose (a liar).
    pub fn quotes(&self, at: u64, bias_bps: i64, dice: &mut Dice) -> Vec<Price> {
        let truth = self.truth(at).0 as i128;
        let mut answered = Vec::new();
        for s in 0..self.sources.count {
            let stalled = self
                .sources
                .stalls
                .iter()
                .any(|&(source, from, until)| source == s && (from..until).contains(&at));
            if stalled || dice.chance(self.sources.failure) {
                continue;
            }
            let lie: i64 = self
                .sources
                .lies
                .iter()
                .filter(|&&(source, from, until, _)| source == s && (from..until).contains(&at))
                .map(|&(.., bps)| bps)
                .sum();
            let noise =
                dice.range(0, 2 * self.sources.noise_bps) as i64 - self.sources.noise_bps as i64;
            let bps = (lie + noise + bias_bps) as i128;
            answered.push(Price((truth + truth * bps / 10_000) as u128));
        }
        answered
    }

    /// How far `price` is from the truth at `at`, in basis points.
    pub fn distance_bps(&self, price: Price, at: u64) -> u64 {
        let truth = self.truth(at).0 as i128;
        ((price.0 as i128 - truth).abs() * 10_000 / truth) as u64
    }

    /// The most the truth moved, in basis points, between any two moments `window_ms` apart or less.
    pub fn max_drift_bps(&self, window_ms: u64) -> u64 {
        let window = (window_ms / 1_000 + 1) as usize;
        let mut most = 0;
        for (i, &a) in self.truth.iter().enumerate() {
            for &b in &self.truth[i + 1..(i + 1 + window).min(self.truth.len())] {
                most = most.max(((b - a).abs() * 10_000 / a) as u64 + 1);
            }
        }
        most
    }

    /// The furthest an honest node's observation can be from the truth: noise, plus half the
    /// largest lie (a median of two answers, one of them the liar's).
    pub fn honest_error_bps(&self) -> u64 {
        let lie = self
            .sources
            .lies
            .iter()
            .map(|l| l.3.unsigned_abs())
            .max()
            .unwrap_or(0);
        self.sources.noise_bps + lie.div_ceil(2)
    }
}

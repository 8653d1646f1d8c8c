//! A price a minority cannot move: the median of the newest stored price of each distinct origin
//! within a window. Each origin counts once however many prices it stored, so k colluding members
//! move the median only as far as the k-th honest price on one side of it. For an even count the
//! median is the lower middle one, so it is always one of the signed prices and a consumer checks
//! it like any other.

use std::collections::BTreeMap;

use crate::crypto::Address;
use crate::price::{Price, PriceId};

/// One stored price, as the aggregate needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub id: PriceId,
    pub origin: Address,
    pub price: Price,
    pub observed_at_ms: u64,
}

/// The median and spread of the newest price of each origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// The lower median: one of `samples`.
    pub median: Sample,
    pub min: Price,
    pub max: Price,
    /// First and third quartiles by nearest rank (each one of the samples' prices).
    pub q1: Price,
    pub q3: Price,
    /// The newest price of each origin, lowest price first.
    pub samples: Vec<Sample>,
}

/// The aggregate of `samples` (of one feed and window, chosen by the caller); `None` if empty.
pub fn aggregate(samples: impl IntoIterator<Item = Sample>) -> Option<Aggregate> {
    let mut newest: BTreeMap<Address, Sample> = BTreeMap::new();
    for sample in samples {
        let newer =
            |held: &Sample| (sample.observed_at_ms, sample.id) > (held.observed_at_ms, held.id);
        if newest.get(&sample.origin).is_none_or(newer) {
            newest.insert(sample.origin, sample);
        }
    }
    let mut samples: Vec<Sample> = newest.into_values().collect();
    samples.sort_by_key(|s| (s.price, s.id));
    let n = samples.len();
    // Nearest rank, 1-based: ceil(p × n).
    let rank =
        |numerator: usize, denominator: usize| (numerator * n).div_ceil(denominator).max(1) - 1;
    Some(Aggregate {
        median: *samples.get((n.checked_sub(1)?) / 2)?,
        min: samples[0].price,
        max: samples[n - 1].price,
        q1: samples[rank(1, 4)].price,
        q3: samples[rank(3, 4)].price,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(origin: u8, units: u128, at: u64) -> Sample {
        let origin = Address([origin; 20]);
        Sample {
            id: PriceId::mint(at, 0, origin),
            origin,
            price: Price(units),
            observed_at_ms: at,
        }
    }

    #[test]
    fn each_origin_counts_once_with_its_newest_price() {
        // Origin 9 stored three lies; only its newest counts.
        let a = aggregate([
            sample(1, 100, 10),
            sample(2, 101, 10),
            sample(3, 102, 10),
            sample(9, 500, 10),
            sample(9, 600, 11),
            sample(9, 90, 12),
        ])
        .unwrap();
        assert_eq!(a.samples.len(), 4);
        assert_eq!(a.median.price, Price(100), "the lower of 100 and 101");
        assert_eq!((a.min, a.max), (Price(90), Price(102)));
        assert_eq!((a.q1, a.q3), (Price(90), Price(101)));
    }

    #[test]
    fn a_minority_of_liars_moves_the_median_only_within_the_honest_prices() {
        let honest = (1..=5).map(|o| sample(o, 3_000 + u128::from(o), 10));
        let liars = (10..=13).map(|o| sample(o, 1_000_000, 10));
        let a = aggregate(honest.chain(liars)).unwrap();
        assert_eq!(
            a.median.price,
            Price(3_005),
            "pushed to the highest honest price, no further"
        );
        assert_eq!(a.median.origin, Address([5; 20]));
    }

    #[test]
    fn one_sample_is_its_own_median_and_none_is_nothing() {
        let a = aggregate([sample(1, 7, 1)]).unwrap();
        assert_eq!((a.median.price, a.q1, a.q3), (Price(7), Price(7), Price(7)));
        assert_eq!(aggregate([]), None);
    }
}

//! What a signature covers: the price body, its id, its fixed-point value and the exact signed bytes.

use std::fmt;

use crate::crypto::{Address, Recover, SignatureCheck};

/// Domain tag that starts every signed message, so our signatures mean nothing anywhere else.
pub const DOMAIN: [u8; 16] = *b"price-oracle:v1\n";

/// Length of [`PriceBody::signed_bytes`].
pub const SIGNED_LEN: usize = 16 + 32 + 16 + 16 + 16 + 1 + 8;

/// Largest number of decimals a price may carry (10^38 still fits in a u128).
pub const MAX_DECIMALS: u8 = 38;

/// A feed name such as `ETH/USD`: 1 to 16 printable ASCII bytes, stored zero-padded to 16.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Feed([u8; 16]);

impl Feed {
    /// The feed this oracle serves.
    pub fn eth_usd() -> Feed {
        Feed::new("ETH/USD").expect("a valid feed name")
    }

    pub fn new(name: &str) -> Result<Feed, FeedError> {
        if name.is_empty() || name.len() > 16 {
            return Err(FeedError::Length(name.len()));
        }
        if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FeedError::NotPrintable);
        }
        let mut bytes = [0u8; 16];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Feed(bytes))
    }

    /// Accepts only the canonical padded form: a valid name followed by zero bytes.
    pub fn from_padded(bytes: [u8; 16]) -> Result<Feed, FeedError> {
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(16);
        if bytes[len..].iter().any(|&b| b != 0) {
            return Err(FeedError::NotPrintable);
        }
        let name = std::str::from_utf8(&bytes[..len]).map_err(|_| FeedError::NotPrintable)?;
        Feed::new(name)
    }

    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(16);
        std::str::from_utf8(&self.0[..len]).expect("a feed is ASCII by construction")
    }

    pub fn padded(&self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Display for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("a feed name has 1 to 16 characters, this one has {0}")]
    Length(usize),
    #[error("a feed name is printable ASCII without spaces, like ETH/USD")]
    NotPrintable,
}

/// A price as a fixed-point integer: `units / 10^decimals` (the feed's decimals). Never a float.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Price(pub u128);

impl Price {
    /// Parses a plain decimal string ("3012.4517") into units of `10^-decimals`, rounding half away
    /// from zero past the last kept digit. No floating point on the way.
    pub fn parse_decimal(text: &str, decimals: u8) -> Result<Price, ParsePriceError> {
        if decimals > MAX_DECIMALS {
            return Err(ParsePriceError::Decimals(decimals));
        }
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction)
        {
            return Err(ParsePriceError::NotDecimal(text.to_owned()));
        }
        let overflow = || ParsePriceError::TooLarge(text.to_owned());
        let mut units: u128 = 0;
        let digits = whole.bytes().chain(
            fraction
                .bytes()
                .chain(std::iter::repeat(b'0'))
                .take(decimals as usize),
        );
        for digit in digits {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(u128::from(digit - b'0')))
                .ok_or_else(overflow)?;
        }
        if fraction.len() > decimals as usize && fraction.as_bytes()[decimals as usize] >= b'5' {
            units = units.checked_add(1).ok_or_else(overflow)?;
        }
        Ok(Price(units))
    }

    /// Whether `self` lies within `bps` basis points of `reference` (|self - ref| * 10^4 <= ref * bps).
    pub fn within_bps(self, reference: Price, bps: u32) -> bool {
        let difference = self.0.abs_diff(reference.0);
        match (
            difference.checked_mul(10_000),
            reference.0.checked_mul(u128::from(bps)),
        ) {
            (Some(lhs), Some(rhs)) => lhs <= rhs,
            _ => false,
        }
    }

    /// Formats with the given decimals, e.g. `3012.45170000`.
    pub fn display(self, decimals: u8) -> String {
        let scale = 10u128.pow(u32::from(decimals));
        if decimals == 0 {
            return self.0.to_string();
        }
        format!(
            "{}.{:0width$}",
            self.0 / scale,
            self.0 % scale,
            width = decimals as usize
        )
    }

    /// The median of the given prices; for an even count the mean of the middle two, rounded down.
    pub fn median(mut prices: Vec<Price>) -> Option<Price> {
        prices.sort_unstable();
        let n = prices.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(prices[n / 2]),
            _ => {
                let (a, b) = (prices[n / 2 - 1].0, prices[n / 2].0);
                Some(Price(a / 2 + b / 2 + (a % 2 + b % 2) / 2))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParsePriceError {
    #[error("{0:?} is not a plain decimal number like 3012.45")]
    NotDecimal(String),
    #[error("{0:?} does not fit the fixed-point range")]
    TooLarge(String),
    #[error("at most {MAX_DECIMALS} decimals are supported, not {0}")]
    Decimals(u8),
}

/// A price id in the UUIDv7 layout, unique across nodes and sortable by creation time:
/// 48 bits unix milliseconds ‖ version 7 ‖ 12-bit sequence ‖ variant 0b10 ‖ the first 62 bits of the
/// origin's address. Two honest nodes never mint the same id: they differ in the address bits (a
/// collision needs 2^62 work), and one node advances its sequence for each id it mints.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PriceId(pub u128);

const ORIGIN_BITS: u32 = 62;
const ORIGIN_MASK: u128 = (1 << ORIGIN_BITS) - 1;

impl PriceId {
    pub fn mint(unix_ms: u64, sequence: u16, origin: Address) -> PriceId {
        let time = u128::from(unix_ms & ((1 << 48) - 1)) << 80;
        let version = 0x7u128 << 76;
        let sequence = u128::from(sequence & 0x0fff) << 64;
        let variant = 0b10u128 << 62;
        PriceId(time | version | sequence | variant | Self::origin_bits(origin))
    }

    fn origin_bits(origin: Address) -> u128 {
        let mut head = [0u8; 8];
        head.copy_from_slice(&origin.0[..8]);
        u128::from(u64::from_be_bytes(head) >> (64 - ORIGIN_BITS))
    }

    /// The smallest id minted at or after `unix_ms`: a lower bound for range queries.
    pub fn first_at(unix_ms: u64) -> PriceId {
        PriceId(u128::from(unix_ms & ((1 << 48) - 1)) << 80)
    }

    pub fn unix_ms(self) -> u64 {
        (self.0 >> 80) as u64
    }

    /// Whether the version and variant bits are those of a minted id.
    pub fn is_well_formed(self) -> bool {
        (self.0 >> 76) & 0xf == 0x7 && (self.0 >> 62) & 0b11 == 0b10
    }

    /// Whether `origin` is the address this id was minted for.
    pub fn is_from(self, origin: Address) -> bool {
        self.0 & ORIGIN_MASK == Self::origin_bits(origin)
    }
}

impl fmt::Display for PriceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_be_bytes();
        let hex =
            |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
        write!(
            f,
            "{}-{}-{}-{}-{}",
            hex(0..4),
            hex(4..6),
            hex(6..8),
            hex(8..10),
            hex(10..16)
        )
    }
}

impl fmt::Debug for PriceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Everything a signature covers besides the network id. The same body signed by several nodes
/// carries the same digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PriceBody {
    pub id: PriceId,
    pub feed: Feed,
    pub price: Price,
    pub decimals: u8,
    pub observed_at_ms: u64,
}

impl PriceBody {
    /// The exact bytes that are hashed and signed (105 bytes, big-endian), which equal Solidity's
    /// `abi.encodePacked(bytes16 DOMAIN, bytes32 networkId, uint128 id, bytes16 feed, uint128 price,
    /// uint8 decimals, uint64 observedAtMs)`.
    pub fn signed_bytes(&self, network_id: &[u8; 32]) -> [u8; SIGNED_LEN] {
        let mut out = [0u8; SIGNED_LEN];
        let parts: [&[u8]; 7] = [
            &DOMAIN,
            network_id,
            &self.id.0.to_be_bytes(),
            &self.feed.padded(),
            &self.price.0.to_be_bytes(),
            &[self.decimals],
            &self.observed_at_ms.to_be_bytes(),
        ];
        let mut at = 0;
        for part in parts {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        out
    }

    /// keccak256 of the signed bytes: what each signature signs.
    pub fn digest(&self, network_id: &[u8; 32]) -> [u8; 32] {
        self.digest_by(network_id, &Recover)
    }

    /// [`PriceBody::digest`], hashed by a node's `check` (which may share a memo of it).
    pub(crate) fn digest_by(&self, network_id: &[u8; 32], check: &dyn SignatureCheck) -> [u8; 32] {
        check.keccak(&self.signed_bytes(network_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_strings_exactly() {
        let p = |s| Price::parse_decimal(s, 8);
        assert_eq!(p("3012.45"), Ok(Price(301_245_000_000)));
        assert_eq!(p("3012"), Ok(Price(301_200_000_000)));
        assert_eq!(p(".5"), Ok(Price(50_000_000)));
        assert_eq!(p("0.000000015"), Ok(Price(2)));
        assert_eq!(p("0.000000014999"), Ok(Price(1)));
        assert_eq!(p(" 1.1 "), Ok(Price(110_000_000)));
        for bad in ["", ".", "-1", "1e3", "1.2.3", "NaN", "1,5", "+1", "0x10"] {
            assert!(
                matches!(p(bad), Err(ParsePriceError::NotDecimal(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            p("99999999999999999999999999999999999999"),
            Err(ParsePriceError::TooLarge(_))
        ));
        assert_eq!(
            Price::parse_decimal("1", 39),
            Err(ParsePriceError::Decimals(39))
        );
    }

    #[test]
    fn deviation_and_median() {
        let reference = Price(10_000);
        assert!(Price(10_100).within_bps(reference, 100));
        assert!(Price(9_900).within_bps(reference, 100));
        assert!(!Price(10_101).within_bps(reference, 100));
        assert!(!Price(u128::MAX).within_bps(reference, 100));
        assert_eq!(Price::median(vec![]), None);
        assert_eq!(
            Price::median(vec![Price(5), Price(1), Price(3)]),
            Some(Price(3))
        );
        assert_eq!(
            Price::median(vec![Price(4), Price(1), Price(3), Price(9)]),
            Some(Price(3))
        );
        assert_eq!(Price(301_245_000_000).display(8), "3012.45000000");
    }

    #[test]
    fn ids_are_sortable_and_bound_to_their_origin() {
        let a = Address([0xab; 20]);
        let b = Address([0xcd; 20]);
        let first = PriceId::mint(1_700_000_000_000, 1, a);
        let later = PriceId::mint(1_700_000_000_001, 0, b);
        assert!(first < later);
        assert!(first.is_well_formed() && later.is_well_formed());
        assert_eq!(first.unix_ms(), 1_700_000_000_000);
        assert!(first.is_from(a) && !first.is_from(b));
        assert_ne!(first, PriceId::mint(1_700_000_000_000, 2, a));
        assert_ne!(first, PriceId::mint(1_700_000_000_000, 1, b));
        assert!(PriceId::first_at(1_700_000_000_000) <= first);
        assert!(PriceId::first_at(1_700_000_000_001) > first);
        assert!(!PriceId(0).is_well_formed());
    }

    #[test]
    fn feed_names_are_checked() {
        assert_eq!(Feed::eth_usd().as_str(), "ETH/USD");
        assert_eq!(Feed::new(""), Err(FeedError::Length(0)));
        assert_eq!(Feed::new("ETH USD"), Err(FeedError::NotPrintable));
        let mut padded = Feed::eth_usd().padded();
        assert!(Feed::from_padded(padded).is_ok());
        padded[10] = b'X';
        assert_eq!(Feed::from_padded(padded), Err(FeedError::NotPrintable));
    }
}

//! The exchanges a node asks for the ETH/USD price: Coinbase, CoinGecko and Kraken over HTTPS
//! (reqwest, rustls), each base URL configurable for proxies and tests. Each request has a timeout
//! and is retried with backoff; prices are parsed from the exchanges' decimal text into the
//! fixed-point type, never through f64. A source that fails says which and why; none makes up a
//! price. The median and the minimum number of answers are the protocol's rules, not this file's.

use std::fmt;
use std::time::Duration;

use protocol::Price;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exchange {
    Coinbase,
    CoinGecko,
    Kraken,
}

impl Exchange {
    pub const ALL: [Exchange; 3] = [Exchange::Coinbase, Exchange::CoinGecko, Exchange::Kraken];

    pub fn default_base_url(self) -> &'static str {
        match self {
            Exchange::Coinbase => "https://api.coinbase.com",
            Exchange::CoinGecko => "https://api.coingecko.com",
            Exchange::Kraken => "https://api.kraken.com",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Exchange::Coinbase => "/v2/exchange-rates?currency=ETH",
            Exchange::CoinGecko => "/api/v3/simple/price?ids=ethereum&vs_currencies=usd",
            Exchange::Kraken => "/0/public/Ticker?pair=ETHUSD",
        }
    }

    /// The ETH/USD price as the exchange wrote it, digits and all.
    fn price_text(self, body: &[u8]) -> Result<String, String> {
        let json = |e: serde_json::Error| format!("unexpected JSON: {e}");
        match self {
            Exchange::Coinbase => {
                let reply: CoinbaseReply = serde_json::from_slice(body).map_err(json)?;
                Ok(reply.data.rates.usd)
            }
            Exchange::CoinGecko => {
                let reply: CoinGeckoReply = serde_json::from_slice(body).map_err(json)?;
                // A JSON number: its literal text, so no digit is lost to f64.
                Ok(reply.ethereum.usd.get().to_owned())
            }
            Exchange::Kraken => {
                let reply: KrakenReply = serde_json::from_slice(body).map_err(json)?;
                if !reply.error.is_empty() {
                    return Err(format!("Kraken reports {:?}", reply.error));
                }
                let ticker = reply
                    .result
                    .into_values()
                    .next()
                    .ok_or("Kraken returned no ticker")?;
                ticker
                    .c
                    .into_iter()
                    .next()
                    .ok_or_else(|| "Kraken's ticker has no last trade".to_owned())
            }
        }
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Deserialize)]
struct CoinbaseReply {
    data: CoinbaseData,
}
#[derive(Deserialize)]
struct CoinbaseData {
    rates: CoinbaseRates,
}
#[derive(Deserialize)]
struct CoinbaseRates {
    #[serde(rename = "USD")]
    usd: String,
}
#[derive(Deserialize)]
struct CoinGeckoReply {
    ethereum: CoinGeckoPrice,
}
#[derive(Deserialize)]
struct CoinGeckoPrice {
    usd: Box<RawValue>,
}
#[derive(Deserialize)]
struct KrakenReply {
    error: Vec<String>,
    #[serde(default)]
    result: std::collections::BTreeMap<String, KrakenTicker>,
}
#[derive(Deserialize)]
struct KrakenTicker {
    /// Last trade: [price, lot volume].
    c: Vec<String>,
}

/// Why a source gave no price this time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("{0}")]
    Body(String),
    #[error("price {text:?} is not a plain decimal number: {why}")]
    Price { text: String, why: String },
}

/// One exchange and where to reach it.
#[derive(Debug, Clone)]
pub struct Source {
    pub exchange: Exchange,
    pub base_url: String,
}

impl Source {
    /// One source for every exchange, each at the base URL `url` gives it.
    pub fn every(url: impl Fn(Exchange) -> String) -> Vec<Source> {
        Exchange::ALL
            .iter()
            .map(|&exchange| Source {
                exchange,
                base_url: url(exchange),
            })
            .collect()
    }
}

/// Attempts after a failed request, unless [`Sources::with_retries`] says otherwise: a passing
/// error is tried again, an exchange that is down is not asked all interval long.
const RETRIES: u32 = 2;

#[derive(Debug, Clone)]
pub struct Sources {
    client: reqwest::Client,
    sources: Vec<Source>,
    timeout: Duration,
    retries: u32,
    decimals: u8,
}

/// What one round of asking found.
#[derive(Debug, Default)]
pub struct Fetched {
    pub answered: Vec<(Exchange, Price)>,
    pub failed: Vec<(Exchange, SourceError)>,
}

impl Sources {
    /// `timeout` per request; two more attempts after a failure, waiting 250 ms, then 500 ms.
    pub fn new(sources: Vec<Source>, timeout: Duration, decimals: u8) -> Sources {
        let client = reqwest::Client::builder()
            .user_agent(concat!("price-oracle/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in");
        Sources {
            client,
            sources,
            timeout,
            retries: RETRIES,
            decimals,
        }
    }

    /// `retries` more attempts after a failure, waiting 250 ms, 500 ms, ...
    pub fn with_retries(mut self, retries: u32) -> Sources {
        self.retries = retries;
        self
    }

    /// Asks every source at once.
    pub async fn fetch(&self) -> Fetched {
        let asks = self
            .sources
            .iter()
            .map(|source| async move { (source.exchange, self.ask_with_retries(source).await) });
        let mut fetched = Fetched::default();
        for (exchange, result) in futures_util::future::join_all(asks).await {
            match result {
                Ok(price) => fetched.answered.push((exchange, price)),
                Err(error) => fetched.failed.push((exchange, error)),
            }
        }
        fetched
    }

    async fn ask_with_retries(&self, source: &Source) -> Result<Price, SourceError> {
        let mut attempt = 0;
        loop {
            match self.ask(source).await {
                // A price that does not parse will not parse on a retry either.
                Err(error)
                    if attempt < self.retries && !matches!(error, SourceError::Price { .. }) =>
                {
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    async fn ask(&self, source: &Source) -> Result<Price, SourceError> {
        let url = format!(
            "{}{}",
            source.base_url.trim_end_matches('/'),
            source.exchange.path()
        );
        let response = self
            .client
            .get(&url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        if !response.status().is_success() {
            return Err(SourceError::Status(response.status().as_u16()));
        }
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        let text = source
            .exchange
            .price_text(&body)
            .map_err(SourceError::Body)?;
        Price::parse_decimal(&text, self.decimals).map_err(|why| SourceError::Price {
            text,
            why: why.to_string(),
        })
    }

    fn transport(&self, error: reqwest::Error) -> SourceError {
        if error.is_timeout() {
            SourceError::Timeout(self.timeout)
        } else if error.is_connect() {
            SourceError::Connect(crate::with_causes(&error))
        } else {
            SourceError::Body(crate::with_causes(&error))
        }
    }
}

//! The bodies of records: events and configs, little-endian.

use crate::codec::{Reader, put_len, put_u128};
use crate::config::{Config, Signers};
use crate::crypto::{Address, Signature};
use crate::io::{Event, HeartbeatRow, MessageRef, WriteOutcome};
use crate::price::{Feed, Price, PriceId};

pub(super) use crate::codec::put_u64;

/// Appends a record of `kind` whose body `body` writes, behind its length.
pub(super) fn frame(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    body(out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

pub(super) fn put_fed(out: &mut Vec<u8>, now: u64, event: &Event) {
    frame(out, 1, |out| {
        put_u64(out, now);
        put_event(out, event);
    });
}

fn put_event(out: &mut Vec<u8>, event: &Event) {
    match event {
        Event::TimerDue => out.push(0),
        Event::PricesFetched { answered } => {
            out.push(1);
            put_len(out, answered.len());
            answered.iter().for_each(|p| put_u128(out, p.0));
        }
        Event::Gossip { message, bytes } => {
            out.push(2);
            put_u64(out, message.token);
            put_len(out, bytes.len());
            out.extend_from_slice(bytes);
        }
        Event::Signed { id, signature } => {
            out.push(3);
            put_u128(out, id.0);
            out.extend_from_slice(&signature.0);
        }
        Event::DatabaseRead { heartbeats, stored } => {
            out.push(4);
            put_len(out, heartbeats.len());
            for row in heartbeats {
                out.extend_from_slice(&row.node.0);
                put_u64(out, row.age_ms);
            }
            put_len(out, stored.len());
            stored.iter().for_each(|id| put_u128(out, id.0));
        }
        Event::DatabaseUnreachable => out.push(5),
        Event::WriteFinished { id, outcome } => {
            out.push(6);
            put_u128(out, id.0);
            out.push(*outcome as u8);
        }
        Event::PeersChanged { count } => {
            out.push(7);
            put_u64(out, *count as u64);
        }
    }
}

pub(super) fn take_event(r: &mut Reader) -> Result<Event, &'static str> {
    Ok(match r.u8()? {
        0 => Event::TimerDue,
        1 => Event::PricesFetched {
            answered: r.list(16, |r| Ok(Price(r.u128()?)))?,
        },
        2 => {
            let token = r.u64()?;
            let len = r.len(1)?;
            Event::Gossip {
                message: MessageRef { token },
                bytes: r.bytes(len)?.to_vec(),
            }
        }
        3 => Event::Signed {
            id: PriceId(r.u128()?),
            signature: Signature(r.take()?),
        },
        4 => Event::DatabaseRead {
            heartbeats: r.list(28, |r| {
                Ok(HeartbeatRow {
                    node: Address(r.take()?),
                    age_ms: r.u64()?,
                })
            })?,
            stored: r.list(16, |r| Ok(PriceId(r.u128()?)))?,
        },
        5 => Event::DatabaseUnreachable,
        6 => Event::WriteFinished {
            id: PriceId(r.u128()?),
            outcome: match r.u8()? {
                0 => WriteOutcome::Inserted,
                1 => WriteOutcome::AlreadyPresent,
                2 => WriteOutcome::Failed,
                _ => return Err("unknown write outcome"),
            },
        },
        7 => Event::PeersChanged {
            count: r.u64()? as usize,
        },
        _ => return Err("unknown event"),
    })
}

/// Every numeric setting of [`Config`], written and read in this order. The destructuring
/// fails to compile when a setting is added and not listed here, so a recording cannot
/// silently replay under a default.
macro_rules! numeric_settings {
    ($($field:ident: $ty:ty),* $(,)?) => {
        pub(super) fn put_config(out: &mut Vec<u8>, config: &Config) {
            let Config { network, feed, signers, committee, $($field),* } = config;
            put_len(out, network.len());
            out.extend_from_slice(network.as_bytes());
            out.extend_from_slice(&feed.padded());
            match signers {
                Signers::Open => put_len(out, u32::MAX as usize),
                Signers::Allowlist(list) => {
                    put_len(out, list.len());
                    list.iter().for_each(|a| out.extend_from_slice(&a.0));
                }
            }
            put_u64(out, committee.map_or(u64::MAX, |c| c as u64));
            $(put_u64(out, *$field as u64);)*
        }

        pub(super) fn take_config(r: &mut Reader) -> Result<Config, &'static str> {
            let len = r.len(1)?;
            let network = std::str::from_utf8(r.bytes(len)?).map_err(|_| "network name")?;
            let feed = Feed::from_padded(r.take()?).map_err(|_| "feed")?;
            let signers = match r.u32()? {
                u32::MAX => Signers::Open,
                count => {
                    let count = r.check_len(count as usize, 20)?;
                    let members: Result<Vec<Address>, _> =
                        (0..count).map(|_| r.take().map(Address)).collect();
                    Signers::allowlist(members?)
                }
            };
            let mut config = Config::new(network, feed, signers);
            config.committee = match r.u64()? {
                u64::MAX => None,
                c => Some(usize::try_from(c).map_err(|_| "committee")?),
            };
            $(config.$field = <$ty>::try_from(r.u64()?).map_err(|_| stringify!($field))?;)*
            Ok(config)
        }
    };
}

numeric_settings!(
    decimals: u8,
    quorum: usize,
    cosign_step_ms: u64,
    price_interval_ms: u64,
    observe_interval_ms: u64,
    deviation_bps: u32,
    max_deviation_bps: u32,
    max_age_ms: u64,
    max_skew_ms: u64,
    reference_max_age_ms: u64,
    min_sources: usize,
    min_peers: usize,
    write_delay_ms: u64,
    heartbeat_interval_ms: u64,
    heartbeat_stale_ms: u64,
    writer_term_ms: u64,
    backup_writers: usize,
    backup_step_ms: u64,
    write_retry_ms: u64,
    database_timeout_ms: u64,
    retransmit_after_ms: u64,
    max_retransmits: u32,
    ready_ttl_ms: u64,
    max_prices: usize,
    max_pending_per_origin: usize,
);

//! `runtime verify`: every stored row checked with `protocol::audit`, the same check the protocol
//! and the simulation use, reading each row exactly as stored (a signer listed twice stays twice),
//! and each id counted: the primary key that should keep ids unique is not taken on trust.

use std::collections::BTreeMap;

use protocol::{Config, PriceId};

use crate::store::{Query, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub checked: usize,
    pub failures: Vec<Failure>,
}

/// Checks the rows observed from `since_ms` on (or only `id`) against `config`'s signer list,
/// quorum and network id.
pub async fn verify(
    store: &Store,
    config: &Config,
    since_ms: u64,
    id: Option<PriceId>,
) -> Result<Summary, StoreError> {
    let mut summary = Summary::default();
    let query = Query {
        since_ms,
        ..Query::default()
    };
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for record in store.records(&query, id).await? {
        summary.checked += 1;
        *stored.entry(record.id.clone()).or_default() += 1;
        let reason = match record.signed_parts() {
            Err(error) => Some(format!("unreadable: {error}")),
            Ok(parts) => protocol::audit(
                config,
                &parts.network_id,
                &parts.body,
                parts.origin,
                &parts.signatures,
            )
            .err()
            .map(|flaw| flaw.to_string()),
        };
        if let Some(reason) = reason {
            summary.failures.push(Failure {
                id: record.id,
                reason,
            });
        }
    }
    for (id, times) in stored.into_iter().filter(|&(_, times)| times > 1) {
        let reason = format!("stored {times} times: each price id must be stored at most once");
        summary.failures.push(Failure { id, reason });
    }
    Ok(summary)
}

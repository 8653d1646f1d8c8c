//! The store on PostgreSQL (tokio-postgres). Columns go over the wire as text and are cast in SQL,
//! so prices stay exact (`numeric(39,0)`) with no extra type crates.

use protocol::{Address, HeartbeatRow, PriceId, WriteOutcome};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::record::parse_id;
use super::{Query, Record, StoreError};

/// The schema, applied at every start; `CREATE ... IF NOT EXISTS` throughout.
const SCHEMA: &str = include_str!("../../../init.sql");
/// Serialises schema changes between nodes starting against one database at once.
const SCHEMA_LOCK: i64 = 0x7072_6963_6573;

/// How long connecting may take before the call fails (and the protocol retries later).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection that comes back: when it is lost, the next call connects again. Calls made while
/// the database is away fail, and the node retries them (writes with backoff, reads every
/// heartbeat), so nothing pending is lost.
pub struct Postgres {
    url: String,
    schema: Option<String>,
    client: Mutex<Option<Arc<Client>>>,
}

impl Postgres {
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Postgres, StoreError> {
        let postgres = Postgres::open(url, schema).await?;
        let client = postgres.client().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        let applied = client.batch_execute(SCHEMA).await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&SCHEMA_LOCK])
            .await?;
        applied?;
        Ok(postgres)
    }

    /// Connects and changes nothing: what SELECT rights alone allow (an auditor's).
    pub async fn open(url: &str, schema: Option<&str>) -> Result<Postgres, StoreError> {
        let postgres = Postgres {
            url: url.to_owned(),
            schema: schema.map(str::to_owned),
            client: Mutex::new(None),
        };
        postgres.client().await?;
        Ok(postgres)
    }

    /// The live connection, or a new one.
    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        *slot = None;
        let connecting = tokio_postgres::connect(&self.url, NoTls);
        let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| StoreError::ConnectTimeout(CONNECT_TIMEOUT))??;
        tokio::spawn(async move {
            // A lost connection shows as a closed client on the next call.
            let _ = connection.await;
        });
        if let Some(schema) = &self.schema {
            let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {quoted}; SET search_path TO {quoted}"
                ))
                .await?;
        }
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    pub async fn heartbeat(&self, node: Address, name: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO heartbeats (node, name, beat_at) VALUES ($1::text, $2::text, now())
                 ON CONFLICT (node) DO UPDATE SET name = excluded.name, beat_at = excluded.beat_at",
                &[&node.to_string(), &name],
            )
            .await?;
        Ok(())
    }

    pub async fn read(
        &self,
        stored_since: Option<PriceId>,
    ) -> Result<(Vec<HeartbeatRow>, Vec<PriceId>), StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT node, greatest(0, (extract(epoch FROM now() - beat_at) * 1000))::int8
                 FROM heartbeats",
                &[],
            )
            .await?;
        let mut heartbeats = Vec::with_capacity(rows.len());
        for row in rows {
            let node: String = row.get(0);
            let age: i64 = row.get(1);
            match Address::parse(&node) {
                Ok(node) => heartbeats.push(HeartbeatRow {
                    node,
                    age_ms: age as u64,
                }),
                Err(error) => {
                    return Err(StoreError::Corrupt {
                        id: node,
                        what: format!("heartbeat node: {error}"),
                    });
                }
            }
        }
        let Some(since) = stored_since else {
            return Ok((heartbeats, Vec::new()));
        };
        let rows = client
            .query(
                "SELECT id::text FROM prices WHERE id >= $1::text::uuid ORDER BY id",
                &[&since.to_string()],
            )
            .await?;
        let stored = rows
            .iter()
            .filter_map(|row| parse_id(row.get::<_, &str>(0)))
            .collect();
        Ok((heartbeats, stored))
    }

    pub async fn insert(&self, r: Record) -> Result<WriteOutcome, StoreError> {
        let inserted = self
            .client()
            .await?
            .execute(
                "INSERT INTO prices (id, network_id, feed, price_units, decimals, observed_at_ms,
                     origin, signatures, signer_count, quorum, last_signed_at, writer)
                 VALUES ($1::text::uuid, $2::bytea, $3::text, $4::text::numeric, $5::int2,
                     $6::int8, $7::text, $8::text::jsonb, $9::int2, $10::int2,
                     to_timestamp($11::int8 / 1000.0), $12::text)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &r.id,
                    &r.network_id,
                    &r.feed,
                    &r.price_units,
                    &r.decimals,
                    &r.observed_at_ms,
                    &r.origin,
                    &r.signatures,
                    &r.signer_count,
                    &r.quorum,
                    &r.last_signed_at_ms,
                    &r.writer,
                ],
            )
            .await?;
        Ok(match inserted {
            0 => WriteOutcome::AlreadyPresent,
            _ => WriteOutcome::Inserted,
        })
    }

    pub async fn get(&self, id: PriceId) -> Result<Option<Record>, StoreError> {
        let query = format!("{SELECT_RECORD} WHERE id = $1::text::uuid");
        let row = self
            .client()
            .await?
            .query_opt(&query, &[&id.to_string()])
            .await?;
        Ok(row.as_ref().map(record))
    }

    pub async fn records(&self, query: &Query) -> Result<Vec<Record>, StoreError> {
        let placeholder: fn(usize) -> String = |n| match n {
            1 => "$1::text".to_owned(),
            _ => format!("${n}::int8"),
        };
        let stored_at: (&str, fn(String) -> String) =
            ("inserted_at", |p| format!("to_timestamp({p} / 1000.0)"));
        let sql = format!("{SELECT_RECORD}{}", query.sql(placeholder, stored_at));
        let (since, before, limit) = (
            query.since_ms as i64,
            query.before_ms as i64,
            query.limit as i64,
        );
        let rows = self
            .client()
            .await?
            .query(&sql, &[&query.feed, &since, &before, &limit])
            .await?;
        Ok(rows.iter().map(record).collect())
    }
}

const SELECT_RECORD: &str = "SELECT id::text, network_id, feed, price_units::text, decimals,
    observed_at_ms, origin, signatures::text, signer_count, quorum,
    (extract(epoch FROM last_signed_at) * 1000)::int8, writer,
    (extract(epoch FROM inserted_at) * 1000)::int8
    FROM prices";

fn record(row: &tokio_postgres::Row) -> Record {
    Record {
        id: row.get(0),
        network_id: row.get(1),
        feed: row.get(2),
        price_units: row.get(3),
        decimals: row.get(4),
        observed_at_ms: row.get(5),
        origin: row.get(6),
        signatures: row.get(7),
        signer_count: row.get(8),
        quorum: row.get(9),
        last_signed_at_ms: row.get(10),
        writer: row.get(11),
        inserted_at_ms: row.get(12),
    }
}

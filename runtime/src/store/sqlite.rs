//! The store on an embedded SQLite file (rusqlite, bundled), for a machine with nothing installed.
//! SQLite calls block, so each runs on tokio's blocking pool, one at a time.

use std::path::Path;
use std::sync::{Arc, Mutex};

use protocol::{Address, HeartbeatRow, PriceId, WriteOutcome};
use rusqlite::{Connection, OptionalExtension, params};

use super::record::parse_id;
use super::{Query, Record, StoreError};

const SCHEMA: &str = include_str!("sqlite.sql");
const NOW_MS: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

pub struct Sqlite {
    connection: Arc<Mutex<Connection>>,
}

impl Sqlite {
    pub async fn open(path: &Path) -> Result<Sqlite, StoreError> {
        let path = path.to_owned();
        let connection = blocking(move || {
            let connection = Connection::open(path)?;
            connection.busy_timeout(std::time::Duration::from_secs(5))?;
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.execute_batch(SCHEMA)?;
            Ok(connection)
        })
        .await?;
        Ok(Sqlite {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Opens an existing database file read-only, changing nothing.
    pub async fn open_read_only(path: &Path) -> Result<Sqlite, StoreError> {
        let path = path.to_owned();
        let connection = blocking(move || {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
            Ok(Connection::open_with_flags(path, flags)?)
        })
        .await?;
        Ok(Sqlite {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = self.connection.clone();
        blocking(move || {
            let connection = connection
                .lock()
                .map_err(|_| StoreError::Worker("a previous call panicked".into()))?;
            f(&connection)
        })
        .await
    }

    pub async fn heartbeat(&self, node: Address, name: &str) -> Result<(), StoreError> {
        let (node, name) = (node.to_string(), name.to_owned());
        self.with(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO heartbeats (node, name, beat_at_ms) VALUES (?1, ?2, {NOW_MS})
                     ON CONFLICT (node) DO UPDATE SET name = excluded.name,
                         beat_at_ms = excluded.beat_at_ms"
                ),
                params![node, name],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn read(
        &self,
        stored_since: Option<PriceId>,
    ) -> Result<(Vec<HeartbeatRow>, Vec<PriceId>), StoreError> {
        self.with(move |c| {
            let mut query = c.prepare(&format!(
                "SELECT node, max(0, {NOW_MS} - beat_at_ms) FROM heartbeats"
            ))?;
            let rows = query.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let mut heartbeats = Vec::new();
            for row in rows {
                let (node, age) = row?;
                let node = Address::parse(&node).map_err(|error| StoreError::Corrupt {
                    id: node.clone(),
                    what: format!("heartbeat node: {error}"),
                })?;
                heartbeats.push(HeartbeatRow {
                    node,
                    age_ms: age as u64,
                });
            }
            let Some(since) = stored_since else {
                return Ok((heartbeats, Vec::new()));
            };
            let mut query = c.prepare("SELECT id FROM prices WHERE id >= ?1 ORDER BY id")?;
            let ids = query.query_map([since.to_string()], |row| row.get::<_, String>(0))?;
            let mut stored = Vec::new();
            for id in ids {
                stored.extend(parse_id(&id?));
            }
            Ok((heartbeats, stored))
        })
        .await
    }

    pub async fn insert(&self, r: Record) -> Result<WriteOutcome, StoreError> {
        self.with(move |c| {
            let inserted = c.execute(
                "INSERT INTO prices (id, network_id, feed, price_units, decimals, observed_at_ms,
                     origin, signatures, signer_count, quorum, last_signed_at_ms, writer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO NOTHING",
                params![
                    r.id,
                    r.network_id,
                    r.feed,
                    r.price_units,
                    r.decimals,
                    r.observed_at_ms,
                    r.origin,
                    r.signatures,
                    r.signer_count,
                    r.quorum,
                    r.last_signed_at_ms,
                    r.writer
                ],
            )?;
            Ok(match inserted {
                0 => WriteOutcome::AlreadyPresent,
                _ => WriteOutcome::Inserted,
            })
        })
        .await
    }

    pub async fn get(&self, id: PriceId) -> Result<Option<Record>, StoreError> {
        self.with(move |c| {
            let query = format!("{SELECT_RECORD} WHERE id = ?1");
            Ok(c.query_row(&query, [id.to_string()], record).optional()?)
        })
        .await
    }

    pub async fn records(&self, query: &Query) -> Result<Vec<Record>, StoreError> {
        let sql = format!(
            "{SELECT_RECORD}{}",
            query.sql(|n| format!("?{n}"), ("inserted_at_ms", |p| p))
        );
        let feed = query.feed.clone();
        let (since, before, limit) = (
            query.since_ms as i64,
            query.before_ms as i64,
            query.limit as i64,
        );
        self.with(move |c| {
            let mut statement = c.prepare(&sql)?;
            let rows = statement.query_map(params![feed, since, before, limit], record)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

const SELECT_RECORD: &str = "SELECT id, network_id, feed, price_units, decimals, observed_at_ms,
    origin, signatures, signer_count, quorum, last_signed_at_ms, writer, inserted_at_ms
    FROM prices";

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        id: row.get(0)?,
        network_id: row.get(1)?,
        feed: row.get(2)?,
        price_units: row.get(3)?,
        decimals: row.get(4)?,
        observed_at_ms: row.get(5)?,
        origin: row.get(6)?,
        signatures: row.get(7)?,
        signer_count: row.get(8)?,
        quorum: row.get(9)?,
        last_signed_at_ms: row.get(10)?,
        writer: row.get(11)?,
        inserted_at_ms: row.get(12)?,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|error| StoreError::Worker(error.to_string()))?
}

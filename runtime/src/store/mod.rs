//! Where prices and heartbeats are kept: PostgreSQL when a database URL is given, otherwise an
//! embedded SQLite file. Both have the same semantics, shown by one conformance suite
//! (`tests/store.rs`): a price id is stored at most once (`ON CONFLICT (id) DO NOTHING`), a row
//! below its quorum is refused by the schema, prices are exact, heartbeats are stamped by the
//! database's own clock.

mod postgres;
mod record;
mod sqlite;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use protocol::{Address, Config, HeartbeatRow, PriceId, PriceRow, WriteOutcome};

pub use postgres::Postgres;
pub use record::{Record, SignedParts, parse_id};
pub use sqlite::Sqlite;

/// One database, every call bounded in time: a connection that hangs (a black-holed network, a
/// locked table) fails the call after the timeout instead of holding the node's work forever.
pub struct Store {
    backend: Backend,
    timeout: Duration,
}

enum Backend {
    Postgres(Postgres),
    Sqlite(Sqlite),
}

/// How long a call may take unless [`Store::with_timeout`] says otherwise: the node's default.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(Config::DEFAULT_DATABASE_TIMEOUT_MS);

/// Which rows to read: observed (or, `by_storage`, stored) in `[since_ms, before_ms)`, of `feed`
/// if given, at most `limit`, newest first (or oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub feed: Option<String>,
    pub since_ms: u64,
    pub before_ms: u64,
    pub limit: u64,
    pub newest_first: bool,
    /// The moments and the order are the rows' storage times, not their observation times.
    pub by_storage: bool,
}

impl Default for Query {
    fn default() -> Query {
        Query {
            feed: None,
            since_ms: 0,
            before_ms: i64::MAX as u64,
            limit: i64::MAX as u64,
            newest_first: false,
            by_storage: false,
        }
    }
}

impl Query {
    /// The SQL after `FROM prices`, with `$1`..`$4` (feed or NULL, since, before, limit).
    /// `stored_at` is the backend's storage time column and how a unix-ms placeholder compares
    /// with it.
    fn sql(
        &self,
        placeholder: fn(usize) -> String,
        stored_at: (&str, fn(String) -> String),
    ) -> String {
        let order = if self.newest_first { "DESC" } else { "ASC" };
        let (column, moment): (&str, fn(String) -> String) = match self.by_storage {
            true => stored_at,
            false => ("observed_at_ms", |p| p),
        };
        format!(
            " WHERE ({p1} IS NULL OR feed = {p1}) AND {column} >= {p2} AND {column} < {p3}
              ORDER BY {column} {order}, id {order} LIMIT {p4}",
            p1 = placeholder(1),
            p2 = moment(placeholder(2)),
            p3 = moment(placeholder(3)),
            p4 = placeholder(4),
        )
    }
}

/// A stored row as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub price: PriceRow,
    /// The quorum the writer enforced.
    pub quorum: usize,
    pub inserted_at_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("PostgreSQL: {}", postgres_cause(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("row {id}: {what}")]
    Corrupt { id: String, what: String },
    #[error("the SQLite worker stopped: {0}")]
    Worker(String),
}

impl StoreError {
    /// The database could not be reached (refused, unreachable, timed out), as opposed to a
    /// database that answered with an error: worth waiting for.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::ConnectTimeout(_) | StoreError::Timeout(_) => true,
            StoreError::Postgres(error) => {
                let mut cause = std::error::Error::source(error);
                while let Some(inner) = cause {
                    if inner.is::<std::io::Error>() {
                        return true;
                    }
                    cause = inner.source();
                }
                false
            }
            _ => false,
        }
    }
}

/// What went wrong, in the server's words or with the underlying cause: tokio-postgres's own text
/// is only "db error" or "error connecting to server".
fn postgres_cause(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    crate::with_causes(error)
}

impl Store {
    /// Connects to PostgreSQL and applies `init.sql` (idempotent). `schema`, if given, is created
    /// and used instead of `public` (tests use one each, to run in parallel).
    pub async fn postgres(url: &str, schema: Option<&str>) -> Result<Store, StoreError> {
        let backend = Backend::Postgres(Postgres::connect(url, schema).await?);
        Ok(Store::new(backend))
    }

    /// Reads a database as it is, with no right but SELECT: no schema applied, nothing created,
    /// the embedded database opened read-only. For auditors (`runtime verify`).
    pub async fn read_only(postgres_url: Option<&str>, sqlite: &Path) -> Result<Store, StoreError> {
        let backend = match postgres_url {
            Some(url) => Backend::Postgres(Postgres::open(url, None).await?),
            None => Backend::Sqlite(Sqlite::open_read_only(sqlite).await?),
        };
        Ok(Store::new(backend))
    }

    /// Opens (creating if needed) an SQLite database file and applies its schema.
    pub async fn sqlite(path: &Path) -> Result<Store, StoreError> {
        Ok(Store::new(Backend::Sqlite(Sqlite::open(path).await?)))
    }

    fn new(backend: Backend) -> Store {
        Store {
            backend,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Bounds every call by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Store {
        self.timeout = timeout;
        self
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
    }

    /// Upserts this node's heartbeat row, stamped by the database's clock.
    pub async fn heartbeat(&self, node: Address, name: &str) -> Result<(), StoreError> {
        self.bounded(async {
            match &self.backend {
                Backend::Postgres(db) => db.heartbeat(node, name).await,
                Backend::Sqlite(db) => db.heartbeat(node, name).await,
            }
        })
        .await
    }

    /// Every heartbeat row with its age by the database's clock, and the ids stored from
    /// `stored_since` on (none if `None`): what `Action::ReadDatabase` asks for.
    pub async fn read(
        &self,
        stored_since: Option<PriceId>,
    ) -> Result<(Vec<HeartbeatRow>, Vec<PriceId>), StoreError> {
        self.bounded(async {
            match &self.backend {
                Backend::Postgres(db) => db.read(stored_since).await,
                Backend::Sqlite(db) => db.read(stored_since).await,
            }
        })
        .await
    }

    /// Inserts the price unless its id is stored already. After an error the price may or may not
    /// be stored (a timeout says nothing of the database's side); trying again is harmless.
    pub async fn insert(
        &self,
        price: &PriceRow,
        quorum: usize,
    ) -> Result<WriteOutcome, StoreError> {
        self.insert_record(Record::of(price, quorum)).await
    }

    /// Inserts a row as columns, as [`Store::insert`] does; the schema refuses malformed ones.
    pub async fn insert_record(&self, record: Record) -> Result<WriteOutcome, StoreError> {
        self.bounded(async {
            match &self.backend {
                Backend::Postgres(db) => db.insert(record).await,
                Backend::Sqlite(db) => db.insert(record).await,
            }
        })
        .await
    }

    /// Stored rows as they are, unparsed: the one `id`, or those `query` selects.
    pub async fn records(
        &self,
        query: &Query,
        id: Option<PriceId>,
    ) -> Result<Vec<Record>, StoreError> {
        self.bounded(async {
            Ok(match (&self.backend, id) {
                (Backend::Postgres(db), Some(id)) => db.get(id).await?.into_iter().collect(),
                (Backend::Sqlite(db), Some(id)) => db.get(id).await?.into_iter().collect(),
                (Backend::Postgres(db), None) => db.records(query).await?,
                (Backend::Sqlite(db), None) => db.records(query).await?,
            })
        })
        .await
    }

    pub async fn get(&self, id: PriceId) -> Result<Option<Row>, StoreError> {
        let found = self.records(&Query::default(), Some(id)).await?;
        found.into_iter().next().map(Record::into_row).transpose()
    }
}

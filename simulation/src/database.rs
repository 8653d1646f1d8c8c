//! The database host, with PostgreSQL's semantics for our two tables: a primary key on the price id
//! (`INSERT ... ON CONFLICT (id) DO NOTHING`, a second insert of an id is refused and recorded),
//! heartbeat upserts stamped by the database's own clock, outage windows (calls fail at once),
//! hangs (calls never answer), and answers that can be lost after a write was applied.

use std::collections::BTreeMap;

use protocol::{Address, HeartbeatRow, PriceId, PriceRow, WriteOutcome};

use crate::scenario::Database as Settings;

/// A stored row and when (simulated time) it landed.
#[derive(Debug, Clone)]
pub struct Row {
    pub price: PriceRow,
    pub inserted_at: u64,
}

pub struct Database {
    pub settings: Settings,
    /// Rows by id; more than one only in a database without the primary key.
    pub rows: BTreeMap<PriceId, Vec<Row>>,
    /// Each node's last heartbeat, by address: a sorted vector, as every node reads all of it
    /// every heartbeat interval.
    heartbeats: Vec<(Address, u64)>,
    down_until: u64,
    /// Calls arriving before this neither take effect nor answer (a black-holed connection).
    hung_until: u64,
    pub insert_attempts: u64,
    pub duplicates_blocked: u64,
}

/// The database was out of reach.
#[derive(Debug)]
pub struct Unreachable;

impl Database {
    pub fn new(settings: Settings) -> Database {
        Database {
            settings,
            rows: BTreeMap::new(),
            heartbeats: Vec::new(),
            down_until: 0,
            hung_until: 0,
            insert_attempts: 0,
            duplicates_blocked: 0,
        }
    }

    pub fn outage(&mut self, until: u64) {
        self.down_until = self.down_until.max(until);
    }

    pub fn hang(&mut self, until: u64) {
        self.hung_until = self.hung_until.max(until);
    }

    /// Whether a call arriving at `now` hangs.
    pub fn hangs(&self, now: u64) -> bool {
        now < self.hung_until
    }

    fn reachable(&mut self, now: u64) -> Result<(), Unreachable> {
        if now < self.down_until {
            return Err(Unreachable);
        }
        Ok(())
    }

    /// The database's own clock.
    fn clock(&self, now: u64) -> u64 {
        now.saturating_add_signed(self.settings.skew_ms)
    }

    pub fn heartbeat(&mut self, now: u64, node: Address) -> Result<(), Unreachable> {
        self.reachable(now)?;
        let at = self.clock(now);
        match self.heartbeats.binary_search_by_key(&node, |&(n, _)| n) {
            Ok(i) => self.heartbeats[i].1 = at,
            Err(i) => self.heartbeats.insert(i, (node, at)),
        }
        Ok(())
    }

    /// Every heartbeat row with its age, and the ids stored from `since` on.
    pub fn read(
        &mut self,
        now: u64,
        since: Option<PriceId>,
    ) -> Result<(Vec<HeartbeatRow>, Vec<PriceId>), Unreachable> {
        self.reachable(now)?;
        let clock = self.clock(now);
        let heartbeats = self
            .heartbeats
            .iter()
            .map(|&(node, at)| HeartbeatRow {
                node,
                age_ms: clock.saturating_sub(at),
            })
            .collect();
        let stored = match since {
            Some(since) => self.rows.range(since..).map(|(&id, _)| id).collect(),
            None => Vec::new(),
        };
        Ok((heartbeats, stored))
    }

    pub fn insert(&mut self, now: u64, price: PriceRow) -> Result<WriteOutcome, Unreachable> {
        self.reachable(now)?;
        self.insert_attempts += 1;
        let rows = self.rows.entry(price.message.body.id).or_default();
        if !rows.is_empty() && self.settings.primary_key {
            self.duplicates_blocked += 1;
            return Ok(WriteOutcome::AlreadyPresent);
        }
        rows.push(Row {
            price,
            inserted_at: now,
        });
        Ok(WriteOutcome::Inserted)
    }
}

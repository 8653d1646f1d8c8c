//! Everything the simulated nodes share: the clock and its agenda, the network, the database host,
//! the market, the memo of signature recoveries, and the observer. A run is one thread; whoever
//! borrows the world gives it back before calling anything that may borrow it again.

use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use protocol::{Address, Event, Signature, SignatureCheck};

use crate::agenda::Agenda;
use crate::database::Database;
use crate::hashed::HashedMap;
use crate::market::Market;
use crate::network::Fabric;
use crate::observe::Observer;
use crate::recording::Recording;
use crate::scenario::Scenario;

pub struct World {
    pub agenda: Agenda,
    pub fabric: Fabric,
    pub database: Database,
    pub observer: Observer,
    /// Answers from a node's own tasks (database, sources), fed on its next wake.
    pub local: Vec<Vec<Event>>,
    pub incarnations: Vec<u64>,
    /// Armed by a fault: the next node to write dies after the database applied it.
    pub crash_next_writer: Option<u64>,
    /// When a writer armed to crash died.
    pub writer_crashed_at: Option<u64>,
    /// (node, down for): nodes that must die now.
    pub kill_requests: Vec<(usize, u64)>,
    /// Each node's wall clock minus true time: its skew, plus the steps it took.
    pub wall_offsets: Vec<i64>,
    /// Until when the exchanges answer no fetch of each node.
    pub exchanges_down_until: Vec<u64>,
    /// When each node last went down, if ever.
    pub last_down_at: Vec<Option<u64>>,
    /// With `--record`: every node incarnation's flight recording.
    pub recordings: Vec<Recording>,
}

pub struct Shared {
    pub scenario: Scenario,
    pub market: Market,
    pub check: Arc<dyn SignatureCheck>,
    world: RefCell<World>,
    /// Simulated milliseconds since the start: the time of the job running.
    now: Cell<u64>,
}

impl Shared {
    pub fn new(scenario: Scenario, check: Arc<dyn SignatureCheck>) -> Shared {
        let n = scenario.params.nodes;
        let world = World {
            agenda: Agenda::new(n),
            fabric: Fabric::new(
                scenario.params.seed,
                scenario.network.clone(),
                (0..n).map(|node| !scenario.is_byzantine(node)).collect(),
            ),
            database: Database::new(scenario.database.clone()),
            observer: Observer::default(),
            local: vec![Vec::new(); n],
            incarnations: vec![0; n],
            crash_next_writer: None,
            writer_crashed_at: None,
            kill_requests: Vec::new(),
            wall_offsets: scenario.skew_ms.clone(),
            exchanges_down_until: vec![0; n],
            last_down_at: vec![None; n],
            recordings: Vec::new(),
        };
        Shared {
            market: Market::new(
                scenario.params.seed,
                scenario.params.duration_ms,
                scenario.sources.clone(),
            ),
            scenario,
            check,
            world: RefCell::new(world),
            now: Cell::new(0),
        }
    }

    pub fn world(&self) -> RefMut<'_, World> {
        self.world.borrow_mut()
    }

    /// Simulated milliseconds since the start.
    pub fn now(&self) -> u64 {
        self.now.get()
    }

    /// Moves the clock to the next job's time; it never goes back.
    pub fn advance(&self, to: u64) {
        debug_assert!(to >= self.now.get(), "the agenda runs in time order");
        self.now.set(to);
    }
}

/// (digest, signature)
type Recovery = ([u8; 32], [u8; 65]);

/// Recovery and hashing are pure functions of their input, so thousands of simulated nodes can
/// share one memo of them: each distinct signature is recovered, and each price's signed bytes and
/// ring place hashed, once per run, not once per node.
#[derive(Default)]
pub struct SharedRecovery {
    memo: Mutex<HashedMap<Recovery, Option<Address>>>,
    /// By the whole input: unlike digests and signatures, inputs are not hash outputs (a price's
    /// signed bytes all begin alike), so `HashedMap`'s first-words hashing would not do. Hashed
    /// with foldhash, not SipHash: every node asks it twice per price (its signed bytes and its
    /// ring position), and nobody outside the run chooses these inputs.
    hashes: Mutex<HashMap<Box<[u8]>, [u8; 32], foldhash::fast::FixedState>>,
}

impl SignatureCheck for SharedRecovery {
    fn is_by(&self, signature: &Signature, digest: &[u8; 32], signer: Address) -> bool {
        let key = (*digest, signature.0);
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        let recovered = *memo
            .entry(key)
            .or_insert_with(|| signature.recover(digest).map(|(address, _)| address));
        recovered == Some(signer)
    }

    fn keccak(&self, bytes: &[u8]) -> [u8; 32] {
        let mut hashes = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hash) = hashes.get(bytes) {
            return *hash;
        }
        let hash = protocol::keccak256(bytes);
        hashes.insert(bytes.into(), hash);
        hash
    }
}

/// The broken build for the checker's own test: every signature counts.
pub struct TrustEverything;

impl SignatureCheck for TrustEverything {
    fn is_by(&self, _: &Signature, _: &[u8; 32], _: Address) -> bool {
        true
    }
}

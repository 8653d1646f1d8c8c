//! The flight recorder: everything the node is fed, in `protocol::journal`'s format, written to
//! `<data-dir>/recordings/<name>.journal` so that `runtime replay` can replay any incident
//! exactly. Bounded: once the file holds half the limit it becomes `<name>.journal.old`
//! (replacing the one before) and a new file begins with a snapshot of the node, so the two
//! together stay within the limit and each replays alone. Recording never stops the node: a
//! write that fails is logged and ends the recording.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use protocol::journal::{Start, Tape};
use protocol::{Event, Io, Node};

pub struct Recorder {
    path: PathBuf,
    /// Bytes the two files may hold together.
    limit: u64,
    file: File,
    written: u64,
    tape: Tape,
    start: Start,
}

impl Recorder {
    /// Starts a recording of a node just created with `start`'s arguments, replacing the one a
    /// previous run of this node left as `.old` and keeping its last one there.
    pub fn create(dir: &Path, name: &str, limit: u64, start: Start) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.journal"));
        if path.exists() {
            std::fs::rename(&path, old(&path))?;
        }
        let mut recorder = Recorder {
            file: private(&path)?,
            path,
            limit,
            written: 0,
            tape: Tape::new(start.clone()),
            start,
        };
        recorder.flush()?;
        Ok(recorder)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Node::drive`, recorded; the record is written before this returns, so a node that dies
    /// leaves everything it handled on disk (in the page cache: a crash of the process loses
    /// nothing, one of the machine may lose the last moments).
    pub fn drive(
        &mut self,
        node: &mut Node,
        now: u64,
        event: Event,
        io: &mut impl Io,
    ) -> std::io::Result<()> {
        self.tape.drive(node, now, event, io);
        self.flush()?;
        if self.written >= self.limit / 2 {
            self.rotate(node)?;
        }
        Ok(())
    }

    /// Checks the last events too: for a node that stops.
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.tape.finish();
        self.flush()
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.write_all(&self.tape.bytes)?;
        self.written += self.tape.bytes.len() as u64;
        self.tape.bytes.clear();
        Ok(())
    }

    /// The current file, its last events checked, becomes the old one; a new one begins from
    /// the node as it is now.
    fn rotate(&mut self, node: &Node) -> std::io::Result<()> {
        self.finish()?;
        std::fs::rename(&self.path, old(&self.path))?;
        self.file = private(&self.path)?;
        self.written = 0;
        self.tape = Tape::resume(self.start.clone(), node);
        self.flush()
    }
}

fn old(path: &Path) -> PathBuf {
    path.with_extension("journal.old")
}

/// A new recording file only its owner may read: it holds the node's seed, which foretells the
/// node's gossip nonces.
fn private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

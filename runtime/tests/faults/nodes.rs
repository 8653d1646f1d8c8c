//! The node processes: the built `runtime` binary in its namespace, started, killed, stopped and
//! restarted with the same data folder; its JSON log read into one history stamped by this
//! test's clock; its peak memory and CPU time read from /proc.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use serde_json::Value;

/// Milliseconds since the Unix epoch by this test's clock (the database's clock too: same host).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One log line of one node, stamped when this test read it.
#[derive(Debug, Clone)]
pub struct Line {
    pub at_ms: u64,
    pub node: usize,
    /// The log event's message ("published", "quorum reached", ...), or the raw line if not JSON.
    pub message: String,
    /// "INFO", "WARN", ...; empty for a line that is not JSON.
    pub level: String,
    pub fields: Value,
}

impl Line {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }
}

/// Every node's log lines, in the order this test read them.
pub type History = Arc<Mutex<Vec<Line>>>;

/// What one run of a process used, read just before it was stopped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub peak_rss_kib: u64,
    pub cpu_s: f64,
}

pub struct Node {
    pub index: usize,
    namespace: String,
    arguments: Vec<String>,
    environment: Vec<(String, String)>,
    child: Option<Child>,
    /// One entry per ended run of this node.
    pub runs: Vec<Usage>,
}

impl Node {
    pub fn new(
        index: usize,
        namespace: String,
        arguments: Vec<String>,
        environment: Vec<(String, String)>,
    ) -> Node {
        Node {
            index,
            namespace,
            arguments,
            environment,
            child: None,
            runs: Vec::new(),
        }
    }

    /// Starts the process (`ip netns exec` execs it, so the child's pid is the node's).
    pub fn start(&mut self, history: &History) {
        assert!(self.child.is_none(), "node {} is running", self.index);
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.namespace,
                env!("CARGO_BIN_EXE_runtime"),
            ])
            .args(&self.arguments)
            .envs(self.environment.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info,libp2p=warn")
            .env("ORACLE_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a node");
        read_lines(self.index, child.stdout.take().unwrap(), history.clone());
        read_lines(self.index, child.stderr.take().unwrap(), history.clone());
        self.child = Some(child);
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_none())
    }

    /// Sends `signal` and waits for the exit; SIGKILL after 20 s if a gentler signal was ignored.
    pub fn stop(&mut self, signal: Signal) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        self.runs.push(usage(child.id()));
        let _ = nix::sys::signal::kill(pid, signal);
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {} ignored {signal} for 20 s", self.index);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Peak resident memory over its runs, and CPU seconds summed over them.
    pub fn total(&self) -> Usage {
        Usage {
            peak_rss_kib: self.runs.iter().map(|u| u.peak_rss_kib).max().unwrap_or(0),
            cpu_s: self.runs.iter().map(|u| u.cpu_s).sum(),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_lines(node: usize, from: impl std::io::Read + Send + 'static, history: History) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            let parsed: Option<Value> = serde_json::from_str(&line).ok();
            let fields = parsed
                .as_ref()
                .and_then(|v| v.get("fields").cloned())
                .unwrap_or(Value::Null);
            let message = fields
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or(line);
            let level = parsed
                .as_ref()
                .and_then(|v| v.get("level")?.as_str())
                .unwrap_or("")
                .to_owned();
            history.lock().unwrap().push(Line {
                at_ms: now_ms(),
                node,
                message,
                level,
                fields,
            });
        }
    });
}

/// Peak resident set (VmHWM) and user + system CPU time of a running process.
fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and
    // 13th after it, in clock ticks.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Usage {
        peak_rss_kib,
        cpu_s: (ticks(11) + ticks(12)) as f64 / per_second,
    }
}

/// Makes the node's key with `runtime keygen` and returns its address.
pub fn keygen(name: &str, data_dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["keygen", "--name", name, "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("runtime keygen");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

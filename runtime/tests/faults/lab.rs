//! The hosts: one network namespace per node, each with its own address on a bridge in a hub
//! namespace, where the test serves the database and the exchanges. Links are cut and thinned with
//! packet filter rules inside the namespaces, so nothing outside the test's own namespaces changes.

use std::net::SocketAddr;
use std::process::Command;

/// The hub's address on the bridge: the database relay and the exchanges listen here.
pub const HUB: &str = "10.99.0.1";
pub const DATABASE_PORT: u16 = 5432;
pub const EXCHANGES_PORT: u16 = 8080;
pub const GOSSIP_PORT: u16 = 4001;

/// Node `i`'s address on the bridge.
pub fn address(i: usize) -> String {
    format!("10.99.0.{}", 10 + i)
}

/// The namespaces of one test run; deleted on drop (their processes must be stopped first).
pub struct Lab {
    prefix: String,
    nodes: usize,
}

impl Lab {
    /// Creates the hub, the bridge and one namespace per node. Fails, saying so, on a machine that
    /// cannot create namespaces: this test never passes by skipping.
    pub fn create(nodes: usize) -> Lab {
        remove_leftovers();
        let lab = Lab {
            prefix: format!("oracle-faults-{}", std::process::id()),
            nodes,
        };
        if let Err(error) = try_run(&["ip", "netns", "add", &lab.hub()]) {
            panic!(
                "this test needs network namespaces (root, iproute2): `ip netns add` failed: \
                 {error}. It does not skip: run it where namespaces can be created."
            );
        }
        let hub = lab.hub();
        run(&["ip", "-n", &hub, "link", "set", "lo", "up"]);
        run(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"]);
        run(&[
            "ip",
            "-n",
            &hub,
            "addr",
            "add",
            &format!("{HUB}/24"),
            "dev",
            "br0",
        ]);
        run(&["ip", "-n", &hub, "link", "set", "br0", "up"]);
        for i in 0..nodes {
            let node = lab.node(i);
            let veth = format!("v{i}");
            run(&["ip", "netns", "add", &node]);
            run(&["ip", "-n", &node, "link", "set", "lo", "up"]);
            run(&[
                "ip", "-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0",
                "netns", &node,
            ]);
            run(&[
                "ip", "-n", &hub, "link", "set", &veth, "master", "br0", "up",
            ]);
            let cidr = format!("{}/24", address(i));
            run(&["ip", "-n", &node, "addr", "add", &cidr, "dev", "eth0"]);
            run(&["ip", "-n", &node, "link", "set", "eth0", "up"]);
        }
        lab
    }

    pub fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    pub fn node(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// A listener bound to `address` inside `namespace`. A socket belongs to the namespace it was
    /// made in, so a thread enters the namespace, binds, and ends; the socket is used from here.
    pub fn bind(&self, namespace: &str, address: SocketAddr) -> std::net::TcpListener {
        let path = format!("/run/netns/{namespace}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("the namespace exists");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("setns: entering a network namespace needs root");
            let listener = std::net::TcpListener::bind(address).expect("bind in the namespace");
            listener.set_nonblocking(true).unwrap();
            listener
        })
        .join()
        .unwrap()
    }

    /// Node `to` stops hearing node `from`: every packet from `from` is dropped on arrival, or
    /// `percent` of them.
    pub fn drop_from(&self, from: usize, to: usize, percent: u32) {
        let mut rule = vec!["-A", "INPUT", "-s"];
        let source = address(from);
        rule.push(&source);
        let probability = format!("{:.2}", f64::from(percent) / 100.0);
        if percent < 100 {
            rule.extend(["-m", "statistic", "--mode", "random", "--probability"]);
            rule.push(&probability);
        }
        rule.extend(["-j", "DROP"]);
        self.iptables(&self.node(to), &rule);
    }

    /// Both directions between every node of `a` and every node of `b`.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                self.drop_from(x, y, 100);
                self.drop_from(y, x, 100);
            }
        }
    }

    /// The database stops answering: its packets are dropped at the hub, so open connections
    /// hang rather than close, as a cable pulled out would do.
    pub fn cut_database(&self) {
        let port = DATABASE_PORT.to_string();
        self.iptables(
            &self.hub(),
            &["-A", "INPUT", "-p", "tcp", "--dport", &port, "-j", "DROP"],
        );
    }

    /// Every rule removed: the network is whole again.
    pub fn heal(&self) {
        self.iptables(&self.hub(), &["-F"]);
        for i in 0..self.nodes {
            self.iptables(&self.node(i), &["-F"]);
        }
    }

    fn iptables(&self, namespace: &str, rule: &[&str]) {
        let mut command = vec!["ip", "netns", "exec", namespace, "iptables", "-w"];
        command.extend(rule);
        if let Err(error) = try_run(&command) {
            panic!("{error}: this test needs iptables (Debian's iptables package) in namespaces");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let _ = try_run(&["ip", "netns", "del", &self.node(i)]);
        }
        let _ = try_run(&["ip", "netns", "del", &self.hub()]);
    }
}

/// Namespaces of earlier runs whose test process is gone (a run killed before its cleanup).
fn remove_leftovers() {
    let Ok(listing) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&listing.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("oracle-faults-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = try_run(&["ip", "netns", "del", name]);
        }
    }
}

fn run(command: &[&str]) {
    if let Err(error) = try_run(command) {
        panic!("{error}");
    }
}

fn try_run(command: &[&str]) -> Result<(), String> {
    let output = Command::new(command[0])
        .args(&command[1..])
        .output()
        .map_err(|e| format!("`{}` could not start: {e}", command.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            command.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

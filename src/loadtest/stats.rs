//! What the load generator measures: latency samples and their percentiles, errors by name, and
//! the server's CPU time and memory read from /proc when it runs on this machine.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// Latency samples in microseconds.
#[derive(Default)]
pub struct Latencies(Mutex<Vec<u64>>);

/// p50, p99 and max of a set of samples, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Spread {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    pub fn record_us(&self, us: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(us);
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Forgets the samples so far (a warm-up).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn spread(&self) -> Spread {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0;
        Spread { p50_ms: at(0.5), p99_ms: at(0.99), max_ms: at(1.0) }
    }
}

/// Errors by name (`http_503`, `timeout`, `bad_state`, ...).
#[derive(Default)]
pub struct Errors(Mutex<BTreeMap<String, u64>>);

impl Errors {
    pub fn add(&self, name: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(name.into()).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

/// The server process, read from /proc (Linux, same machine).
#[derive(Clone, Copy)]
pub struct Server {
    pid: u32,
    ticks_per_sec: f64,
}

impl Server {
    pub fn new(pid: u32) -> Server {
        // USER_HZ is 100 on every Linux this runs on; /proc reports CPU time in those ticks.
        Server { pid, ticks_per_sec: 100.0 }
    }

    /// User plus system CPU time so far, in milliseconds (children included, as the PeerJS
    /// server is one node process).
    pub fn cpu_ms(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = [11, 12].iter().filter_map(|i| f.get(*i)?.parse::<f64>().ok()).sum();
        Some(ticks * 1000.0 / self.ticks_per_sec)
    }

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_samples() {
        let l = Latencies::default();
        for us in 1..=100u64 {
            l.record_us(us * 1000);
        }
        let s = l.spread();
        assert_eq!((s.p50_ms, s.p99_ms, s.max_ms), (51.0, 99.0, 100.0));
        assert!(Server::new(std::process::id()).cpu_ms().is_some());
        assert!(Server::new(std::process::id()).rss_kib().is_some_and(|k| k > 0.0));
    }
}

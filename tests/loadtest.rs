//! `duet loadtest` against a real server, small: every phase runs and its figures add up (the
//! storm's sockets all connect, every call completes, every relayed candidate arrives), and the
//! server's CPU and memory are read from /proc.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, duet_bin};
use serde_json::Value;

#[test]
fn bad_shapes_are_refused_in_words() {
    let out = std::process::Command::new(duet_bin()).args(["loadtest", "--users", "2", "--online", "5"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--online (5) cannot exceed --users (2)"));
}

every_backend! {
    #[tokio::test]
    async fn every_phase_runs_and_adds_up() {
        let server = Server::start();
        let out = std::process::Command::new(duet_bin())
            .args(["loadtest", "--url", &server.url, "--database-url", &server.database_url(), "--server-pid", &server.pid().to_string()])
            .args(["--users", "40", "--online", "10", "--hold-secs", "0"])
            .args(["--calls", "12", "--call-rate", "40", "--calls-live", "4"])
            .args(["--relay-pairs", "4", "--relay-rate", "200", "--relay-secs", "1", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "loadtest failed: {}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["connect"]["online_before"], 10, "{r}");
        assert_eq!(r["connect"]["sockets"], 30, "{r}");
        assert!(r["connect"]["errors"].as_object().unwrap().is_empty(), "{r}");
        assert!(r["connect"]["p99_ms"].as_f64().unwrap() > 0.0);
        assert!(r["connect"]["server_cpu_ms_per_socket"].as_f64().is_some(), "CPU read from /proc: {r}");
        assert!(r["memory"]["rss_kib"].as_f64().unwrap() > 0.0);
        assert_eq!(r["calls"]["completed"], 12, "{r}");
        assert!(r["calls"]["setup_p50_ms"].as_f64().unwrap() > 0.0);
        let relay = &r["relay"];
        assert!(relay["frames_sent"].as_u64().unwrap() >= 150, "{r}");
        assert_eq!(relay["frames_sent"], relay["frames_delivered"], "every candidate arrives: {r}");
        // The table, for people.
        let out = std::process::Command::new(duet_bin())
            .args(["loadtest", "--url", &server.url, "--database-url", &server.database_url(), "--users", "4", "--hold-secs", "0"])
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && table.contains("storm: connections per second"), "{table}");
    }
}

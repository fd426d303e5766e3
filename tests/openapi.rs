//! The OpenAPI description (`/api/openapi.json`) tried the way the ecosystem tries one:
//! schemathesis (PyPI) generates requests from it, valid and not, against a live server, anonymous,
//! logged in and as the operator. No answer may be a 5xx, and every answer must match the
//! description (status, content type, body schema). Reported skipped where schemathesis is not
//! installed (`.ci/run` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Instant;

use common::{ADMIN_TOKEN, Server, ok, user};
use serde_json::json;

/// Requests per operation, phase and pass; three passes over the 20 operations.
const EXAMPLES: &str = "40";

/// One schemathesis pass over the operations `only` names (a path regex; all if `None`) but
/// those `except` names, with every check on (tests/schemathesis/schemathesis.toml says where
/// the description's words go beyond its schema). `header` authenticates the pass.
fn schemathesis(server: &Server, what: &str, header: Option<String>, only: Option<&str>, except: Option<&str>) {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis/schemathesis.toml");
    let run = |attempt: u32| {
        let report = server.dir().join(format!("schemathesis-{}-{attempt}", what.replace(' ', "-")));
        let mut cmd = Command::new("schemathesis");
        cmd.args(["--config-file", config, "--no-color", "run"])
            .arg(format!("{}/api/openapi.json", server.url))
            .args(["--phases", "examples,coverage,fuzzing", "--max-examples", EXAMPLES, "--seed", "20261204"])
            // One worker: Python 3.11's `ast` is not thread-safe, and Hypothesis parses lambdas
            // with it ("AST constructor recursion depth mismatch" under several workers).
            .args(["--workers", "1", "--request-timeout", "10", "--no-shrink"])
            .arg("--report-dir")
            .arg(&report)
            .current_dir(server.dir());
        if let Some(h) = &header {
            cmd.args(["--header", h]);
        }
        if let Some(path) = only {
            cmd.args(["--include-path-regex", path]);
        }
        if let Some(path) = except {
            cmd.args(["--exclude-path-regex", path]);
        }
        let out = cmd.output().expect("run schemathesis");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let started = Instant::now();
    let (mut passed, mut text) = run(1);
    // An error inside schemathesis itself (not a finding about the API: no FAILURES section) is
    // tried once more, and said.
    if !passed && text.contains("Runtime Error") && !text.contains("= FAILURES =") {
        println!("schemathesis, {what}: an error inside schemathesis, run again:\n{}", text.lines().filter(|l| l.contains("Error")).take(5).collect::<Vec<_>>().join("\n"));
        (passed, text) = run(2);
    }
    let cases = text.lines().skip_while(|l| !l.starts_with("Test cases:")).nth(1).unwrap_or("?").trim().to_string();
    println!("schemathesis, {what}: {cases} in {:.1} s", started.elapsed().as_secs_f64());
    assert!(passed, "schemathesis found problems ({what}):\n{text}");
    assert!(cases.contains("passed"), "schemathesis ran no case ({what}):\n{text}");
}

every_backend! {
    #[tokio::test(flavor = "multi_thread")]
    #[cfg_attr(not(duet_test_schemathesis), ignore = "skipped: schemathesis is not installed (pip install schemathesis)")]
    async fn schemathesis_finds_no_server_error_and_every_answer_matches_the_description() {
        let server = Server::start_with(&[("DUET_ADMIN_TOKEN", ADMIN_TOKEN)]);
        // Something to page through: a call in the history, a chat message, a contact.
        let (alice, at) = user(&server, "alice").await;
        let (bob, bt) = user(&server, "bob").await;
        let mut aw = server.ws(&at).await;
        let mut bw = server.ws(&bt).await;
        let id = ok(&aw.request(json!({"method": "Call/Invite", "toId": bob}), 1).await)["callId"].as_str().unwrap().to_string();
        bw.wait_for(10012).await;
        ok(&bw.request(json!({"method": "Call/Reject", "data": {"callId": id}}), 2).await);
        ok(&aw.request(json!({"method": "Message/Send", "toId": bob, "message": "hello"}), 3).await);

        schemathesis(&server, "anonymous", None, None, None);
        // Logged in; logging out would end the pass's own session.
        schemathesis(&server, "logged in", Some(format!("Authorization: Bearer {at}")), None, Some("^/api/logout$"));
        // The operator: the actor tree survives whatever is killed (the examples kill the registry).
        schemathesis(&server, "operator", Some(format!("Authorization: Bearer {ADMIN_TOKEN}")), Some("^/api/admin/"), None);
        // Still serving, and the session the passes used still works.
        let mut c = server.client();
        c.token = Some(at);
        assert_eq!(c.get("/api/me").await.body["user"]["id"], alice);
    }
}

/// What schemathesis found, kept as regression tests that run without it: the rules the
/// description states are the ones the server enforces.
#[tokio::test]
async fn the_limits_the_description_states_are_the_ones_enforced() {
    let server = Server::start();
    let (_, token) = user(&server, "alice").await;
    let mut c = server.client();
    c.token = Some(token);
    // `limit` is checked with or without `q` (it was ignored without), empty is not the default,
    // and a number is digits only.
    for path in ["/api/users?limit=9223372036854775808", "/api/users?limit=", "/api/users?limit=+5", "/api/calls?limit=", "/api/messages?with=0&limit=", "/api/messages?with=+0"] {
        let a = c.get(path).await;
        assert_eq!((a.status, a.error()), (400, "invalid_input"), "{path}");
    }
    assert_eq!(c.get("/api/users?limit=5").await.status, 200);
    // A query string that cannot be read is a JSON 400 too, not axum's plain text.
    let a = c.get("/api/calls?limit=1&limit=2").await;
    assert_eq!((a.status, a.error()), (400, "invalid_input"));
    // Passwords are counted in characters, as the description's maxLength counts them.
    let mut anon = server.client();
    let long = "é".repeat(1024);
    assert_eq!(anon.post("/api/register", json!({"username": "bob", "password": long})).await.status, 201);
    let a = anon.post("/api/register", json!({"username": "carol", "password": "x".repeat(1025)})).await;
    assert_eq!((a.status, a.error()), (400, "password_too_long"));
    // A display name is checked once trimmed, as the description's pattern says.
    assert_eq!(anon.post("/api/register", json!({"username": "dave", "password": "password1", "displayName": "  Dave  "})).await.body["user"]["displayName"], "Dave");
    let a = anon.post("/api/register", json!({"username": "erin", "password": "password1", "displayName": "Er\u{1c}in"})).await;
    assert_eq!((a.status, a.error()), (400, "invalid_display_name"));
}

#[tokio::test]
async fn the_description_is_served_as_json_with_every_path() {
    let server = Server::start();
    let a = server.client().get("/api/openapi.json").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    assert_eq!(a.body["openapi"], "3.1.0");
    let paths = a.body["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 19, "{:?}", paths.keys().collect::<Vec<_>>());
    assert_eq!(a.body["paths"]["/api/admin/node"]["get"]["security"], json!([{"admin": []}]));
    assert_eq!(a.body["paths"]["/api/me"]["get"]["security"], json!([{"session": []}, {"cookie": []}]));
}

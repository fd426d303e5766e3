//! PROTOCOL.md section 2, accounts: register, login, logout, me, users, health, and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Server;
use serde_json::json;

every_backend! {
    #[tokio::test]
    async fn register_login_and_me_with_cookie_and_with_token() {
        let server = Server::start();
        let mut c = server.client();
        let a = c.post("/api/register", json!({"username": "alice", "password": "password123", "displayName": "Alice Liddell"})).await;
        assert_eq!(a.status, 201);
        assert_eq!(a.body["user"]["username"], "alice");
        assert_eq!(a.body["user"]["displayName"], "Alice Liddell");
        assert_eq!(a.body["user"]["status"], "offline");
        assert!(a.body["user"]["id"].as_i64().unwrap() > 0);
        assert!(a.body["user"].get("passwordHash").is_none());

        let a = c.post("/api/login", json!({"username": "alice", "password": "password123"})).await;
        assert_eq!(a.status, 200);
        let token = a.body["token"].as_str().unwrap().to_string();
        let cookie = a.headers.get("set-cookie").unwrap().to_str().unwrap().to_string();
        assert!(cookie.starts_with(&format!("duet_session={token}")), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
        assert!(!cookie.contains("Secure"), "no TLS, so no Secure: {cookie}");

        // The cookie alone.
        let me = c.get("/api/me").await;
        assert_eq!(me.status, 200);
        assert_eq!(me.body["user"]["username"], "alice");

        // The bearer token alone.
        let mut t = server.client();
        t.token = Some(token);
        assert_eq!(t.get("/api/me").await.body["user"]["displayName"], "Alice Liddell");

        // Nothing at all.
        let anon = server.client().get("/api/me").await;
        assert_eq!((anon.status, anon.error()), (401, "unauthorized"));
        let mut forged = server.client();
        forged.token = Some("0".repeat(64));
        assert_eq!(forged.get("/api/me").await.status, 401);
    }

    #[tokio::test]
    async fn display_name_defaults_to_the_username_and_keeps_odd_unicode() {
        let server = Server::start();
        let mut c = server.client();
        let a = c.post("/api/register", json!({"username": "bob", "password": "password123"})).await;
        assert_eq!(a.body["user"]["displayName"], "bob");
        for (i, name) in ["王小明", "مرحبا", "Zoë 🎉👩‍👩‍👧", "a\u{200B}b", "'; DROP TABLE users; --"].iter().enumerate() {
            let user = format!("user{i}");
            let a = c.post("/api/register", json!({"username": user, "password": "password123", "displayName": format!("  {name} ")})).await;
            assert_eq!(a.status, 201, "{name}: {}", a.body);
            assert_eq!(a.body["user"]["displayName"], *name);
        }
        c.post("/api/login", json!({"username": "bob", "password": "password123"})).await;
        let users = c.get("/api/users").await;
        let names: Vec<&str> = users.body.as_array().unwrap().iter().map(|u| u["displayName"].as_str().unwrap()).collect();
        assert!(names.contains(&"'; DROP TABLE users; --") && names.contains(&"王小明"), "{names:?}");
    }

    #[tokio::test]
    async fn register_refuses_bad_input_and_stores_nothing() {
        let server = Server::start();
        let mut c = server.client();
        let cases = [
            (json!({"username": "al", "password": "password123"}), 400, "invalid_username"),
            (json!({"username": "a".repeat(33), "password": "password123"}), 400, "invalid_username"),
            (json!({"username": "ali ce", "password": "password123"}), 400, "invalid_username"),
            (json!({"username": "alïce", "password": "password123"}), 400, "invalid_username"),
            (json!({"username": "x' OR '1'='1", "password": "password123"}), 400, "invalid_username"),
            (json!({"username": "robert'); DROP TABLE users;--", "password": "password123"}), 400, "invalid_username"),
            (json!({"username": "alice", "password": "short"}), 400, "weak_password"),
            (json!({"username": "alice", "password": "1234567"}), 400, "weak_password"),
            (json!({"username": "alice", "password": "x".repeat(2000)}), 400, "password_too_long"),
            (json!({"username": "alice", "password": "password123", "displayName": "   "}), 400, "invalid_display_name"),
            (json!({"username": "alice", "password": "password123", "displayName": "a\u{0}b"}), 400, "invalid_display_name"),
            (json!({"username": "alice", "password": "password123", "displayName": "x".repeat(65)}), 400, "invalid_display_name"),
            (json!({"username": "alice"}), 400, "missing_field"),
            (json!({"password": "password123"}), 400, "missing_field"),
            (json!({"username": 12345, "password": "password123"}), 400, "invalid_input"),
            (json!({"username": "alice", "password": ["password123"]}), 400, "invalid_input"),
            (json!({"username": "alice", "password": "password123", "displayName": 7}), 400, "invalid_input"),
            (json!(["alice", "password123"]), 400, "invalid_input"),
            (json!(null), 400, "invalid_input"),
        ];
        for (body, status, error) in cases {
            let a = c.post("/api/register", body.clone()).await;
            assert_eq!((a.status, a.error()), (status, error), "{body}: {}", a.body);
            assert!(!a.body["message"].as_str().unwrap_or("").is_empty());
        }
        for raw in [&b"{not json"[..], b"", b"\xff\xfe", b"{\"username\": \"alice\", \"password\": \"pass"] {
            let a = c.post_raw("/api/register", raw).await;
            assert_eq!((a.status, a.error()), (400, "bad_json"), "{:?}", String::from_utf8_lossy(raw));
        }
        // A body past the limit is refused before it is parsed.
        let huge = format!("{{\"username\":\"alice\",\"password\":\"password123\",\"displayName\":\"{}\"}}", "x".repeat(200_000));
        let a = c.post_raw("/api/register", huge).await;
        assert_eq!((a.status, a.error()), (413, "too_large"));

        // None of it was stored: the only account is the one registered now.
        let id = c.signup("carol").await;
        let users = c.get("/api/users").await;
        let list = users.body.as_array().unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["id"], id);
        assert_eq!(list[0]["unread"], 0);
    }

    #[tokio::test]
    async fn usernames_are_unique_without_regard_to_case() {
        let server = Server::start();
        let mut c = server.client();
        assert_eq!(c.post("/api/register", json!({"username": "Dave", "password": "password123"})).await.status, 201);
        for name in ["Dave", "dave", "DAVE"] {
            let a = c.post("/api/register", json!({"username": name, "password": "password456"})).await;
            assert_eq!((a.status, a.error()), (409, "username_taken"), "{name}");
        }
        // Concurrent registrations of one name: exactly one wins.
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let mut c = server.client();
            tasks.push(tokio::spawn(async move { c.post("/api/register", json!({"username": "erin", "password": "password123"})).await.status }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        statuses.sort();
        assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409]);
        // Login matches any case and keeps the registered spelling.
        let a = c.post("/api/login", json!({"username": "dAVE", "password": "password123"})).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body["user"]["username"], "Dave");
    }

    #[tokio::test]
    async fn wrong_credentials_are_refused_alike() {
        let server = Server::start();
        let mut c = server.client();
        c.signup("frank").await;
        let mut other = server.client();
        for body in [
            json!({"username": "frank", "password": "wrong-password"}),
            json!({"username": "nobody", "password": "password123"}),
            json!({"username": "' OR 1=1 --", "password": "' OR 1=1 --"}),
        ] {
            let a = other.post("/api/login", body).await;
            assert_eq!((a.status, a.error()), (401, "bad_credentials"));
            assert!(a.headers.get("set-cookie").is_none());
        }
        let a = other.post("/api/login", json!({"username": "frank"})).await;
        assert_eq!((a.status, a.error()), (400, "missing_field"));
    }

    #[tokio::test]
    async fn repeated_failures_are_rate_limited_per_username_and_per_address() {
        let server = Server::start_with(&[("DUET_LOGIN_MAX_FAILURES", "3"), ("DUET_LOGIN_LOCKOUT_SECS", "120")]);
        let mut c = server.client();
        c.signup("grace").await;
        c.signup("heidi").await;
        let mut guesser = server.client();
        for _ in 0..3 {
            let a = guesser.post("/api/login", json!({"username": "grace", "password": "guess-guess"})).await;
            assert_eq!(a.status, 401);
        }
        // Locked now, even with the right password.
        let a = guesser.post("/api/login", json!({"username": "grace", "password": "password123"})).await;
        assert_eq!((a.status, a.error()), (429, "rate_limited"));
        let retry: u64 = a.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
        assert!((1..=120).contains(&retry), "{retry}");
        // Another account is not locked by grace's failures...
        assert_eq!(guesser.post("/api/login", json!({"username": "heidi", "password": "password123"})).await.status, 200);
        // ...until this address has failed four times the per-name limit.
        for i in 0..9 {
            guesser.post("/api/login", json!({"username": format!("ghost{i}"), "password": "guess-guess"})).await;
        }
        let a = guesser.post("/api/login", json!({"username": "heidi", "password": "password123"})).await;
        assert_eq!((a.status, a.error()), (429, "rate_limited"));
        assert!(a.headers.get("retry-after").is_some());
    }

    #[tokio::test]
    async fn logout_revokes_only_its_own_session() {
        let server = Server::start();
        let mut phone = server.client();
        phone.signup("ivan").await;
        let mut laptop = server.client();
        let a = laptop.post("/api/login", json!({"username": "ivan", "password": "password123"})).await;
        laptop.token = a.body["token"].as_str().map(str::to_string);
        laptop.cookie = None;

        let a = phone.post_raw("/api/logout", "").await;
        assert_eq!(a.status, 204);
        let cleared = a.headers.get("set-cookie").unwrap().to_str().unwrap();
        assert!(cleared.starts_with("duet_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
        // The phone's token is dead, whether as cookie or as bearer.
        let mut dead = server.client();
        dead.token = phone.token.clone();
        assert_eq!(dead.get("/api/me").await.status, 401);
        assert_eq!(phone.get("/api/me").await.status, 401);
        // The laptop's session lives on.
        assert_eq!(laptop.get("/api/me").await.status, 200);
        // Logging out twice, or never logged in.
        assert_eq!(dead.post_raw("/api/logout", "").await.status, 401);
        assert_eq!(server.client().post_raw("/api/logout", "").await.error(), "unauthorized");
    }

    #[tokio::test]
    async fn a_session_survives_a_restart_and_a_crash() {
        let mut server = Server::start();
        let mut c = server.client();
        c.signup("judy").await;
        let token = c.token.clone().unwrap();
        let status = server.stop();
        assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
        server.restart();
        let mut after = server.client();
        after.token = Some(token.clone());
        assert_eq!(after.get("/api/me").await.body["user"]["username"], "judy");
        server.kill();
        server.restart();
        let mut after = server.client();
        after.token = Some(token);
        assert_eq!(after.get("/api/me").await.status, 200);
    }

    #[tokio::test]
    async fn sessions_expire_unless_used() {
        let server = Server::start_with(&[("DUET_SESSION_TTL_SECS", "1")]);
        let mut idle = server.client();
        idle.signup("kate").await;
        let mut busy = server.client();
        let a = busy.post("/api/login", json!({"username": "kate", "password": "password123"})).await;
        assert_eq!(a.status, 200);
        // The busy session is used every 300 ms, so each use slides its expiry past 1 s.
        for _ in 0..5 {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert_eq!(busy.get("/api/me").await.status, 200, "sliding expiry");
        }
        // 1.5 s without use: the idle one is gone.
        assert_eq!(idle.get("/api/me").await.status, 401);
    }

    #[tokio::test]
    async fn health_readiness_and_unknown_routes() {
        let server = Server::start();
        let mut c = server.client();
        let a = c.get("/healthz").await;
        assert_eq!((a.status, a.body["status"].as_str()), (200, Some("ok")));
        let a = c.get("/readyz").await;
        assert_eq!((a.status, a.body["status"].as_str()), (200, Some("ready")));
        let a = c.get("/api/nope").await;
        assert_eq!((a.status, a.error()), (404, "not_found"));
        let a = c.get("/api/login").await;
        assert_eq!((a.status, a.error()), (405, "method_not_allowed"));
        assert_eq!(c.get("/api/users").await.status, 401);
        // The web app, with a policy that lets it load nothing from elsewhere.
        let page = reqwest::get(format!("{}/", server.url)).await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(page.text().await.unwrap().contains("<html"));
        let check = reqwest::get(format!("{}/check", server.url)).await.unwrap().text().await.unwrap();
        assert!(check.contains("Network check"));
        let a = c.get("/no/such/file.js").await;
        assert_eq!(a.status, 404);
    }
}

/// No secret in any log line, at the most verbose level, over a whole call: not the session
/// tokens (from `/ws?token=`, a bearer header, a cookie or a login answer), not the operator's
/// token, not the TURN passwords handed out.
#[tokio::test]
async fn no_secret_reaches_the_log_even_at_trace_over_a_whole_call() {
    let server = Server::start_with(&[("RUST_LOG", "trace"), ("DUET_ADMIN_TOKEN", common::ADMIN_TOKEN)]);
    let (alice, ta) = common::user(&server, "alice").await;
    let (bob, tb) = common::user(&server, "bob").await;
    let mut a = server.ws(&ta).await;
    let mut b = server.ws_with(&tb, &[("Authorization", &format!("Bearer {tb}"))]).await;
    let turn_passwords: Vec<String> = a.welcome["data"]["iceServers"].as_array().unwrap().iter().filter_map(|s| s["credential"].as_str().map(str::to_string)).collect();
    let id = a.request(json!({"method": "Call/Invite", "toId": bob, "data": {"media": {"audio": true, "video": true}}}), 1).await["data"]["callId"].as_str().unwrap().to_string();
    b.wait_for(10012).await;
    assert_eq!(b.request(json!({"method": "Call/Accept", "data": {"callId": id}}), 1).await["code"], 10002);
    a.wait_for(10014).await;
    a.request(json!({"method": "Message/Offer", "toId": bob, "data": {"callId": id, "sdp": {"type": "offer", "sdp": "v=0"}}}), 2).await;
    b.request(json!({"method": "Message/Answer", "toId": alice, "data": {"callId": id, "sdp": {"type": "answer", "sdp": "v=0"}}}), 2).await;
    a.request(json!({"method": "Message/Candidate", "toId": bob, "data": {"callId": id, "candidate": {"candidate": "candidate:1 1 udp 1 10.0.0.1 5000 typ host"}}}), 3).await;
    a.request(json!({"method": "Message/Send", "toId": bob, "message": "a private word: xyzzy-plugh"}), 4).await;
    assert_eq!(a.request(json!({"method": "Call/Hangup", "data": {"callId": id}}), 5).await["code"], 10002);
    b.wait_for(10016).await;
    let mut c = server.client();
    c.cookie = Some(ta.clone());
    assert_eq!(c.get("/api/me").await.status, 200);
    let ice = c.get("/api/ice-servers").await.body;
    let mut turn_passwords = turn_passwords;
    turn_passwords.extend(ice["iceServers"].as_array().unwrap().iter().filter_map(|s| s["credential"].as_str().map(str::to_string)));
    assert!(!turn_passwords.is_empty(), "the relay is on: {ice}");
    assert_eq!(server.admin().get("/api/admin/calls").await.status, 200);
    a.close().await;
    b.close().await;
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = server.log.lock().unwrap();
    assert!(log.iter().filter(|l| l.contains(" TRACE ") || l.contains(" DEBUG ")).count() > 10, "trace logging is on: {log:?}");
    // What users say to each other is theirs, not the log's, either.
    let secrets = [ta, tb, common::ADMIN_TOKEN.to_string(), "xyzzy-plugh".to_string()].into_iter().chain(turn_passwords);
    for secret in secrets {
        let leaks: Vec<&String> = log.iter().filter(|l| l.contains(&secret)).collect();
        assert!(leaks.is_empty(), "a secret is in the log: {leaks:?}");
    }
}

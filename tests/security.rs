//! Browser security and the answers a hostile or careless client gets: the security headers on
//! every answer, CSRF refused for cookie-authenticated state changes from another origin, login
//! answering an unknown user and a wrong password alike and in the same time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::json;

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let server = Server::start();
    let mut c = server.client();
    for path in ["/", "/check", "/api/me", "/api/nope", "/healthz", "/metrics", "/favicon.svg"] {
        let a = c.get(path).await;
        let h = &a.headers;
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-eval") && !csp.contains("script-src *"), "{path}: {csp}");
        assert!(h.get("strict-transport-security").is_none(), "no HSTS over plain HTTP: {path}");
    }
    // The page may load its own scripts; an API answer may load nothing.
    assert!(c.get("/").await.headers["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    assert_eq!(c.get("/api/me").await.headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
    // A revalidated page keeps the policy it came with: a 304 sets none (its headers would
    // replace the cached page's, and an API policy would blank the app).
    let page = c.get("/").await;
    let etag = page.headers["etag"].to_str().unwrap().to_string();
    let again = c.http.get(format!("{}/", server.url)).header("If-None-Match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.headers().get("content-security-policy").is_none(), "{:?}", again.headers());
    // A refused request too.
    let a = c.post("/api/login", json!({"username": "x", "password": "y"})).await;
    assert_eq!((a.status, a.headers["x-frame-options"].to_str().unwrap()), (401, "DENY"));
}

#[tokio::test]
async fn cookie_authenticated_changes_from_another_origin_are_refused_with_403() {
    let server = Server::start();
    let mut alice = server.client();
    alice.signup("alice").await;
    let bob = { let mut b = server.client(); b.signup("bob").await };
    let cookie = alice.cookie.clone().unwrap();
    let token = alice.token.clone().unwrap();
    let http = reqwest::Client::new();
    let put = |origin: Option<&str>, auth: Option<&str>| {
        let mut req = http.put(format!("{}/api/contacts/{bob}", server.url)).header("Cookie", format!("duet_session={cookie}"));
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        if let Some(t) = auth {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    // A forged form or fetch from another site: the browser sends the cookie and its own Origin.
    let (status, body) = put(Some("https://evil.example"), None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("own origin"), "{body}");
    // No Origin at all with only the cookie: refused too, saying how to do it instead.
    let (status, body) = put(None, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("Bearer"), "{body}");
    // Nothing was changed by those.
    let contacts = alice.get("/api/users").await.body;
    assert!(contacts.as_array().unwrap().iter().any(|u| u["id"] == bob), "the directory is small, so Bob is listed anyway: {contacts}");
    // From our own origin, or with a bearer token (which no other site can make a browser send).
    assert_eq!(put(Some(&server.url), None).await.0, 204);
    assert_eq!(put(None, Some(&token)).await.0, 204);
    // Reads are not state changes: a GET with the cookie alone is answered.
    let r = http.get(format!("{}/api/me", server.url)).header("Cookie", format!("duet_session={cookie}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Logout is a state change like any other.
    let r = http.post(format!("{}/api/logout", server.url)).header("Cookie", format!("duet_session={cookie}")).header("Origin", "http://evil.example").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(alice.get("/api/me").await.status, 200, "the session is still alive");
}

#[tokio::test]
async fn login_answers_an_unknown_user_and_a_wrong_password_alike_and_in_the_same_time() {
    // Enough failures allowed that the limiter does not answer first.
    let server = Server::start_with(&[("DUET_LOGIN_MAX_FAILURES", "100")]);
    server.client().signup("alice").await;
    let mut c = server.client();
    let (mut wrong, mut unknown, mut unregistrable) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        for (name, into) in [("alice", &mut wrong), ("nobody-here", &mut unknown), ("x", &mut unregistrable)] {
            let t = Instant::now();
            let a = c.post("/api/login", json!({"username": name, "password": "wrong-password"})).await;
            let took = t.elapsed();
            assert_eq!((a.status, a.body["error"].as_str()), (401, Some("bad_credentials")), "{name}: {}", a.body);
            assert_eq!(a.body["message"], "wrong username or password", "{name}: the same words");
            into.push(took);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (w, u, x) = (median(&mut wrong), median(&mut unknown), median(&mut unregistrable));
    // argon2 dominates each answer; a lookup that skipped it would be 10x faster, not 2x.
    for (what, t) in [("an unknown user", u), ("a name that cannot exist", x)] {
        assert!(t / w > 0.5 && t / w < 2.0, "{what} takes {t:.4} s, a wrong password {w:.4} s");
    }
}

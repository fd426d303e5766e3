//! The load generator's users. For duet either seeded into the server's database, each with a
//! session issued beforehand (fast, as browsers that still hold their cookie), or registered and
//! logged in over HTTP (each login costs an argon2 verification, as it should; timed apart). The
//! bare relay and PeerJS need only ids.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::{Identity, Target};
use super::stats::{Latencies, Spread};
use super::{Args, progress};

/// Password logins made to get the sessions, when users were made over HTTP.
#[derive(Serialize)]
pub struct LoginReport {
    pub logins: usize,
    pub seconds: f64,
    #[serde(flatten)]
    pub spread: Spread,
}

/// A name unique to this run, so runs against one database do not collide.
fn run_tag() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("lt{}", now.as_millis() % 100_000_000)
}

pub async fn prepare(args: &Args) -> anyhow::Result<(Vec<Identity>, Option<LoginReport>)> {
    if args.target != Target::Duet {
        // Ids above any a previous run against the same server process used.
        let base = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() % 100_000) as i64 * 100_000;
        return Ok(((1..=args.users as i64).map(|i| Identity { id: base + i, token: String::new() }).collect(), None));
    }
    let tag = run_tag();
    match &args.database_url {
        Some(url) => Ok((seed(url, &tag, args.users).await?, None)),
        None => {
            let (ids, report) = over_http(args, &tag).await?;
            Ok((ids, Some(report)))
        }
    }
}

/// Users and sessions written straight into the database, thousands a second.
async fn seed(url: &str, tag: &str, n: usize) -> anyhow::Result<Vec<Identity>> {
    let store = crate::store::Store::open(url).await?;
    let hash = crate::auth::password::hash_async("loadtest-password".into()).await?;
    let tokens: Vec<String> = (0..n).map(|_| crate::auth::token::generate()).collect();
    let accounts: Vec<(String, String)> = tokens.iter().enumerate().map(|(i, t)| (format!("{tag}-{i}"), crate::auth::token::digest(t))).collect();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(n);
    // Chunks, each one transaction well inside the query timeout.
    for chunk in accounts.chunks(500) {
        ids.extend(store.create_users_with_sessions(chunk, &hash, 24 * 3600 * 1000).await?);
    }
    tracing::debug!(users = n, seconds = started.elapsed().as_secs_f64(), "seeded");
    Ok(ids.into_iter().zip(tokens).map(|(id, token)| Identity { id, token }).collect())
}

/// Registers every user over HTTP, then logs each in (8 at a time), timing the logins.
async fn over_http(args: &Args, tag: &str) -> anyhow::Result<(Vec<Identity>, LoginReport)> {
    let addr = args.url.strip_prefix("http://").ok_or_else(|| anyhow::anyhow!("registering over HTTP needs an http:// URL; for https give --database-url"))?.trim_end_matches('/').to_string();
    let password = "loadtest-password";
    let names: Vec<String> = (0..args.users).map(|i| format!("{tag}-{i}")).collect();
    progress(args.json, format!("registering {} users over HTTP (argon2: this takes a while)", names.len()));
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let logins = Arc::new(Latencies::default());
    let started = Instant::now();
    let tasks: Vec<_> = names
        .into_iter()
        .map(|name| {
            let (addr, sem, logins) = (addr.clone(), sem.clone(), logins.clone());
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await?;
                let (status, body) = post(&addr, "/api/register", &json!({"username": name, "password": password})).await?;
                if status != 201 {
                    anyhow::bail!("register {name}: {status} {body}");
                }
                let t = Instant::now();
                let (status, body) = post(&addr, "/api/login", &json!({"username": name, "password": password})).await?;
                logins.record_us(t.elapsed().as_micros() as u64);
                if status != 200 {
                    anyhow::bail!("login {name}: {status} {body}");
                }
                let id = body["user"]["id"].as_i64().ok_or_else(|| anyhow::anyhow!("login answer without a user id"))?;
                let token = body["token"].as_str().unwrap_or_default().to_string();
                Ok(Identity { id, token })
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await??);
    }
    let report = LoginReport { logins: ids.len(), seconds: started.elapsed().as_secs_f64(), spread: logins.spread() };
    Ok((ids, report))
}

/// With `--peer-url`: waits (at most 10 s) until the first node sees every user of the second
/// online, as a person would before calling them; returns how long that took, in ms.
pub async fn settle_presence(args: &Args, identities: &[Identity]) -> anyhow::Result<f64> {
    let Some(first) = identities.first() else { return Ok(0.0) };
    let addr = args.url.strip_prefix("http://").ok_or_else(|| anyhow::anyhow!("--peer-url needs an http:// URL"))?.trim_end_matches('/').to_string();
    let elsewhere: std::collections::HashSet<i64> = identities.iter().skip(1).step_by(2).map(|who| who.id).collect();
    let started = Instant::now();
    loop {
        let (status, list) = request(&addr, "GET", "/api/users", Some(&first.token), None).await?;
        if status != 200 {
            anyhow::bail!("GET /api/users: {status} {list}");
        }
        let online = list.as_array().map_or(0, |l| l.iter().filter(|u| elsewhere.contains(&u["id"].as_i64().unwrap_or(0)) && u["status"] != "offline").count());
        if online == elsewhere.len() {
            return Ok(started.elapsed().as_secs_f64() * 1000.0);
        }
        if started.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("after 10 s the first node sees {online} of the second node's {} users online (a contact list above DUET_DIRECTORY_FULL_MAX does not show them all)", elsewhere.len());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn post(addr: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    request(addr, "POST", path, None, Some(body)).await
}

/// One JSON request over plain HTTP/1.1 (the generator needs no HTTP client crate for this).
async fn request(addr: &str, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let mut s = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(addr)).await??;
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = text.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    Ok((status, json))
}

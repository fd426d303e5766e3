//! Test harness: starts the real `duet serve` binary on a random port with a fresh database (an
//! SQLite file in a temporary folder, or a database of its own created on the PostgreSQL or
//! MySQL server the suite was given), and offers a small HTTP client that keeps the session cookie.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod backends;
pub mod db_proxy;
pub mod stun_client;
pub use backends::{Backend, TestDb};
pub use db_proxy::DbProxy;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// A running `duet serve` and the folder that holds its database.
pub struct Server {
    pub url: String,
    pub addr: String,
    child: Option<Child>,
    dir: Arc<tempfile::TempDir>,
    db: Arc<TestDb>,
    env: Vec<(String, String)>,
    /// Everything the server logged, for failure messages.
    pub log: Arc<Mutex<Vec<String>>>,
}

pub fn duet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_duet"))
}

impl Server {
    /// A server with default settings.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server with extra `DUET_*` settings, on a fresh database of the backend this test runs
    /// on (see [`backends`]).
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let db = Arc::new(TestDb::create(backends::current(), dir.path()));
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Server::spawn(dir, db, env)
    }

    /// A server whose database traffic goes through a [`DbProxy`] the test controls (PostgreSQL
    /// or MySQL only: an SQLite file has no connection to cut).
    pub fn start_through_proxy(env: &[(&str, &str)]) -> (Server, DbProxy) {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut db = TestDb::create(backends::current(), dir.path());
        assert!(db.backend != Backend::Sqlite, "an SQLite database cannot be cut off");
        let target = db_proxy::host_port(&db.url).to_string();
        let target: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&target).unwrap().next().unwrap();
        let proxy = DbProxy::start(target);
        db.url = db.url.replacen(db_proxy::host_port(&db.url), &proxy.addr.to_string(), 1);
        if db.backend == Backend::Mysql {
            // The MySQL driver otherwise moves a loopback connection onto the server's Unix
            // socket, around the proxy.
            db.url.push_str(if db.url.contains('?') { "&prefer_socket=false" } else { "?prefer_socket=false" });
        }
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        (Server::spawn(dir, Arc::new(db), env), proxy)
    }

    /// Another `duet serve` on this server's database (a second node of a cluster), with `env`.
    pub fn another_node(&self, env: &[(&str, &str)]) -> Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Server::spawn(dir, self.db.clone(), env)
    }

    /// The backend this server's database is on.
    pub fn backend(&self) -> Backend {
        self.db.backend
    }

    fn spawn(dir: Arc<tempfile::TempDir>, db: Arc<TestDb>, env: Vec<(String, String)>) -> Server {
        let mut cmd = Command::new(duet_bin());
        cmd.arg("serve")
            .current_dir(dir.path())
            .env("DUET_LISTEN", "127.0.0.1:0")
            .env("DUET_DATABASE_URL", &db.url)
            .env("RUST_LOG", "info")
            // Each test server has its own relay on a random loopback port, allowed to relay to
            // loopback peers (the test's own sockets).
            .env("DUET_TURN_LISTEN", "127.0.0.1:0")
            .env("DUET_TURN_PUBLIC_IP", "127.0.0.1")
            .env("DUET_TURN_ALLOWED_PEERS", "127.0.0.0/8")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start duet");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log_writer = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1).or_else(|| line.split("listening on https://").nth(1)) {
                    if let Some(tx) = tx.take() {
                        let addr = rest.split_whitespace().next().unwrap_or_default().to_string();
                        let _ = tx.send(addr);
                    }
                }
                log_writer.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("duet did not start:\n{}", log.lock().unwrap().join("\n"));
            }
        };
        Server { url: format!("http://{addr}"), addr, child: Some(child), dir, db, env, log }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Where the embedded relay listens on `transport` ("udp", "tcp", "tls"), from its log.
    pub fn turn_addr(&self, transport: &str) -> Option<std::net::SocketAddr> {
        let tag = format!("transport=\"{transport}\"");
        let log = self.log.lock().unwrap();
        let line = log.iter().find(|l| l.contains("STUN/TURN relay listening") && l.contains(&tag))?;
        line.split("listen=").nth(1)?.split_whitespace().next()?.parse().ok()
    }

    /// Path of the temporary folder holding the database.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn database_url(&self) -> String {
        self.db.url.clone()
    }

    /// Stops the process with SIGTERM (graceful) and waits for it.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server already stopped");
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        child.wait().unwrap()
    }

    /// Waits for the process to end by itself, at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        let child = self.child.as_mut()?;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("server already stopped");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same database (the port may change).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let next = Server::spawn(self.dir.clone(), self.db.clone(), self.env.clone());
        *self = next;
    }

    pub fn client(&self) -> Client {
        Client { base: self.url.clone(), http: reqwest::Client::new(), cookie: None, token: None }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test shows what the server said (cargo prints a failing test's output only).
        if std::thread::panicking() {
            eprintln!("---- log of the server at {} ----\n{}", self.addr, self.log.lock().map(|l| l.join("\n")).unwrap_or_default());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An answer: status, headers and the body as JSON (Null when empty or not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `error` name of an error body.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

/// An HTTP client that remembers the `duet_session` cookie like a browser, or a bearer token.
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: Option<String>,
    pub token: Option<String>,
}

impl Client {
    pub async fn send(&mut self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            // As a browser on the app's own page would: the cookie comes with our Origin.
            req = req.header("Cookie", format!("duet_session={c}")).header("Origin", self.base.clone());
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        for v in headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("duet_session=") {
                let value = rest.split(';').next().unwrap_or_default();
                self.cookie = if value.is_empty() { None } else { Some(value.to_string()) };
            }
        }
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, headers, body }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(serde_json::to_vec(&body).unwrap())).await
    }

    pub async fn post_raw(&mut self, path: &str, body: impl Into<Vec<u8>>) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body.into())).await
    }

    /// Registers `name` with password `password123` and logs in (cookie kept). Returns the user id.
    pub async fn signup(&mut self, name: &str) -> i64 {
        let a = self.post("/api/register", json!({"username": name, "password": "password123"})).await;
        assert_eq!(a.status, 201, "register {name}: {}", a.body);
        let a = self.post("/api/login", json!({"username": name, "password": "password123"})).await;
        assert_eq!(a.status, 200, "login {name}: {}", a.body);
        self.token = a.body["token"].as_str().map(str::to_string);
        a.body["user"]["id"].as_i64().unwrap()
    }
}

// ---- WebSocket clients ----

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(5);

/// A real WebSocket client speaking PROTOCOL.md section 3.
pub struct Ws {
    pub socket: Socket,
    pub welcome: Value,
}

/// Why an upgrade was refused: the HTTP status.
pub async fn ws_refused(url: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("unexpected upgrade error: {e}"),
    }
}

impl Server {
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Opens a WebSocket with a bearer token and reads the welcome (10001) and user list (10000).
    pub async fn ws(&self, token: &str) -> Ws {
        self.ws_with(token, &[]).await
    }

    pub async fn ws_with(&self, token: &str, headers: &[(&str, &str)]) -> Ws {
        let mut req = self.ws_url().into_client_request().unwrap();
        req.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
        for (k, v) in headers {
            req.headers_mut().insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
        let mut ws = Ws { socket, welcome: Value::Null };
        let welcome = ws.next().await;
        assert_eq!(welcome["code"], 10001, "first frame is the welcome: {welcome}");
        let list = ws.next().await;
        assert_eq!(list["code"], 10000, "then the user list: {list}");
        ws.welcome = welcome;
        ws
    }
}

impl Ws {
    pub async fn send(&mut self, frame: Value) {
        self.socket.send(Message::Text(frame.to_string().into())).await.unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.unwrap();
    }

    /// The next protocol frame; panics after `WAIT` or if the socket closes.
    pub async fn next(&mut self) -> Value {
        loop {
            match tokio::time::timeout(WAIT, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// The next frame with `code`, skipping others (presence of other users, say).
    pub async fn wait_for(&mut self, code: u64) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["code"] == code {
                        return v;
                    }
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("waiting for {code}, got {other:?}"),
            }
        }
    }

    /// Frames received within `within`; the socket must stay open.
    pub async fn drain(&mut self, within: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.socket.next()).await {
                Err(_) => return out,
                Ok(Some(Ok(Message::Text(t)))) => out.push(serde_json::from_str(&t).unwrap()),
                Ok(Some(Ok(_))) => continue,
                other => panic!("socket ended while draining: {other:?}"),
            }
        }
    }

    /// Sends a frame with `seq` and returns the server's 10002 or 10003 for it.
    pub async fn request(&mut self, mut frame: Value, seq: i64) -> Value {
        frame["seq"] = json!(seq);
        self.send(frame).await;
        loop {
            let v = self.next().await;
            if (v["code"] == 10002 || v["code"] == 10003) && v["data"]["seq"] == seq {
                return v;
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return None,
                Err(_) => panic!("the server did not close the socket"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
        // Read until the server's close arrives, so the close is complete.
        let _ = tokio::time::timeout(Duration::from_secs(2), async { while let Some(Ok(_)) = self.socket.next().await {} }).await;
    }
}

/// Registers `name` and returns its id and a bearer token.
pub async fn user(server: &Server, name: &str) -> (i64, String) {
    let mut c = server.client();
    let id = c.signup(name).await;
    (id, c.token.unwrap())
}

/// The operator API of a server started with `DUET_ADMIN_TOKEN=ADMIN_TOKEN`.
pub const ADMIN_TOKEN: &str = "chaos-admin-token";

impl Server {
    pub fn admin(&self) -> Client {
        let mut c = self.client();
        c.token = Some(ADMIN_TOKEN.to_string());
        c
    }

    /// Kills an actor by name through the operator API; returns the status.
    pub async fn kill_actor(&self, name: &str) -> u16 {
        self.admin().post_raw(&format!("/api/admin/actors/{name}/kill"), "").await.status
    }

    /// The live actors.
    pub async fn actors(&self) -> Vec<Value> {
        self.admin().get("/api/admin/actors").await.body.as_array().cloned().unwrap_or_default()
    }

    /// Waits until `f` holds for the actor list, or panics after `WAIT`.
    pub async fn wait_actors(&self, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let list = self.actors().await;
            if f(&list) {
                return list;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("actors never got to {what}: {list:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The data of a 10002 ack, or a panic naming what came instead.
pub fn ok(v: &Value) -> &Value {
    assert_eq!(v["code"], 10002, "expected an ack: {v}");
    &v["data"]
}

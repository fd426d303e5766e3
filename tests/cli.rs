//! The `duet` command line: settings errors, the config file, migrate and user administration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output, Stdio};

use common::{Server, duet_bin};
use serde_json::json;

fn duet(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(duet_bin());
    cmd.args(args).env_remove("RUST_LOG").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_bad_setting_stops_the_start_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/d.db", dir.path().display());
    for (args, env, names) in [
        (vec!["serve", "--listen", "nowhere"], vec![], "DUET_LISTEN"),
        (vec!["serve"], vec![("DUET_LISTEN", "127.0.0.1:99999")], "DUET_LISTEN"),
        (vec!["serve"], vec![("DUET_RING_TIMEOUT_MS", "soon")], "DUET_RING_TIMEOUT_MS"),
        (vec!["serve"], vec![("DUET_DATABASE_URL", "oracle://db")], "DUET_DATABASE_URL"),
        (vec!["serve"], vec![("DUET_PUBLIC_URL", "duet.example.com")], "DUET_PUBLIC_URL"),
    ] {
        let mut env = env;
        env.push(("DUET_DATABASE_URL_UNUSED", db.as_str()));
        let out = duet(&args, &env);
        assert!(!out.status.success(), "{args:?} {env:?}");
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(names) && err.contains("bad setting"), "{err}");
    }
}

#[test]
fn a_config_file_sets_what_flags_and_environment_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("duet.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:notaport\"\n").unwrap();
    let out = duet(&["serve", "--config", file.to_str().unwrap()], &[]);
    assert!(stderr(&out).contains("DUET_LISTEN"), "{}", stderr(&out));
    std::fs::write(&file, "colour = \"blue\"\n").unwrap();
    let out = duet(&["serve", "--config", file.to_str().unwrap()], &[]);
    assert!(stderr(&out).contains("unknown setting `colour`"), "{}", stderr(&out));

    // A valid file is used by `migrate`, and a flag wins over it.
    let from_file = dir.path().join("from-file.db");
    std::fs::write(&file, format!("database_url = \"sqlite://{}\"\n", from_file.display())).unwrap();
    let out = duet(&["migrate", "--config", file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(from_file.exists());
    let from_flag = dir.path().join("sub/from-flag.db");
    let url = format!("sqlite://{}", from_flag.display());
    let out = duet(&["migrate", "--config", file.to_str().unwrap(), "--database-url", &url], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(from_flag.exists(), "the folder is created too");
}

#[test]
fn doctor_gives_a_verdict_per_item() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/d.db", dir.path().display());
    let env = [("DUET_DATABASE_URL", db.as_str()), ("DUET_LISTEN", "127.0.0.1:0"), ("DUET_TURN_LISTEN", "127.0.0.1:0"), ("DUET_TURN_PUBLIC_IP", "10.1.2.3")];
    let out = duet(&["doctor"], &env);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for item in ["settings", "database", "http port", "public address", "turn port", "relay address", "verdict:"] {
        assert!(text.contains(item), "{item} in {text}");
    }
    assert!(text.contains("10.1.2.3 is not a public address"), "{text}");

    // A database that cannot be read, or a server that does not answer, is a failure, and the
    // exit code says so (within the connect timeout).
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![b'x'; 4096]).unwrap();
    let garbage = format!("sqlite://{}", garbage.display());
    for url in [garbage.as_str(), "postgres://duet:pw@127.0.0.1:1/duet"] {
        let bad = [("DUET_DATABASE_URL", url), ("DUET_LISTEN", "127.0.0.1:0"), ("DUET_TURN_LISTEN", "off"), ("DUET_DATABASE_CONNECT_TIMEOUT_MS", "300")];
        let started = std::time::Instant::now();
        let out = duet(&["doctor"], &bad);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!out.status.success());
        assert!(text.contains("FAIL  database"), "{text}");
        assert!(!text.contains(":pw@"), "no password in the output: {text}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(text.contains("embedded relay is off"), "{text}");
    }
}

every_backend! {
    #[tokio::test]
    async fn operators_add_list_reset_and_disable_users() {
        let server = Server::start();
        let db = server.database_url();
        let env = [("DUET_DATABASE_URL", db.as_str())];

        let out = duet(&["user", "add", "olivia", "--display-name", "Olivia O", "--password", "first-pass-1"], &env);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = duet(&["user", "add", "OLIVIA", "--password", "first-pass-1"], &env);
        assert!(!out.status.success() && stderr(&out).contains("taken"));
        let out = duet(&["user", "add", "no", "--password", "first-pass-1"], &env);
        assert!(!out.status.success());
        // The password may come on stdin.
        let mut child = Command::new(duet_bin())
            .args(["user", "add", "peggy"])
            .env("DUET_DATABASE_URL", &db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"peggy-pass-1\n").unwrap();
        assert!(child.wait_with_output().unwrap().status.success());

        let list = String::from_utf8(duet(&["user", "list"], &env).stdout).unwrap();
        assert!(list.contains("olivia") && list.contains("Olivia O") && list.contains("peggy"), "{list}");

        // The running server sees the accounts the CLI made.
        let mut c = server.client();
        let a = c.post("/api/login", json!({"username": "olivia", "password": "first-pass-1"})).await;
        assert_eq!(a.status, 200);
        assert_eq!(c.post("/api/login", json!({"username": "peggy", "password": "peggy-pass-1"})).await.status, 200);

        // A new password logs olivia out everywhere.
        let mut olivia = server.client();
        olivia.post("/api/login", json!({"username": "olivia", "password": "first-pass-1"})).await;
        assert!(duet(&["user", "passwd", "olivia", "--password", "second-pass-2"], &env).status.success());
        assert_eq!(olivia.get("/api/me").await.status, 401);
        assert_eq!(olivia.post("/api/login", json!({"username": "olivia", "password": "first-pass-1"})).await.status, 401);
        assert_eq!(olivia.post("/api/login", json!({"username": "olivia", "password": "second-pass-2"})).await.status, 200);

        // Disabled: logged out, cannot log in, gone from the contact list; enabled again: back.
        assert!(duet(&["user", "disable", "olivia"], &env).status.success());
        assert_eq!(olivia.get("/api/me").await.status, 401);
        let a = olivia.post("/api/login", json!({"username": "olivia", "password": "second-pass-2"})).await;
        assert_eq!((a.status, a.error()), (403, "account_disabled"));
        let users = c.get("/api/users").await;
        assert!(users.body.as_array().unwrap().iter().all(|u| u["username"] != "olivia"));
        assert!(duet(&["user", "enable", "olivia"], &env).status.success());
        assert_eq!(olivia.post("/api/login", json!({"username": "olivia", "password": "second-pass-2"})).await.status, 200);
        assert!(!duet(&["user", "disable", "nobody"], &env).status.success());
    }

    /// `duet doctor` looks without touching; `duet migrate` applies and lists, then finds nothing to do.
    #[tokio::test]
    async fn doctor_looks_and_migrate_lists_what_it_ran() {
        let dir = tempfile::tempdir().unwrap();
        let db = common::TestDb::create(common::backends::current(), dir.path());
        let env = [("DUET_DATABASE_URL", db.url.as_str()), ("DUET_LISTEN", "127.0.0.1:0"), ("DUET_TURN_LISTEN", "off")];

        let out = duet(&["doctor"], &env);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().find(|l| l.contains("database")).unwrap_or_default().to_string();
        if db.backend == common::Backend::Sqlite {
            assert!(line.starts_with("warn") && line.contains("does not exist yet"), "{text}");
            assert!(!dir.path().join("duet.db").exists(), "doctor must not create the database");
        } else {
            assert!(line.starts_with("warn") && line.contains("no duet schema yet"), "{text}");
        }

        let out = duet(&["migrate"], &env);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let applied: Vec<&str> = text.lines().filter(|l| l.starts_with("applied ")).collect();
        assert_eq!(applied.len(), 6, "{text}");
        assert!(applied[0].ends_with("_accounts") && applied[5].ends_with("_contacts"), "{text}");
        let again = duet(&["migrate"], &env);
        assert!(String::from_utf8_lossy(&again.stdout).contains("already up to date"), "{}", String::from_utf8_lossy(&again.stdout));

        let out = duet(&["doctor"], &env);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.lines().any(|l| l.starts_with("ok") && l.contains("schema up to date")), "{text}");
    }
}

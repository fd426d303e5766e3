//! Turns the test suites' database variables into `cfg`s, so that a suite whose backend has no
//! server is reported `ignored` with the reason rather than passed (tests/common/backends.rs);
//! likewise coturn's test clients (tests/coturn.rs) and schemathesis (tests/openapi.rs), found
//! on this machine or not.

fn main() {
    for (var, cfg) in [("DUET_TEST_POSTGRES_URL", "duet_test_postgres"), ("DUET_TEST_MYSQL_URL", "duet_test_mysql"), ("DUET_TEST_REDIS_URL", "duet_test_redis")] {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    println!("cargo::rustc-check-cfg=cfg(duet_test_coturn)");
    let tools = ["/usr/bin/turnutils_uclient", "/usr/bin/turnutils_stunclient", "/usr/bin/turnutils_peer"];
    // Installing the package changes /usr/bin, so the check is made again then (a path that does
    // not exist would make cargo run this script, and rebuild the crate, every time).
    if tools.iter().all(|t| std::path::Path::new(t).exists()) {
        println!("cargo::rerun-if-changed=/usr/bin/turnutils_uclient");
        println!("cargo::rustc-cfg=duet_test_coturn");
    } else {
        println!("cargo::rerun-if-changed=/usr/bin");
    }
    println!("cargo::rustc-check-cfg=cfg(duet_test_schemathesis)");
    println!("cargo::rerun-if-env-changed=PATH");
    let found = std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|dir| dir.join("schemathesis")).find(|p| p.is_file());
    match found {
        Some(path) => {
            println!("cargo::rerun-if-changed={}", path.display());
            println!("cargo::rustc-cfg=duet_test_schemathesis");
        }
        None => println!("cargo::rerun-if-changed=/usr/local/bin"),
    }
}

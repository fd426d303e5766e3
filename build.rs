//! Turns the test suites' database variables into `cfg`s, so that a suite whose backend has no
//! server is reported `ignored` with the reason rather than passed (tests/common/backends.rs).

fn main() {
    for (var, cfg) in [("DUET_TEST_POSTGRES_URL", "duet_test_postgres"), ("DUET_TEST_MYSQL_URL", "duet_test_mysql"), ("DUET_TEST_REDIS_URL", "duet_test_redis")] {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}

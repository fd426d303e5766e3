//! `DUET_DATABASE_URL`: which backend, where, and how to print it without its password.

use std::path::PathBuf;

/// A parsed `DUET_DATABASE_URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A file path; its folder is created at start.
    Sqlite(PathBuf),
    /// `postgres://` or `postgresql://`, passed to the driver as written.
    Postgres(String),
    /// `mysql://` (MySQL or MariaDB), passed to the driver as written.
    Mysql(String),
}

impl DatabaseUrl {
    /// Parses a database URL, or says in words what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() || path.starts_with(":memory:") {
                return Err(format!("{url:?} needs a file path, like sqlite://data/duet.db"));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        let server = |rest: &str, example: &str| -> Result<(), String> {
            let host = rest.split(['/', '?']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            if host.is_empty() {
                return Err(format!("{} needs a host, like {example}", redact(url)));
            }
            let database = rest.split_once('/').map(|(_, db)| db.split('?').next().unwrap_or_default()).unwrap_or_default();
            if database.is_empty() {
                return Err(format!("{} needs a database name, like {example}", redact(url)));
            }
            Ok(())
        };
        if let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) {
            server(rest, "postgres://duet:secret@127.0.0.1:5432/duet")?;
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        if let Some(rest) = url.strip_prefix("mysql://").or_else(|| url.strip_prefix("mariadb://")) {
            server(rest, "mysql://duet:secret@127.0.0.1:3306/duet")?;
            // The driver knows only mysql://; MariaDB speaks the same protocol.
            return Ok(DatabaseUrl::Mysql(format!("mysql://{rest}")));
        }
        Err(format!("{} must start with sqlite://, postgres:// or mysql://", redact(url)))
    }

    /// The backend's name, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "sqlite",
            DatabaseUrl::Postgres(_) => "postgres",
            DatabaseUrl::Mysql(_) => "mysql",
        }
    }
}

/// The URL with any password (in the user part or a `password=` parameter) replaced by `***`,
/// fit for a log line or an error message.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_backend_by_scheme() {
        assert_eq!(DatabaseUrl::parse("sqlite://data/duet.db"), Ok(DatabaseUrl::Sqlite(PathBuf::from("data/duet.db"))));
        assert_eq!(DatabaseUrl::parse("postgres://u@h/db").map(|u| u.backend()), Ok("postgres"));
        assert_eq!(DatabaseUrl::parse("postgresql://u@h:5432/db").map(|u| u.backend()), Ok("postgres"));
        assert_eq!(DatabaseUrl::parse("mysql://root@127.0.0.1:3306/test").map(|u| u.backend()), Ok("mysql"));
        assert_eq!(DatabaseUrl::parse("mariadb://root@h/test"), Ok(DatabaseUrl::Mysql("mysql://root@h/test".into())));
    }

    #[test]
    fn says_what_is_missing() {
        assert!(DatabaseUrl::parse("postgres://u:pw@h").unwrap_err().contains("database name"));
        assert!(DatabaseUrl::parse("mysql:///db").unwrap_err().contains("host"));
        assert!(DatabaseUrl::parse("oracle://x").unwrap_err().contains("must start with"));
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn never_prints_a_password() {
        assert_eq!(redact("postgres://duet:s3cret@db:5432/duet"), "postgres://duet:***@db:5432/duet");
        assert_eq!(redact("mysql://root@h/test"), "mysql://root@h/test");
        assert_eq!(redact("postgres://h/db?user=x&password=s3cret"), "postgres://h/db?user=x&password=***");
        assert_eq!(redact("sqlite://data/duet.db"), "sqlite://data/duet.db");
        let err = DatabaseUrl::parse("postgres://duet:s3cret@h").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }
}

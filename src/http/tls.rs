//! HTTPS: the operator's PEM files, or a self-signed certificate made for this machine so that
//! phones on a LAN get a secure context (browsers allow camera and microphone only there).

use std::path::{Path, PathBuf};

use axum_server::tls_rustls::RustlsConfig;

use crate::config::Settings;

/// Where a self-signed certificate is kept, so a browser's exception survives restarts.
pub fn self_signed_dir(settings: &Settings) -> PathBuf {
    match crate::store::DatabaseUrl::parse(&settings.database_url) {
        Ok(crate::store::DatabaseUrl::Sqlite(path)) => path.parent().map(|p| p.join("tls")).unwrap_or_else(|| PathBuf::from("data/tls")),
        _ => PathBuf::from("data/tls"),
    }
}

/// The names a development certificate covers: localhost, this host's name, its addresses.
fn names(settings: &Settings) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
            names.push(format!("{host}.local"));
        }
    }
    let lan = crate::turn::public_ip(settings).to_string();
    names.push(lan);
    if !settings.listen.ip().is_unspecified() {
        names.push(settings.listen.ip().to_string());
    }
    names.sort();
    names.dedup();
    names
}

/// The TLS configuration of this server, if it serves TLS.
pub async fn config(settings: &Settings) -> anyhow::Result<Option<RustlsConfig>> {
    // One process-wide crypto provider; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some((cert, key)) = &settings.tls {
        let config = RustlsConfig::from_pem_file(cert, key)
            .await
            .map_err(|e| anyhow::anyhow!("loading DUET_TLS_CERT/DUET_TLS_KEY ({}, {}): {e}", cert.display(), key.display()))?;
        return Ok(Some(config));
    }
    if !settings.tls_self_signed {
        return Ok(None);
    }
    let dir = self_signed_dir(settings);
    let (cert_path, key_path) = (dir.join("self-signed.crt"), dir.join("self-signed.key"));
    if !cert_path.is_file() || !key_path.is_file() {
        make_self_signed(&names(settings), &cert_path, &key_path)?;
    }
    tracing::info!(cert = %cert_path.display(), "serving HTTPS with a self-signed certificate (browsers will ask you to accept it)");
    Ok(Some(RustlsConfig::from_pem_file(&cert_path, &key_path).await?))
}

fn make_self_signed(names: &[String], cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(cert_path, made.cert.pem())?;
    std::fs::write(key_path, made.signing_key.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(key_path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::info!(names = ?names, "made a self-signed certificate");
    Ok(())
}

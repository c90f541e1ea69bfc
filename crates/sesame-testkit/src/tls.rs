//! Throwaway TLS material for a test server, or for every process of a
//! topology (one CA, one server certificate, shared by all of them).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

use crate::error::format_tail;
use crate::TestkitError;

/// A freshly generated CA and a server certificate it signed, written to disk.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    /// PEM of the CA certificate (what clients must trust).
    pub(crate) ca_pem: String,
    /// Path of the CA certificate file.
    pub(crate) ca_path: PathBuf,
    /// Path of the server certificate file.
    pub(crate) cert_path: PathBuf,
    /// Path of the server private key file.
    pub(crate) key_path: PathBuf,
}

impl TlsFiles {
    /// Generates a CA plus a server certificate valid for `127.0.0.1` and
    /// `localhost`, and writes `ca.crt`, `redis.crt` and `redis.key` into `dir`.
    pub(crate) fn generate(dir: &Path) -> Result<Self, TestkitError> {
        let cert_err = |e: rcgen::Error| TestkitError::Certificate(e.to_string());

        let ca_key = KeyPair::generate().map_err(cert_err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        ca_params.distinguished_name.push(DnType::CommonName, "sesame-testkit CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_err)?;

        let server_key = KeyPair::generate().map_err(cert_err)?;
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(cert_err)?;
        server_params.distinguished_name.push(DnType::CommonName, "localhost");
        server_params.key_usages =
            vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        // Redis also presents this certificate when acting as a client
        // (replication, cluster bus), hence both purposes.
        server_params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let server_cert =
            server_params.signed_by(&server_key, &ca_cert, &ca_key).map_err(cert_err)?;

        let files = Self {
            ca_pem: ca_cert.pem(),
            ca_path: dir.join("ca.crt"),
            cert_path: dir.join("redis.crt"),
            key_path: dir.join("redis.key"),
        };
        write(&files.ca_path, &files.ca_pem)?;
        write(&files.cert_path, &server_cert.pem())?;
        write(&files.key_path, &server_key.serialize_pem())?;
        Ok(files)
    }
}

/// TLS material shared by every process of a topology (data nodes and
/// sentinels), in a temporary directory of its own that lives as long as this
/// value, so a single [`TlsFiles::ca_pem`] lets a client verify every node.
///
/// The owner must keep it until its processes are gone (they read the files
/// at every (re)start).
#[derive(Debug)]
pub(crate) struct SharedTls {
    /// The generated files.
    pub(crate) files: TlsFiles,
    // Declared last: removed once `files` is no longer needed.
    _dir: TempDir,
}

impl SharedTls {
    /// Generates a CA and a server certificate for `127.0.0.1` / `localhost`
    /// in a new temporary directory (named `sesame-tls-…`).
    pub(crate) fn generate() -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new().prefix("sesame-tls-").tempdir().map_err(|source| {
            TestkitError::Io {
                context: "cannot create a temporary directory".to_owned(),
                source,
                log_tail: format_tail(""),
            }
        })?;
        let files = TlsFiles::generate(dir.path())?;
        Ok(Self { files, _dir: dir })
    }
}

/// Writes `contents` to `path`, mapping the error.
fn write(path: &Path, contents: &str) -> Result<(), TestkitError> {
    std::fs::write(path, contents).map_err(|source| TestkitError::Io {
        context: format!("cannot write {}", path.display()),
        source,
        log_tail: format_tail(""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::generate(dir.path()).unwrap();
        assert!(files.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let cert = std::fs::read_to_string(&files.cert_path).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        let key = std::fs::read_to_string(&files.key_path).unwrap();
        assert!(key.contains("PRIVATE KEY"));
    }

    #[test]
    fn shared_files_live_as_long_as_the_value() {
        let shared = SharedTls::generate().unwrap();
        let cert = shared.files.cert_path.clone();
        assert!(cert.exists());
        drop(shared);
        assert!(!cert.exists());
    }
}

//! The TLS listener's rustls configuration, from the PEM files named by `--tls-cert`,
//! `--tls-key` and `--tls-client-ca`. Crypto is rustls' `ring` provider.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::error::{Error, Result};

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        flag,
        path: path.to_owned(),
        source,
    })
}

fn pem_error(flag: &'static str, path: &Path, problem: impl Into<String>) -> Error {
    Error::Pem {
        flag,
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Every `CERTIFICATE` block of a PEM file.
fn certificates(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(flag, path, format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(flag, path, "no `BEGIN CERTIFICATE` block"));
    }
    Ok(certs)
}

fn private_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read(flag, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => pem_error(
            flag,
            path,
            "no private key block (`BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`)",
        ),
        e => pem_error(flag, path, format!("invalid PEM: {e}")),
    })
}

/// A server configuration presenting `cert` (chain, leaf first) with `key`; with `client_ca`,
/// every client must present a certificate issued by one of its CAs (mutual TLS).
///
/// # Errors
/// [`Error::ReadFile`], [`Error::Pem`] or [`Error::KeyMismatch`] naming the file and flag: unreadable, not PEM, no certificate or key,
/// a key that does not belong to the certificate, a CA file rustls cannot use.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>> {
    let chain = certificates("--tls-cert", cert)?;
    let key_der = private_key("--tls-key", key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| pem_error("--tls-cert", cert, e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for der in certificates("--tls-client-ca", ca)? {
                roots
                    .add(der)
                    .map_err(|e| pem_error("--tls-client-ca", ca, format!("unusable CA: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| pem_error("--tls-client-ca", ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key_der)
        .map_err(|e| Error::KeyMismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            problem: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use ferry_testkit::tls::TestCertificates;

    use super::*;

    #[test]
    fn loads_the_test_pki_with_and_without_client_auth() {
        let dir = tempfile::tempdir().unwrap();
        let certs = TestCertificates::generate(dir.path());
        server_config(&certs.server_cert, &certs.server_key, None).unwrap();
        server_config(&certs.server_cert, &certs.server_key, Some(&certs.ca)).unwrap();
    }

    #[test]
    fn bad_files_are_named_with_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let certs = TestCertificates::generate(dir.path());
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a PEM file\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let cases = [
            (
                server_config(&missing, &certs.server_key, None),
                "cannot read --tls-cert",
                "missing.pem",
            ),
            (
                server_config(&garbage, &certs.server_key, None),
                "no `BEGIN CERTIFICATE` block",
                "garbage.pem",
            ),
            (
                server_config(&certs.server_cert, &garbage, None),
                "no private key block",
                "garbage.pem",
            ),
            (
                // A certificate file where the key should be.
                server_config(&certs.server_cert, &certs.server_cert, None),
                "no private key block",
                "server.pem",
            ),
            (
                server_config(&certs.server_cert, &certs.client_key, None),
                "does not fit --tls-cert",
                "client.key",
            ),
            (
                server_config(&certs.server_cert, &certs.server_key, Some(&garbage)),
                "--tls-client-ca",
                "garbage.pem",
            ),
        ];
        for (result, problem, file) in cases {
            let message = result.unwrap_err().to_string();
            assert!(
                message.contains(problem) && message.contains(file),
                "{message:?} names {file} and {problem}"
            );
        }
    }
}

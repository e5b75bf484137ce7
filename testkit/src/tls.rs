//! A throw-away PKI for TLS tests: a CA, a server certificate for `localhost`, `127.0.0.1`
//! and `::1`, and a client certificate for mutual TLS, written as PEM files at test time.
//!
//! ```no_run
//! let dir = tempfile::tempdir().unwrap();
//! let certs = ferry_testkit::tls::TestCertificates::generate(dir.path());
//! // Broker: --tls-cert certs.server_cert --tls-key certs.server_key [--tls-client-ca certs.ca]
//! // librdkafka: ssl.ca.location = certs.ca
//! //             [ssl.certificate.location = certs.client_cert, ssl.key.location = certs.client_key]
//! ```

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Paths of the PEM files [`TestCertificates::generate`] wrote. Keys are PKCS#8
/// (`BEGIN PRIVATE KEY`, ECDSA P-256); certificates are valid from 1975 to 4096.
#[derive(Clone, Debug)]
pub struct TestCertificates {
    /// `ca.pem`: the CA certificate that issued the other two (trust it on both sides).
    pub ca: PathBuf,
    /// `server.pem`: for `localhost`, `127.0.0.1` and `::1`, server-auth usage.
    pub server_cert: PathBuf,
    /// `server.key`: the server certificate's key.
    pub server_key: PathBuf,
    /// `client.pem`: subject `CN=ferry-test-client`, client-auth usage.
    pub client_cert: PathBuf,
    /// `client.key`: the client certificate's key.
    pub client_key: PathBuf,
}

/// The common name of the client certificate.
pub const CLIENT_COMMON_NAME: &str = "ferry-test-client";

fn leaf(
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> (String, String) {
    let key = KeyPair::generate().expect("generate a key");
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("certificate names");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer).expect("sign a certificate");
    (cert.pem(), key.serialize_pem())
}

impl TestCertificates {
    /// Generates a fresh CA, server and client certificate and writes them into `dir`
    /// (`ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`).
    ///
    /// # Panics
    /// When generation fails or a file cannot be written (this is test support).
    pub fn generate(dir: &Path) -> TestCertificates {
        let ca_key = KeyPair::generate().expect("generate the CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Ferry test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_pem = ca.self_signed(&ca_key).expect("self-sign the CA").pem();
        let issuer = Issuer::new(ca, ca_key);
        let (server_pem, server_key) = leaf(
            &["localhost", "127.0.0.1", "::1"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
            &issuer,
        );
        let (client_pem, client_key) = leaf(
            &[CLIENT_COMMON_NAME],
            CLIENT_COMMON_NAME,
            ExtendedKeyUsagePurpose::ClientAuth,
            &issuer,
        );
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        };
        TestCertificates {
            ca: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &server_pem),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_pem),
            client_key: write("client.key", &client_key),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ClientConnection, RootCertStore, ServerConnection};

    use super::*;

    fn roots(ca: &Path) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(ca).unwrap())
            .unwrap();
        Arc::new(roots)
    }

    /// A full mutual-TLS handshake in memory for `server_name`.
    fn handshake(certs: &TestCertificates, server_name: &str) -> Result<(), rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots(&certs.ca), provider.clone())
                .build()
                .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_file(&certs.server_cert).unwrap()],
                PrivateKeyDer::from_pem_file(&certs.server_key).unwrap(),
            )
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(&certs.ca))
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(&certs.client_cert).unwrap()],
                PrivateKeyDer::from_pem_file(&certs.client_key).unwrap(),
            )
            .unwrap();
        let name = ServerName::try_from(server_name.to_owned()).unwrap();
        let mut client = ClientConnection::new(Arc::new(client), name).unwrap();
        let mut server = ServerConnection::new(Arc::new(server)).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets()?;
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish in 10 round trips");
    }

    #[test]
    fn certificates_complete_a_mutual_tls_handshake_for_loopback_names() {
        let dir = tempfile::tempdir().unwrap();
        let certs = TestCertificates::generate(dir.path());
        for name in ["127.0.0.1", "localhost", "::1"] {
            handshake(&certs, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(
            handshake(&certs, "example.com").is_err(),
            "the server certificate is only for loopback names"
        );
    }
}

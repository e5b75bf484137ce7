//! Who may talk to the broker: SASL authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and
//! the TLS listener, loaded once at startup from the `--sasl-*` and `--tls-*` flags.
//!
//! The mechanisms themselves ([`scram`], [`plain`]) are pure message checks; the per-connection
//! exchange that drives them lives in the server's `sasl` module.

pub mod acl;
pub mod credentials;
mod mechanism;
pub mod plain;
pub mod scram;
pub mod tls;
pub mod users;

use std::path::Path;
use std::sync::Arc;

pub use mechanism::Mechanism;
pub use users::SaslUsers;

use crate::error::Result;

/// The files the `--tls-*` and `--sasl-*` flags name.
#[derive(Clone, Copy, Debug, Default)]
pub struct SecurityFiles<'a> {
    /// `--tls-cert`: the listener's certificate chain; with `tls_key`, the listener speaks TLS.
    pub tls_cert: Option<&'a Path>,
    /// `--tls-key`: the certificate's private key.
    pub tls_key: Option<&'a Path>,
    /// `--tls-client-ca`: clients must present a certificate these CAs issued (mutual TLS).
    pub tls_client_ca: Option<&'a Path>,
    /// `--sasl-users`: when set, every connection authenticates first.
    pub sasl_users: Option<&'a Path>,
    /// `--sasl-mechanisms`: what SASL offers.
    pub sasl_mechanisms: &'a [Mechanism],
}

/// The listener's security, as loaded from the flags.
#[derive(Clone, Default)]
pub struct ListenerSecurity {
    /// TLS on the Kafka listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// SASL users; when set every connection authenticates first.
    pub sasl: Option<Arc<SaslUsers>>,
}

impl std::fmt::Debug for ListenerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl ListenerSecurity {
    /// Reads the PEM files and the users file in `files`.
    ///
    /// # Errors
    /// [`crate::Error::ReadFile`], [`crate::Error::Pem`], [`crate::Error::KeyMismatch`] or
    /// [`crate::Error::SaslUsers`], naming the flag, the file and the problem.
    pub fn load(files: &SecurityFiles<'_>) -> Result<Self> {
        let tls = match (files.tls_cert, files.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(cert, key, files.tls_client_ca)?),
            _ => None,
        };
        let sasl = match files.sasl_users {
            Some(path) => Some(Arc::new(SaslUsers::load(path, files.sasl_mechanisms)?)),
            None => None,
        };
        Ok(ListenerSecurity { tls, sasl })
    }

    /// Kafka's name for the listener's protocol: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or
    /// `SASL_SSL` (what a client sets as `security.protocol`).
    pub fn protocol(&self) -> &'static str {
        match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }
}

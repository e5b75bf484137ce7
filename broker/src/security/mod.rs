//! Who may talk to the broker: SASL authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and
//! the TLS listener, loaded once at startup from the `--sasl-*` and `--tls-*` flags.
//!
//! The mechanisms themselves ([`scram`], [`plain`]) are pure message checks; the per-connection
//! exchange that drives them lives in the server's `sasl` module.

pub mod plain;
pub mod scram;
pub mod tls;
pub mod users;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

pub use users::SaslUsers;

use crate::config::BrokerConfig;

/// A SASL mechanism the broker can offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// RFC 4616: the password in clear (use it over TLS).
    Plain,
    /// RFC 5802 / RFC 7677 with SHA-256.
    ScramSha256,
    /// RFC 5802 with SHA-512.
    ScramSha512,
}

impl Mechanism {
    /// Every mechanism, in the order offered by default.
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    /// The IANA / Kafka name (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The hash of a SCRAM mechanism; `None` for PLAIN.
    pub fn scram_hash(self) -> Option<scram::ScramHash> {
        match self {
            Mechanism::Plain => None,
            Mechanism::ScramSha256 => Some(scram::ScramHash::Sha256),
            Mechanism::ScramSha512 => Some(scram::ScramHash::Sha512),
        }
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mechanism {
    type Err = String;

    /// Kafka's names; the flag also accepts lower case.
    fn from_str(s: &str) -> Result<Self, String> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown SASL mechanism `{s}`; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
            })
    }
}

/// Why the security settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A file named by a flag cannot be read.
    #[error("cannot read {flag} {}: {source}", path.display())]
    Read {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{flag} {}: {problem}", path.display())]
    Pem {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The key does not belong to the certificate.
    #[error("--tls-key {} does not fit --tls-cert {}: {problem}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        problem: String,
    },
    /// A bad line in the users file.
    #[error("--sasl-users {} line {line}: {problem} (format: one USER:PASSWORD per line)", path.display())]
    Users {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0: the whole file).
        line: usize,
        /// What is wrong (never the password).
        problem: String,
    },
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
    /// Reads the PEM files and the users file named by `config`.
    ///
    /// # Errors
    /// [`SecurityError`] naming the flag, the file and the problem.
    pub fn load(config: &BrokerConfig) -> Result<Self, SecurityError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(
                cert,
                key,
                config.tls_client_ca.as_deref(),
            )?),
            _ => None,
        };
        let sasl = match &config.sasl_users {
            Some(path) => Some(Arc::new(SaslUsers::load(path, &config.sasl_mechanisms)?)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names_round_trip() {
        for m in Mechanism::ALL {
            assert_eq!(m.name().parse::<Mechanism>(), Ok(m));
        }
        assert_eq!("scram-sha-512".parse(), Ok(Mechanism::ScramSha512));
        assert!(
            "GSSAPI"
                .parse::<Mechanism>()
                .unwrap_err()
                .contains("GSSAPI")
        );
    }
}

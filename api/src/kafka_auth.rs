//! How a Kafka client authenticates to and encrypts its connections with a cluster: the
//! librdkafka settings of `security.protocol`, SASL and TLS.
//!
//! Two places supply them. Ferry's own log (Brokers, KafkaChannels, the journal) is configured
//! once per process from the `FERRY_KAFKA_*` environment the Helm chart sets
//! ([`log_client_settings`]). A KafkaSource reads a cluster of its own choosing: its `spec.net`
//! [resolves](crate::sources::KafkaNetSpec::resolve) to a [`KafkaAuth`] with the material the
//! operator read from the referenced Secrets, and the contract carries it to the dispatcher —
//! which is why the contract is stored in a Secret and why [`Credential`] never prints its value.
//!
//! This module sits below both `sources` and `contract` (it imports neither), so that the two can
//! share it without importing each other back.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::validation::{FieldErrors, Path};
use crate::{Error, Result};

/// A secret value (password, private key, certificate) that `Debug` and `Display` never show.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credential(String);

impl Credential {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Credential {
        Credential(value.into())
    }

    /// The value, for handing to the client library; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A SASL mechanism Ferry's clients (librdkafka with OpenSSL) can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// RFC 4616; the password travels in the clear unless TLS is on.
    #[serde(rename = "PLAIN")]
    Plain,
    /// RFC 7677.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// RFC 5802 with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The names accepted by [`SaslMechanism::parse`], for error messages.
    pub const NAMES: &'static str = "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512";

    /// Kafka's (and librdkafka's) name of the mechanism.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// Parses a mechanism name as Knative's KafkaSource accepts it (case-insensitive, surrounding
    /// white space ignored, as Secret values often end in a newline).
    ///
    /// # Errors
    /// The name is not one of [`SaslMechanism::NAMES`] (GSSAPI and OAUTHBEARER are not built in).
    pub fn parse(name: &str) -> Result<SaslMechanism> {
        match name.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            other => Err(Error::UnsupportedSaslMechanism(other.to_owned())),
        }
    }
}

/// SASL credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SaslAuth {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// User name.
    pub username: Credential,
    /// Password.
    pub password: Credential,
}

/// TLS settings; all PEM. No CA means the system's trust store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsAuth {
    /// CA certificate(s) the cluster's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<Credential>,
    /// Client certificate, for mutual TLS (with `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<Credential>,
    /// Client private key, for mutual TLS (with `cert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Credential>,
}

/// How to connect to a KafkaSource's cluster. The default (neither SASL nor TLS) is a plaintext
/// connection, as in Knative.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaAuth {
    /// SASL authentication; `None` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslAuth>,
    /// TLS; `None` for a plaintext connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsAuth>,
}

/// librdkafka configuration entries (`key`, value). `Debug` prints the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientSettings(Vec<(&'static str, Credential)>);

impl ClientSettings {
    /// The entries, for `ClientConfig::set`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.expose()))
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn push(&mut self, key: &'static str, value: impl Into<String>) {
        self.0.push((key, Credential::new(value)));
    }
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl KafkaAuth {
    /// librdkafka's `security.protocol` for these settings.
    pub fn security_protocol(&self) -> &'static str {
        match (self.sasl.is_some(), self.tls.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SASL_PLAINTEXT",
            (false, true) => "SSL",
            (true, true) => "SASL_SSL",
        }
    }

    /// The librdkafka configuration: `security.protocol` always, then the SASL and TLS entries
    /// (PEM given inline: `ssl.ca.pem`, `ssl.certificate.pem`, `ssl.key.pem`).
    pub fn client_settings(&self) -> ClientSettings {
        let mut out = ClientSettings::default();
        out.push("security.protocol", self.security_protocol());
        if let Some(sasl) = &self.sasl {
            out.push("sasl.mechanism", sasl.mechanism.as_str());
            out.push("sasl.username", sasl.username.expose());
            out.push("sasl.password", sasl.password.expose());
        }
        if let Some(tls) = &self.tls {
            for (key, value) in [
                ("ssl.ca.pem", &tls.ca_cert),
                ("ssl.certificate.pem", &tls.cert),
                ("ssl.key.pem", &tls.key),
            ] {
                if let Some(v) = value {
                    out.push(key, v.expose());
                }
            }
        }
        out
    }

    /// Checks what librdkafka would otherwise reject late: a user name, and a client
    /// certificate and key that come together.
    pub(crate) fn validate(&self, at: &Path, errs: &mut FieldErrors) {
        if let Some(sasl) = &self.sasl
            && sasl.username.expose().is_empty()
        {
            errs.push(
                &at.field("sasl").field("username"),
                "is empty",
                "reference a Secret key holding the SASL user name",
            );
        }
        if let Some(tls) = &self.tls
            && tls.cert.is_some() != tls.key.is_some()
        {
            errs.push(
                &at.field("tls"),
                "has a client certificate without its key, or a key without its certificate",
                "mutual TLS needs both: set tls.cert and tls.key, or neither",
            );
        }
    }
}

/// The settings of Ferry's own log clients from the `FERRY_KAFKA_*` variables the Helm chart
/// sets when Ferry uses an external Kafka (`lookup` reads one; empty counts as unset). TLS
/// material is referenced by file (`ssl.*.location`), as the chart mounts it.
pub fn log_client_settings(lookup: impl Fn(&str) -> Option<String>) -> ClientSettings {
    let mut out = ClientSettings::default();
    for (var, key) in [
        ("FERRY_KAFKA_SECURITY_PROTOCOL", "security.protocol"),
        ("FERRY_KAFKA_SASL_MECHANISM", "sasl.mechanism"),
        ("FERRY_KAFKA_SASL_USERNAME", "sasl.username"),
        ("FERRY_KAFKA_SASL_PASSWORD", "sasl.password"),
        ("FERRY_KAFKA_TLS_CA_FILE", "ssl.ca.location"),
        ("FERRY_KAFKA_TLS_CERT_FILE", "ssl.certificate.location"),
        ("FERRY_KAFKA_TLS_KEY_FILE", "ssl.key.location"),
    ] {
        if let Some(value) = lookup(var).filter(|v| !v.is_empty()) {
            out.push(key, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(json: serde_json::Value) -> KafkaAuth {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn security_protocol_and_settings_follow_sasl_and_tls() {
        let cases = [
            (
                serde_json::json!({}),
                "PLAINTEXT",
                vec!["security.protocol"],
            ),
            (
                serde_json::json!({"sasl": {"mechanism": "SCRAM-SHA-512", "username": "u", "password": "p"}}),
                "SASL_PLAINTEXT",
                vec![
                    "security.protocol",
                    "sasl.mechanism",
                    "sasl.username",
                    "sasl.password",
                ],
            ),
            (
                serde_json::json!({"tls": {}}),
                "SSL",
                vec!["security.protocol"],
            ),
            (
                serde_json::json!({"tls": {"caCert": "CA", "cert": "C", "key": "K"},
                                   "sasl": {"mechanism": "PLAIN", "username": "u", "password": "p"}}),
                "SASL_SSL",
                vec![
                    "security.protocol",
                    "sasl.mechanism",
                    "sasl.username",
                    "sasl.password",
                    "ssl.ca.pem",
                    "ssl.certificate.pem",
                    "ssl.key.pem",
                ],
            ),
        ];
        for (json, protocol, keys) in cases {
            let a = auth(json.clone());
            assert_eq!(a.security_protocol(), protocol, "{json}");
            let settings = a.client_settings();
            assert_eq!(
                settings.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                keys,
                "{json}"
            );
            assert_eq!(settings.get("security.protocol"), Some(protocol));
        }
        let a = auth(
            serde_json::json!({"sasl": {"mechanism": "SCRAM-SHA-256", "username": "u", "password": "hunter2"}}),
        );
        assert_eq!(a.client_settings().get("sasl.password"), Some("hunter2"));
        assert_eq!(
            a.client_settings().get("sasl.mechanism"),
            Some("SCRAM-SHA-256")
        );
    }

    #[test]
    fn debug_never_shows_credentials() {
        let a = auth(serde_json::json!({
            "sasl": {"mechanism": "PLAIN", "username": "alice", "password": "hunter2"},
            "tls": {"key": "-----BEGIN PRIVATE KEY-----", "cert": "C"}}));
        for shown in [format!("{a:?}"), format!("{:?}", a.client_settings())] {
            for secret in ["alice", "hunter2", "BEGIN PRIVATE KEY"] {
                assert!(!shown.contains(secret), "{shown} shows {secret}");
            }
        }
        assert!(format!("{:?}", a.client_settings()).contains("sasl.password"));
    }

    #[test]
    fn mechanisms_parse_like_knative() {
        for (name, want) in [
            ("PLAIN", SaslMechanism::Plain),
            ("plain\n", SaslMechanism::Plain),
            ("SCRAM-SHA-256", SaslMechanism::ScramSha256),
            (" scram-sha-512 ", SaslMechanism::ScramSha512),
        ] {
            assert_eq!(SaslMechanism::parse(name).ok(), Some(want), "{name:?}");
        }
        let err = SaslMechanism::parse("GSSAPI").unwrap_err().to_string();
        assert!(
            err.contains("`GSSAPI`") && err.ends_with(&format!("; use {}", SaslMechanism::NAMES)),
            "{err}"
        );
        assert!(
            serde_json::from_value::<SaslAuth>(
                serde_json::json!({"mechanism": "OAUTHBEARER", "username": "u", "password": "p"})
            )
            .is_err()
        );
    }

    #[test]
    fn validate_wants_a_user_and_cert_with_key() {
        let cases = [
            (serde_json::json!({}), vec![]),
            (
                serde_json::json!({"sasl": {"mechanism": "PLAIN", "username": "", "password": "p"}}),
                vec!["auth.sasl.username"],
            ),
            (serde_json::json!({"tls": {"cert": "C"}}), vec!["auth.tls"]),
            (
                serde_json::json!({"tls": {"key": "K", "caCert": "CA"}}),
                vec!["auth.tls"],
            ),
            (
                serde_json::json!({"tls": {"key": "K", "cert": "C"}}),
                vec![],
            ),
        ];
        for (json, want) in cases {
            let mut errs = FieldErrors::default();
            auth(json.clone()).validate(&Path::root("auth"), &mut errs);
            let got: Vec<String> = errs.errors().iter().map(|e| e.path.clone()).collect();
            assert_eq!(got, want, "{json}");
        }
    }

    #[test]
    fn log_settings_come_from_the_chart_variables() {
        let env = |var: &str| match var {
            "FERRY_KAFKA_SECURITY_PROTOCOL" => Some("SASL_SSL".to_owned()),
            "FERRY_KAFKA_SASL_MECHANISM" => Some("SCRAM-SHA-512".to_owned()),
            "FERRY_KAFKA_SASL_USERNAME" => Some("ferry".to_owned()),
            "FERRY_KAFKA_SASL_PASSWORD" => Some("s3cret".to_owned()),
            "FERRY_KAFKA_TLS_CA_FILE" => Some("/etc/ferry/kafka-tls/ca.crt".to_owned()),
            "FERRY_KAFKA_TLS_CERT_FILE" => Some(String::new()),
            _ => None,
        };
        let s = log_client_settings(env);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("sasl.username", "ferry"),
                ("sasl.password", "s3cret"),
                ("ssl.ca.location", "/etc/ferry/kafka-tls/ca.crt"),
            ]
        );
        assert_eq!(log_client_settings(|_| None), ClientSettings::default());
    }
}

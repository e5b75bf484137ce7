//! How the dispatcher's Kafka clients connect: `security.protocol`, SASL and TLS.
//!
//! Ferry's own log (Brokers, KafkaChannels, the journal) takes the `FERRY_KAFKA_*` variables the
//! Helm chart sets; a KafkaSource's cluster takes the source's `spec.net` from the contract.

use std::sync::OnceLock;

use ferry_api::contract::{ClientSettings, KafkaAuth, log_client_settings};
use rdkafka::ClientConfig;

/// A client configuration for `bootstrap` with the connection settings of a resource with
/// `auth` (`None`: Ferry's own log).
pub fn client(bootstrap: &str, auth: Option<&KafkaAuth>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    let owned;
    let settings = match auth {
        Some(auth) => {
            owned = auth.client_settings();
            &owned
        }
        None => log_settings(),
    };
    for (key, value) in settings.iter() {
        config.set(key, value);
    }
    config
}

/// The settings of Ferry's own log, read from the environment once.
fn log_settings() -> &'static ClientSettings {
    static SETTINGS: OnceLock<ClientSettings> = OnceLock::new();
    SETTINGS.get_or_init(|| log_client_settings(|var| std::env::var(var).ok()))
}

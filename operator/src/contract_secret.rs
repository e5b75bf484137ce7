//! The Secret the dispatchers mount the contract from: how the contract is stored in it, read
//! back and written.
//!
//! A Secret, not a ConfigMap, because the contract carries the credentials of KafkaSources'
//! `spec.net`. The operator writes the contract gzip-compressed under `data.contract.gz`
//! ([`CONTRACT_KEY`]), which keeps tens of thousands of egresses within Kubernetes' 1 MiB object
//! limit; the chart seeds `data.contract.json` ([`SEED_KEY`], plain JSON, generation 0) and
//! never renders the operator's key, so Helm and the operator never own the same field. Readers
//! take the operator's key when present, else the seed ([`key_in_force`]).

use std::collections::BTreeMap;

use ferry_api::contract::Contract;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::error::{Error, Result};

pub use ferry_api::contract::{CONTRACT_KEY, SEED_KEY, key_in_force};

/// The contract Secret's content as a JSON merge patch: the gzip under the operator's key (the
/// chart's seed is left as it is).
pub fn secret_patch(contract: &Contract) -> serde_json::Value {
    let gz = ByteString(contract.to_gzip());
    serde_json::json!({"data": {CONTRACT_KEY: gz}})
}

/// The contract Secret as created when it is missing: type Opaque, the gzip under `data`.
fn new_secret(name: &str, contract: &Contract) -> Secret {
    let mut secret = Secret::default();
    secret.metadata.name = Some(name.to_owned());
    secret.type_ = Some("Opaque".to_owned());
    secret.data = Some(BTreeMap::from([(
        CONTRACT_KEY.to_owned(),
        ByteString(contract.to_gzip()),
    )]));
    secret
}

/// Reads the contract in force in a Secret (the operator's key, else the chart's seed), gzip
/// or plain JSON; `None` when it holds neither key.
///
/// # Errors
/// [`Error::Secret`]: the Secret holds something that is not a contract (the message never
/// quotes the content).
pub fn contract_in(secret: &Secret) -> Result<Option<Contract>> {
    let data = secret.data.as_ref();
    let key = key_in_force(|k| data.is_some_and(|d| d.contains_key(k)));
    match key.and_then(|k| data.and_then(|d| d.get(k))) {
        Some(bytes) => Contract::from_bytes(&bytes.0)
            .map(Some)
            .map_err(|reason| Error::Secret {
                secret: format!(
                    "{}/{}",
                    secret.metadata.namespace.as_deref().unwrap_or_default(),
                    secret.metadata.name.as_deref().unwrap_or_default()
                ),
                reason: reason.to_string(),
            }),
        None => Ok(None),
    }
}

/// The contract Secret `namespace`/`name`.
pub struct ContractSecret {
    api: Api<Secret>,
    name: String,
    /// Where the ingress role's contract goes, when it has its own Secret.
    ingress: Option<String>,
}

impl ContractSecret {
    /// The Secret `name` in `namespace`.
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        ContractSecret {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            ingress: None,
        }
    }

    /// Also writes [`Contract::for_ingress`] to the Secret `name` ingress dispatchers mount
    /// (none when `name` is empty).
    pub fn with_ingress(mut self, name: &str) -> Self {
        self.ingress = (!name.is_empty()).then(|| name.to_owned());
        self
    }

    /// Its name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The contract it holds now; `None` when the Secret or its key is missing.
    ///
    /// # Errors
    /// [`Error::Kube`] when it cannot be read, [`Error::Secret`] when it holds no contract.
    pub async fn read(&self) -> Result<Option<Contract>> {
        match self.api.get_opt(&self.name).await? {
            Some(secret) => contract_in(&secret),
            None => Ok(None),
        }
    }

    /// Merge-patches `contract` into the Secret, or creates the Secret when it is gone.
    ///
    /// # Errors
    /// [`Error::Kube`]: the API server refused both.
    pub async fn write(&self, contract: &Contract) -> Result<()> {
        // The ingress Secret first: once the full one carries a generation, the operator
        // waits for every dispatcher to report it, so neither may lag behind.
        self.write_ingress(contract).await?;
        self.write_to(&self.name, contract).await
    }

    /// Writes [`Contract::for_ingress`] of `contract` to the ingress Secret, when there is one.
    pub async fn write_ingress(&self, contract: &Contract) -> Result<()> {
        match &self.ingress {
            Some(ingress) => self.write_to(ingress, &contract.for_ingress()).await,
            None => Ok(()),
        }
    }

    async fn write_to(&self, name: &str, contract: &Contract) -> Result<()> {
        let patch = secret_patch(contract);
        match self
            .api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 404 => {
                self.api
                    .create(&PostParams::default(), &new_secret(name, contract))
                    .await?;
                Ok(())
            }
            other => other.map(|_| ()).map_err(Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::contract::{ContractResource, Egress, ObjectRef};

    fn contract(generation: u64) -> Contract {
        let egress: Egress = serde_json::from_value(serde_json::json!({
            "uid": "a", "ref": {"kind": "Trigger", "namespace": "ns", "name": "a"},
            "consumerGroup": "g-a", "destination": {"url": "http://a"},
        }))
        .expect("egress");
        Contract {
            generation,
            resources: vec![ContractResource {
                uid: "b".into(),
                reference: ObjectRef::new("Broker", "ns", "b"),
                topics: vec!["t".into()],
                bootstrap_servers: "k:9092".into(),
                auth: None,
                ingress: None,
                egresses: vec![egress],
            }],
            activation: vec![],
            routes: vec![],
            tag_header_routing: false,
            tracing: None,
            activators: vec![],
        }
    }

    /// `text` as a Secret's `data` value (base64), through `ByteString`'s own encoding.
    fn base64(text: &str) -> serde_json::Value {
        serde_json::to_value(ByteString(text.as_bytes().to_vec())).expect("base64")
    }

    fn secret(data: Option<serde_json::Value>) -> Secret {
        let mut secret = serde_json::json!({"metadata": {"name": "ferry-contract"}});
        if let Some(data) = data {
            secret["data"] = data;
        }
        serde_json::from_value(secret).expect("secret")
    }

    fn read(secret: &Secret) -> Option<Contract> {
        contract_in(secret).expect("a contract or none")
    }

    #[test]
    fn the_secret_holds_gzip_under_data_and_plain_json_is_read_too() {
        let c = contract(7);
        let patch = secret_patch(&c);
        assert_eq!(patch.as_object().map(|o| o.len()), Some(1), "{patch}");
        assert_eq!(read(&secret(Some(patch["data"].clone()))), Some(c.clone()));
        let created = new_secret("ferry-contract", &c);
        assert_eq!(created.type_.as_deref(), Some("Opaque"));
        assert!(created.string_data.is_none());
        assert_eq!(read(&created), Some(c));
        assert_eq!(
            patch["data"]
                .as_object()
                .map(|d| d.keys().collect::<Vec<_>>()),
            Some(vec![&CONTRACT_KEY.to_owned()]),
            "the operator never writes the chart's seed"
        );
        // The chart's seed: plain JSON bytes under its own key.
        let seed = base64("{\"generation\":0,\"resources\":[]}");
        let plain = secret(Some(serde_json::json!({SEED_KEY: seed.clone()})));
        assert_eq!(read(&plain).map(|c| c.generation), Some(0));
        // Once the operator has written, its key is the contract in force, whatever the seed.
        let both = secret(Some(serde_json::json!({
            SEED_KEY: seed,
            CONTRACT_KEY: patch["data"][CONTRACT_KEY].clone(),
        })));
        assert_eq!(read(&both).map(|c| c.generation), Some(7));
        assert_eq!(read(&secret(None)), None);
        assert_eq!(
            read(&secret(Some(serde_json::json!({"other": "eA=="})))),
            None
        );
        let bad = secret(Some(serde_json::json!({CONTRACT_KEY: base64("not json")})));
        let e = contract_in(&bad).expect_err("not a contract").to_string();
        assert!(e.contains("/ferry-contract holds no valid contract"), "{e}");
        assert!(!e.contains("not json"), "the content is never quoted: {e}");
    }

    #[tokio::test]
    async fn the_ingress_secret_gets_the_credential_free_contract_first() {
        use http::{Method, Request, Response};
        use kube::client::Body;
        use tower_test::mock;
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let secrets =
            ContractSecret::new(Client::new(service, "default"), "ferry", "ferry-contract")
                .with_ingress("ferry-contract-ingress");
        let mut full = contract(3);
        full.resources[0].ingress = Some(ferry_api::contract::Ingress {
            path: "/ns/b".into(),
        });
        let source = ContractResource {
            uid: "k".into(),
            reference: ObjectRef::new("KafkaSource", "ns", "k"),
            ingress: None,
            auth: Some(
                serde_json::from_value(serde_json::json!({"sasl": {
                "mechanism": "PLAIN", "username": "u", "password": "secret-pw"}}))
                .expect("auth"),
            ),
            egresses: Vec::new(),
            ..full.resources[0].clone()
        };
        full.resources.push(source);
        let expected = [
            ("ferry-contract-ingress", full.for_ingress()),
            ("ferry-contract", full.clone()),
        ];
        let writing = tokio::spawn(async move { secrets.write(&full).await });
        for (name, want) in expected {
            let (request, send) = handle.next_request().await.expect("a request");
            assert_eq!(request.method(), Method::PATCH);
            assert_eq!(
                request.uri().path(),
                format!("/api/v1/namespaces/ferry/secrets/{name}")
            );
            let body = request.into_body().collect_bytes().await.expect("body");
            let patch: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            let written = read(&secret(Some(patch["data"].clone())));
            assert_eq!(written.as_ref(), Some(&want), "{name}");
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&serde_json::json!({"metadata": {"name": name}})).expect("JSON"),
            )));
        }
        writing.await.expect("joined").expect("written");
    }
}

//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554) over the credential
//! store ([`crate::security::credentials`]).

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::broker::{Broker, Ctx};
use crate::security::acl::{CLUSTER_NAME, op, resource};

const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
use crate::security::credentials::{Alteration, users_in_order};

fn text(s: String) -> StrBytes {
    StrBytes::from_string(s)
}

impl Broker {
    pub(super) fn describe_user_scram_credentials(
        &self,
        req: &DescribeUserScramCredentialsRequest,
        ctx: &Ctx,
    ) -> DescribeUserScramCredentialsResponse {
        if !ctx.may(self, op::DESCRIBE, resource::CLUSTER, CLUSTER_NAME) {
            return DescribeUserScramCredentialsResponse::default()
                .with_error_code(CLUSTER_AUTHORIZATION_FAILED)
                .with_error_message(Some(text(format!(
                    "{} may not describe the cluster's SCRAM users",
                    ctx.principal
                ))));
        }
        let users: Option<Vec<String>> = req
            .users
            .as_ref()
            .map(|list| list.iter().map(|u| u.name.to_string()).collect());
        let file = self.security.sasl.as_deref();
        let results = self
            .scram
            .describe(users.as_deref(), file)
            .into_iter()
            .map(|(user, outcome)| {
                let out = DescribeUserScramCredentialsResult::default().with_user(text(user));
                match outcome {
                    Ok(infos) => out.with_credential_infos(
                        infos
                            .into_iter()
                            .map(|(mechanism, iterations)| {
                                CredentialInfo::default()
                                    .with_mechanism(mechanism)
                                    .with_iterations(iterations)
                            })
                            .collect(),
                    ),
                    Err((code, message)) => out
                        .with_error_code(code)
                        .with_error_message(Some(text(message))),
                }
            })
            .collect();
        DescribeUserScramCredentialsResponse::default().with_results(results)
    }

    pub(super) fn alter_user_scram_credentials(
        &self,
        req: &AlterUserScramCredentialsRequest,
        ctx: &Ctx,
    ) -> AlterUserScramCredentialsResponse {
        let alterations: Vec<Alteration> = req
            .deletions
            .iter()
            .map(|d| Alteration::Delete {
                user: d.name.to_string(),
                mechanism: d.mechanism,
            })
            .chain(req.upsertions.iter().map(|u| Alteration::Upsert {
                user: u.name.to_string(),
                mechanism: u.mechanism,
                iterations: u.iterations,
                salt: u.salt.to_vec(),
                salted_password: u.salted_password.to_vec(),
            }))
            .collect();
        if !ctx.may(self, op::ALTER, resource::CLUSTER, CLUSTER_NAME) {
            let message = format!("{} may not alter the cluster's SCRAM users", ctx.principal);
            let results = users_in_order(&alterations)
                .into_iter()
                .map(|user| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(text(user))
                        .with_error_code(CLUSTER_AUTHORIZATION_FAILED)
                        .with_error_message(Some(text(message.clone())))
                })
                .collect();
            return AlterUserScramCredentialsResponse::default().with_results(results);
        }
        let file = self.security.sasl.as_deref();
        let results = match self.scram.alter(&alterations, file) {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|(user, outcome)| {
                    let out =
                        AlterUserScramCredentialsResult::default().with_user(text(user.clone()));
                    match outcome {
                        Ok(()) => {
                            tracing::info!(user, peer = %ctx.peer, "altered SCRAM credentials");
                            out
                        }
                        Err((code, message)) => out
                            .with_error_code(code)
                            .with_error_message(Some(text(message))),
                    }
                })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot write the SCRAM credential store");
                users_in_order(&alterations)
                    .into_iter()
                    .map(|user| {
                        AlterUserScramCredentialsResult::default()
                            .with_user(text(user))
                            .with_error_code(e.kafka_code())
                            .with_error_message(Some(text(e.to_string())))
                    })
                    .collect()
            }
        };
        AlterUserScramCredentialsResponse::default().with_results(results)
    }
}

//! DescribeUserScramCredentials (50) and AlterUserScramCredentials (51), what
//! `kafka-configs --entity-type users --describe / --alter --add-config 'SCRAM-SHA-256=[...]'`
//! send. Credentials live in the metadata log (controller::scram); the checks and messages are
//! Kafka's (ControllerApis / ScramControlManager): one result per user, a user named twice is
//! DUPLICATE_RESOURCE, an unknown mechanism UNSUPPORTED_SASL_MECHANISM, iterations outside
//! 4096..=16384 UNACCEPTABLE_CREDENTIAL, an unknown user RESOURCE_NOT_FOUND.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError;
use runnel_metadata::scram::ScramCredentialData;

use super::{sb, RequestContext};
use crate::controller::scram::ScramChange;
use crate::security::sasl::scram::{
    ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS,
};

/// Handles DescribeUserScramCredentials.
pub fn describe(
    ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let image = ctx.broker.image();
    let info = |user: &str| -> Vec<CredentialInfo> {
        image
            .scram
            .users
            .get(user)
            .map(|m| {
                m.iter()
                    .map(|(mech, c)| {
                        CredentialInfo::default()
                            .with_mechanism(*mech)
                            .with_iterations(c.iterations)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let ok = |user: &str| {
        DescribeUserScramCredentialsResult::default()
            .with_user(sb(user))
            .with_credential_infos(info(user))
    };
    let results = match req.users.filter(|u| !u.is_empty()) {
        None => image.scram.users.keys().map(|u| ok(u)).collect(),
        Some(users) => {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for u in &users {
                *counts.entry(u.name.to_string()).or_default() += 1;
            }
            let mut seen = BTreeSet::new();
            users
                .iter()
                .map(|u| u.name.to_string())
                .filter(|u| seen.insert(u.clone()))
                .map(|u| {
                    if counts[&u] > 1 {
                        DescribeUserScramCredentialsResult::default()
                            .with_user(sb(&u))
                            .with_error_code(ResponseError::DuplicateResource.code())
                            .with_error_message(Some(sb(format!(
                                "Cannot describe SCRAM credentials for the same user twice in a single request: {u}"
                            ))))
                    } else if !image.scram.users.contains_key(&u) {
                        DescribeUserScramCredentialsResult::default()
                            .with_user(sb(&u))
                            .with_error_code(ResponseError::ResourceNotFound.code())
                            .with_error_message(Some(sb(format!(
                                "Attempt to describe nonexistent user credential: {u}"
                            ))))
                    } else {
                        ok(&u)
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default()
        .with_error_code(0)
        .with_results(results)
}

/// Handles AlterUserScramCredentials.
pub fn alter(
    ctx: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Users in request order, each once; the first refusal of a user is its result.
    let mut order: Vec<String> = Vec::new();
    let mut errors: BTreeMap<String, (i16, String)> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let names = req
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(req.upsertions.iter().map(|u| u.name.to_string()));
    for n in names {
        if !counts.contains_key(&n) {
            order.push(n.clone());
        }
        *counts.entry(n).or_default() += 1;
    }
    let mut refuse = |user: &str, e: ResponseError, msg: &str| {
        errors
            .entry(user.to_string())
            .or_insert((e.code(), msg.to_string()));
    };
    for (user, n) in &counts {
        if *n > 1 {
            refuse(
                user,
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request",
            );
        }
        if user.is_empty() {
            refuse(
                user,
                ResponseError::UnacceptableCredential,
                "Username must not be empty",
            );
        }
    }
    let mut changes = Vec::new();
    for d in &req.deletions {
        let name = d.name.to_string();
        if ScramMechanism::from_code(d.mechanism).is_none() {
            refuse(
                &name,
                ResponseError::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism",
            );
        }
        changes.push(ScramChange::Delete {
            name,
            mechanism: d.mechanism,
        });
    }
    for u in &req.upsertions {
        let name = u.name.to_string();
        let Some(mech) = ScramMechanism::from_code(u.mechanism) else {
            refuse(
                &name,
                ResponseError::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism",
            );
            continue;
        };
        if u.iterations < MIN_ITERATIONS {
            refuse(
                &name,
                ResponseError::UnacceptableCredential,
                "Too few iterations",
            );
            continue;
        }
        if u.iterations > MAX_ITERATIONS {
            refuse(
                &name,
                ResponseError::UnacceptableCredential,
                "Too many iterations",
            );
            continue;
        }
        let c =
            ScramCredential::from_salted_password(mech, &u.salt, &u.salted_password, u.iterations);
        changes.push(ScramChange::Upsert {
            name,
            mechanism: u.mechanism,
            credential: ScramCredentialData {
                salt: c.salt,
                stored_key: c.stored_key,
                server_key: c.server_key,
                iterations: c.iterations,
            },
        });
    }
    // Only users without a refusal are changed (Kafka's controller does the same).
    let changes: Vec<ScramChange> = changes
        .into_iter()
        .filter(|c| match c {
            ScramChange::Upsert { name, .. } | ScramChange::Delete { name, .. } => {
                !errors.contains_key(name)
            }
        })
        .collect();
    if !changes.is_empty() {
        let req = crate::controller::ControllerRequest::AlterScramCredentials { changes };
        match crate::controller::submit(&ctx.broker, req) {
            Ok(ok) => {
                for (user, code, msg) in ok.scram_errors {
                    errors.entry(user).or_insert((code, msg));
                }
            }
            Err(e) => {
                for u in &order {
                    errors
                        .entry(u.clone())
                        .or_insert((e.error.code(), e.message.clone()));
                }
            }
        }
    }
    let results = order
        .iter()
        .map(|u| {
            let r = AlterUserScramCredentialsResult::default().with_user(sb(u));
            match errors.get(u) {
                Some((code, msg)) => r
                    .with_error_code(*code)
                    .with_error_message(Some(sb(msg.clone()))),
                None => r.with_error_code(0),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

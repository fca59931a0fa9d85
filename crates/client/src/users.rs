//! SCRAM users through the admin client: DescribeUserScramCredentials and
//! AlterUserScramCredentials. A password is never sent: the client draws a random salt and
//! sends the salted password (PBKDF2 with the mechanism's HMAC), as Kafka's admin client does.

use std::collections::BTreeMap;

use bytes::Bytes;
use runnel_protocol::kafka_protocol::messages::{
    alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion},
    describe_user_scram_credentials_request::UserName,
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use runnel_protocol::kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::sasl::scram::{salt, ScramMechanism};

/// The iterations Kafka's tools use by default (and the least Kafka accepts).
pub const DEFAULT_ITERATIONS: i32 = 4096;

/// RESOURCE_NOT_FOUND: a named user without SCRAM credentials.
const RESOURCE_NOT_FOUND: i16 = 91;

/// A user's SCRAM credentials: mechanism and iterations (never the secret).
pub type UserCredentials = Vec<(ScramMechanism, i32)>;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

impl Admin {
    /// The SCRAM credentials of `users` (every user that has one when `None`), by user. A
    /// named user without credentials is left out.
    pub async fn describe_user_scram_credentials(
        &self,
        users: Option<&[String]>,
    ) -> Result<BTreeMap<String, UserCredentials>> {
        let conn = self.cluster().any().await?;
        let v = conn.version::<DescribeUserScramCredentialsRequest>(0)?;
        let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|us| {
            us.iter()
                .map(|u| UserName::default().with_name(s(u)))
                .collect()
        }));
        let resp = conn.send(&req, v).await?;
        Error::check(
            resp.error_code,
            resp.error_message.as_ref().map(|m| m.to_string()),
            || "describe SCRAM credentials".into(),
        )?;
        let mut out = BTreeMap::new();
        for r in &resp.results {
            if r.error_code == RESOURCE_NOT_FOUND {
                continue;
            }
            Error::check(
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
                || format!("describe SCRAM credentials of {}", r.user),
            )?;
            let mut creds: UserCredentials = r
                .credential_infos
                .iter()
                .filter_map(|c| ScramMechanism::from_code(c.mechanism).map(|m| (m, c.iterations)))
                .collect();
            creds.sort();
            out.insert(r.user.to_string(), creds);
        }
        Ok(out)
    }

    /// Sets `user`'s password for `mechanism` (creating the user's credential if need be).
    pub async fn set_user_scram_password(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        password: &str,
        iterations: i32,
    ) -> Result<()> {
        let salt = salt();
        let salted = mechanism.salted_password(password, &salt, iterations);
        let up = ScramCredentialUpsertion::default()
            .with_name(s(user))
            .with_mechanism(mechanism.code())
            .with_iterations(iterations)
            .with_salt(Bytes::from(salt))
            .with_salted_password(Bytes::from(salted));
        let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![up]);
        self.alter_scram(
            req,
            &format!("set the {} password of {user}", mechanism.name()),
        )
        .await
    }

    /// Deletes `user`'s credential for `mechanism`.
    pub async fn delete_user_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<()> {
        let del = ScramCredentialDeletion::default()
            .with_name(s(user))
            .with_mechanism(mechanism.code());
        let req = AlterUserScramCredentialsRequest::default().with_deletions(vec![del]);
        self.alter_scram(
            req,
            &format!("delete the {} credential of {user}", mechanism.name()),
        )
        .await
    }

    async fn alter_scram(&self, req: AlterUserScramCredentialsRequest, what: &str) -> Result<()> {
        let conn = self.cluster().any().await?;
        let v = conn.version::<AlterUserScramCredentialsRequest>(0)?;
        let resp = conn.send(&req, v).await?;
        for r in &resp.results {
            Error::check(
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
                || what.to_string(),
            )?;
        }
        Ok(())
    }
}

//! Client quotas through the admin client: DescribeClientQuotas and AlterClientQuotas, with
//! entities as Kafka's `ClientQuotaEntity` (entity type → name, `None` for the default).

use std::collections::BTreeMap;

use runnel_protocol::kafka_protocol::messages::{
    alter_client_quotas_request, describe_client_quotas_request, AlterClientQuotasRequest,
    DescribeClientQuotasRequest,
};
use runnel_protocol::kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::{Error, Result};

/// A quota entity: `user`, `client-id` or `ip` → name, `None` for the type's default.
pub type QuotaEntity = BTreeMap<String, Option<String>>;

/// A quota change: a value to set, or `None` to remove the key.
pub type QuotaOp = (String, Option<f64>);

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

impl Admin {
    /// The entities that have every entity type of `entity` (a `None` name matches the default
    /// only; `strict`: no other entity types) with their quota values.
    pub async fn describe_client_quotas(
        &self,
        entity: &QuotaEntity,
        strict: bool,
    ) -> Result<Vec<(QuotaEntity, BTreeMap<String, f64>)>> {
        use describe_client_quotas_request::ComponentData;
        let conn = self.cluster().any().await?;
        let v = conn.version::<DescribeClientQuotasRequest>(1)?;
        let components = entity
            .iter()
            .map(|(t, n)| {
                ComponentData::default()
                    .with_entity_type(s(t))
                    .with_match_type(if n.is_some() { 0 } else { 1 })
                    .with_match(n.as_deref().map(s))
            })
            .collect();
        let req = DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(strict);
        let resp = conn.send(&req, v).await?;
        Error::check(
            resp.error_code,
            resp.error_message.as_ref().map(|m| m.to_string()),
            || "describe client quotas".into(),
        )?;
        let mut out: Vec<(QuotaEntity, BTreeMap<String, f64>)> = resp
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                (
                    e.entity
                        .iter()
                        .map(|d| {
                            (
                                d.entity_type.to_string(),
                                d.entity_name.as_ref().map(|n| n.to_string()),
                            )
                        })
                        .collect(),
                    e.values
                        .iter()
                        .map(|v| (v.key.to_string(), v.value))
                        .collect(),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Sets and removes quota values of one entity.
    pub async fn alter_client_quotas(&self, entity: &QuotaEntity, ops: &[QuotaOp]) -> Result<()> {
        use alter_client_quotas_request::{EntityData, EntryData, OpData};
        let conn = self.cluster().any().await?;
        let v = conn.version::<AlterClientQuotasRequest>(1)?;
        let entry = EntryData::default()
            .with_entity(
                entity
                    .iter()
                    .map(|(t, n)| {
                        EntityData::default()
                            .with_entity_type(s(t))
                            .with_entity_name(n.as_deref().map(s))
                    })
                    .collect(),
            )
            .with_ops(
                ops.iter()
                    .map(|(k, val)| {
                        OpData::default()
                            .with_key(s(k))
                            .with_value(val.unwrap_or(0.0))
                            .with_remove(val.is_none())
                    })
                    .collect(),
            );
        let resp = conn
            .send(
                &AlterClientQuotasRequest::default().with_entries(vec![entry]),
                v,
            )
            .await?;
        for e in &resp.entries {
            Error::check(
                e.error_code,
                e.error_message.as_ref().map(|m| m.to_string()),
                || "alter client quotas".into(),
            )?;
        }
        Ok(())
    }
}

//! The authorizer as handlers ask it: for the principal and address of the request's
//! connection, against the ACLs of the newest metadata image. Without an authorizer configured
//! everything is allowed, as in Kafka.

use super::{AclOperation, Requester, ResourceType, CLUSTER_NAME};
use crate::handlers::RequestContext;

impl RequestContext {
    /// The client's address as ACL hosts name it (`127.0.0.1`).
    pub fn client_ip(&self) -> &str {
        self.client_host.trim_start_matches('/')
    }

    /// Whether an authorizer is configured (`authorizer.class.name`).
    pub fn authorizer_on(&self) -> bool {
        self.broker.authorizer.is_some()
    }

    /// Whether this request's principal may do `op` on (`rt`, `name`); logs denials.
    pub fn authorize(&self, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        let ok = self.allowed(op, rt, name);
        if !ok {
            tracing::info!(
                principal = %self.principal,
                host = self.client_ip(),
                operation = op.name(),
                resource = %format_args!("{}:LITERAL:{name}", rt.name()),
                "authorization denied"
            );
        }
        ok
    }

    /// [`Self::authorize`] without logging a denial (for filtering lists).
    pub fn allowed(&self, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        let Some(auth) = &self.broker.authorizer else {
            return true;
        };
        let who = Requester {
            principal: &self.principal,
            host: self.client_ip(),
        };
        auth.authorize(&self.broker.image().acls, &who, op, rt, name)
    }

    /// What refuses an ACL-changing request (CreateAcls, DeleteAcls) as a whole, as Kafka:
    /// SECURITY_DISABLED without an authorizer, CLUSTER_AUTHORIZATION_FAILED without ALTER on
    /// the cluster; the error and message every entry of the response then carries.
    pub fn acl_change_refused(&self) -> Option<(kafka_protocol::ResponseError, &'static str)> {
        use kafka_protocol::ResponseError;
        if !self.authorizer_on() {
            Some((
                ResponseError::SecurityDisabled,
                "No Authorizer is configured.",
            ))
        } else if !self.authorize_cluster(AclOperation::Alter) {
            Some((
                ResponseError::ClusterAuthorizationFailed,
                "Cluster authorization failed.",
            ))
        } else {
            None
        }
    }

    /// Whether this request's principal may do `op` on the cluster.
    pub fn authorize_cluster(&self, op: AclOperation) -> bool {
        self.authorize(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Whether this request's principal may do `op` on some resource of type `rt` (Kafka's
    /// `authorizeByResourceType`).
    pub fn authorize_any(&self, op: AclOperation, rt: ResourceType) -> bool {
        let Some(auth) = &self.broker.authorizer else {
            return true;
        };
        let who = Requester {
            principal: &self.principal,
            host: self.client_ip(),
        };
        auth.authorize_any(&self.broker.image().acls, &who, op, rt)
    }

    /// The operations this request's principal may do on (`rt`, `name`), as Kafka's
    /// authorized-operations bit field (every supported one without an authorizer).
    pub fn authorized_operations(&self, rt: ResourceType, name: &str) -> i32 {
        match &self.broker.authorizer {
            None => super::operations_field(rt.supported_operations().iter().copied()),
            Some(auth) => {
                let who = Requester {
                    principal: &self.principal,
                    host: self.client_ip(),
                };
                auth.authorized_operations(&self.broker.image().acls, &who, rt, name)
            }
        }
    }
}

/// Kafka's config resource types (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs).
const CONFIG_TOPIC: i8 = 2;
const CONFIG_BROKER: i8 = 4;
const CONFIG_CLIENT_METRICS: i8 = 16;
use crate::handlers::describe_configs::RESOURCE_BROKER_LOGGER as CONFIG_BROKER_LOGGER;
const CONFIG_GROUP: i8 = 32;

/// The error for a config resource the principal may not `op` (DESCRIBE_CONFIGS or
/// ALTER_CONFIGS), as Kafka's ConfigHelper / KafkaApis decide: the topic or the group itself,
/// the cluster for brokers, broker loggers and client metrics. None when allowed.
pub fn config_authorization(
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    op: AclOperation,
) -> Option<kafka_protocol::ResponseError> {
    use kafka_protocol::ResponseError as E;
    match resource_type {
        CONFIG_TOPIC => {
            (!ctx.authorize(op, ResourceType::Topic, name)).then_some(E::TopicAuthorizationFailed)
        }
        CONFIG_GROUP => {
            (!ctx.authorize(op, ResourceType::Group, name)).then_some(E::GroupAuthorizationFailed)
        }
        CONFIG_BROKER | CONFIG_BROKER_LOGGER | CONFIG_CLIENT_METRICS => {
            (!ctx.authorize_cluster(op)).then_some(E::ClusterAuthorizationFailed)
        }
        _ => None,
    }
}

/// Whether a connection may send Runnel's private inter-node requests (raft messages,
/// forwarded controller requests, hellos): as Kafka's inter-broker and controller APIs, its
/// principal needs CLUSTER_ACTION on the cluster. Refusals are logged.
pub fn internode_allowed(
    broker: &crate::broker::Broker,
    session: &crate::security::Session,
) -> bool {
    let Some(auth) = &broker.authorizer else {
        return true;
    };
    let host = session.peer.ip().to_string();
    let who = Requester {
        principal: &session.principal,
        host: &host,
    };
    let ok = auth.authorize(
        &broker.image().acls,
        &who,
        AclOperation::ClusterAction,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    if !ok {
        tracing::warn!(
            principal = %session.principal,
            host,
            listener = session.listener,
            "inter-node request refused: the principal lacks CLUSTER_ACTION on the cluster (add it to super.users or grant it)"
        );
    }
    ok
}

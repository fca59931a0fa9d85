//! DescribeAcls (key 29). Runnel has no authorizer, so it answers as Apache Kafka does when
//! `authorizer.class.name` is unset: SECURITY_DISABLED with Kafka's message. Clients treat that as
//! "no ACLs here" (MirrorMaker 2's topic ACL sync stops quietly on it, `kafka-acls --list` prints
//! the error) rather than as an unsupported API.

use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};

/// Handles DescribeAcls.
pub fn handle(_ctx: &RequestContext, _req: DescribeAclsRequest) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(Some(sb("No Authorizer is configured on the broker")))
}

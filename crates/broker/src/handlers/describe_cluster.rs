//! DescribeCluster (key 60): the live brokers of this broker's metadata image, at their
//! advertised address for the listener the request came on, and the active controller. Asked
//! for controllers (endpoint type 2, v1+: Kafka's admin client with `--bootstrap-controller`),
//! a controller answers with the quorum's voters at their controller endpoints and the quorum
//! leader; a broker-only node answers MISMATCHED_ENDPOINT_TYPE, as Kafka's brokers do.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use kafka_protocol::ResponseError;

use super::{sb, RequestContext};

/// Endpoint type of a request for the controllers (KIP-919).
const CONTROLLER_ENDPOINTS: i8 = 2;

/// The quorum's voters at their controller endpoints, and the quorum leader.
fn controllers(ctx: &RequestContext) -> DescribeClusterResponse {
    let b = &ctx.broker;
    if !b.config.cluster.controller {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::MismatchedEndpointType.code())
            .with_error_message(Some(sb("The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER")))
            .with_endpoint_type(1);
    }
    let voters = b
        .quorum()
        .members()
        .into_iter()
        .filter(|(_, _, voter)| *voter)
        .filter_map(|(id, node, _)| {
            let (host, port) = node
                .endpoints
                .iter()
                .find(|e| e.name == ctx.listener)
                .or(node.endpoints.first())
                .map(|e| (e.host.clone(), e.port as i32))
                .or_else(|| {
                    let (host, port) = node.addr.rsplit_once(':')?;
                    let port: i32 = port.parse().ok()?;
                    // A cluster of one records no address of its own: this listener's.
                    let host = if port == 0 {
                        ctx.advertised().0
                    } else {
                        host.to_string()
                    };
                    let port = if port == 0 { ctx.advertised().1 } else { port };
                    Some((host, port))
                })?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(id))
                    .with_host(sb(host))
                    .with_port(port),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_error_code(0)
        .with_endpoint_type(CONTROLLER_ENDPOINTS)
        .with_cluster_id(sb(b.cluster_id()))
        .with_controller_id(BrokerId(b.controller_id().unwrap_or(-1)))
        .with_brokers(voters)
        .with_cluster_authorized_operations(i32::MIN)
}

/// Handles DescribeCluster.
pub fn handle(ctx: &RequestContext, req: DescribeClusterRequest) -> DescribeClusterResponse {
    if ctx.api_version >= 1 && req.endpoint_type == CONTROLLER_ENDPOINTS {
        return controllers(ctx);
    }
    let image = ctx.broker.image();
    DescribeClusterResponse::default()
        .with_error_code(0)
        .with_endpoint_type(1)
        .with_cluster_id(sb(ctx.broker.cluster_id()))
        .with_controller_id(BrokerId(ctx.controller_id(&image)))
        .with_brokers(
            ctx.live_brokers(&image)
                .into_iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(sb(b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.map(sb))
                })
                .collect(),
        )
        .with_cluster_authorized_operations(cluster_authorized_operations(
            ctx,
            req.include_cluster_authorized_operations,
        ))
}

/// As Kafka: when asked for, the principal's operations on the cluster (0 without DESCRIBE on
/// it); else the schema's default.
fn cluster_authorized_operations(ctx: &RequestContext, asked: bool) -> i32 {
    use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
    if !asked {
        i32::MIN
    } else if ctx.authorize_cluster(AclOperation::Describe) {
        ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
    } else {
        0
    }
}

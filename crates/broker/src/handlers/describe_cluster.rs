//! DescribeCluster (key 60): this node as the only broker and the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{sb, RequestContext};

/// Handles DescribeCluster.
pub fn handle(ctx: &RequestContext, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let (host, port) = ctx.advertised();
    let node = ctx.broker.config.node_id;
    DescribeClusterResponse::default()
        .with_error_code(0)
        .with_endpoint_type(1)
        .with_cluster_id(sb(ctx.broker.cluster_id.clone()))
        .with_controller_id(BrokerId(node))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(node))
            .with_host(sb(host))
            .with_port(port)])
        .with_cluster_authorized_operations(i32::MIN)
}

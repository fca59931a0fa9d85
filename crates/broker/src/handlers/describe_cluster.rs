//! DescribeCluster (key 60): the live brokers of this broker's metadata image, at their
//! advertised address for the listener the request came on, and the active controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{sb, RequestContext};

/// Handles DescribeCluster.
pub fn handle(ctx: &RequestContext, _req: DescribeClusterRequest) -> DescribeClusterResponse {
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
        .with_cluster_authorized_operations(i32::MIN)
}

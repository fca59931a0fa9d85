//! The leader balancer (`auto.leader.rebalance.enable`): on the active controller, every
//! `leader.imbalance.check.interval.seconds`, a preferred election for each partition not led
//! by its first replica, where that replica is live and in the ISR, as Kafka 4's controller
//! balances leaders (at most [`MAX_ELECTIONS_PER_ROUND`] per commit, the next round at once).

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::{election, propose, ControllerError};
use crate::broker::Broker;

/// The most elections one round commits (Kafka's `MAX_ELECTIONS_PER_IMBALANCE`).
pub const MAX_ELECTIONS_PER_ROUND: usize = 1000;

/// One round on this node, if it is the active controller: returns how many leaderships moved
/// back to their preferred replicas.
pub fn balance_once(broker: &Broker) -> Result<usize, ControllerError> {
    let _one_at_a_time = broker.controller.lock.lock();
    if broker.controller_id() != Some(broker.config.node_id) {
        return Ok(0);
    }
    let image = broker.image();
    let records = election::balance_leaders(
        &image,
        election::Defaults::of(broker),
        |r| crate::handlers::is_live(&image, r),
        MAX_ELECTIONS_PER_ROUND,
    );
    let n = records.len();
    if n > 0 {
        propose(broker, records)?;
        info!(
            partitions = n,
            "leader balance: moved leaderships back to the preferred replicas"
        );
    }
    Ok(n)
}

/// Runs the balancer while the broker runs (nothing when `auto.leader.rebalance.enable` is
/// false).
pub async fn run(broker: Arc<Broker>) {
    let cluster = &broker.config.cluster;
    if !cluster.auto_leader_rebalance_enable {
        return;
    }
    let period = Duration::from_secs(cluster.leader_imbalance_check_interval_seconds.max(1) as u64);
    loop {
        tokio::time::sleep(period).await;
        loop {
            let b = broker.clone();
            match tokio::task::spawn_blocking(move || balance_once(&b)).await {
                Ok(Ok(n)) if n >= MAX_ELECTIONS_PER_ROUND => continue,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e.message, "leader balance round failed")
                }
                _ => {}
            }
            break;
        }
    }
}

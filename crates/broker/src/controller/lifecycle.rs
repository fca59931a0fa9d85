//! Broker lifecycle (KIP-631), both sides. A broker registers with the active controller at
//! start-up (a new broker epoch, fenced), heartbeats every `broker.heartbeat.interval.ms`, and is
//! unfenced by the first heartbeat that shows its metadata has caught up with its registration.
//! The active controller fences a broker whose heartbeats stop for `broker.session.timeout.ms`,
//! and one that asks to shut down. A fenced broker leads nothing and is left out of placements.
//!
//! Controlled shutdown (`controlled.shutdown.enable`, Kafka's `want_shut_down` heartbeat): on
//! SIGTERM a broker heartbeats asking to shut down; the controller elects a new leader from the
//! ISR (without it) for every partition it leads, takes it out of every ISR and fences it, all in
//! one commit. As Kafka's controller, it answers `should_shut_down` once every other live broker
//! has heartbeaten with metadata that new. The broker heartbeats until then and until its own
//! image shows it leading nothing (at most `broker.session.timeout.ms`, after which the
//! controller would have fenced it anyway), then stops; it is not elected again before it
//! restarts and registers anew.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use runnel_metadata::{BrokerEndpoint, MetadataImage, MetadataQuorum, MetadataRecord};
use serde::{Deserialize, Serialize};
use tracing::info;
use uuid::Uuid;

use super::{election, propose, submit, submit_until, ControllerError, ControllerRequest};
use crate::broker::Broker;

/// A broker's registration request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    /// Node id.
    pub broker_id: i32,
    /// Random id of this run of the process.
    pub incarnation_id: Uuid,
    /// Advertised listeners.
    pub endpoints: Vec<BrokerEndpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// The broker epoch its previous run shut down cleanly with, -1 after an unclean shutdown
    /// (KIP-966's PreviousBrokerEpoch).
    #[serde(default = "no_broker_epoch")]
    pub previous_broker_epoch: i64,
}

fn no_broker_epoch() -> i64 {
    -1
}

/// A broker's heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Node id.
    pub broker_id: i32,
    /// The epoch its registration was given.
    pub broker_epoch: i64,
    /// The offset of the newest metadata the broker has applied.
    pub metadata_offset: i64,
    /// The broker is shutting down: fence it (its leaderships move elsewhere).
    pub want_shutdown: bool,
}

/// Registers a broker (on the active controller): returns its new broker epoch.
pub(super) fn register(broker: &Broker, r: Registration) -> Result<i64, ControllerError> {
    let image = broker.image();
    let session_ms = broker.config.cluster.broker_session_timeout_ms as u64;
    let previous = image.brokers.get(&r.broker_id);
    if let Some(existing) = previous {
        let alive = broker
            .controller
            .sessions
            .lock()
            .get(&r.broker_id)
            .is_some_and(|t| t.elapsed() < Duration::from_millis(session_ms));
        if existing.incarnation_id != r.incarnation_id && !existing.fenced && alive {
            return Err(ControllerError::new(
                ResponseError::DuplicateBrokerRegistration,
                format!(
                    "Another broker is registered with node.id {} and is alive; two nodes cannot share one node.id",
                    r.broker_id
                ),
            ));
        }
    }
    let epoch = previous.map_or(0, |b| b.epoch).max(image.last_offset) + 1;
    let mut records = vec![MetadataRecord::RegisterBroker {
        broker_id: r.broker_id,
        incarnation_id: r.incarnation_id,
        broker_epoch: epoch,
        endpoints: r.endpoints,
        rack: r.rack,
    }];
    let unclean_restart = previous.is_some_and(|b| {
        b.incarnation_id != r.incarnation_id && b.epoch != r.previous_broker_epoch
    });
    if unclean_restart {
        // KIP-966: its log may lack records it had: out of every ISR and ELR (and what it led
        // moves away, as below).
        info!(
            broker = r.broker_id,
            previous_epoch = r.previous_broker_epoch,
            "broker restarted without a clean shutdown: removed from its ISRs and ELRs"
        );
        records.extend(election::on_unclean_restart(
            &image,
            r.broker_id,
            election::Defaults::of(broker),
            |x| x != r.broker_id && image.brokers.get(&x).is_some_and(|b| !b.fenced),
        ));
    } else if previous.is_some_and(|b| !b.fenced) {
        // A restarted broker registers fenced: what it led moves away until it catches up.
        records.extend(fenced_changes(broker, &image, r.broker_id));
    }
    propose(broker, records)?;
    broker
        .controller
        .sessions
        .lock()
        .insert(r.broker_id, Instant::now());
    info!(broker = r.broker_id, epoch, "broker registered");
    Ok(epoch)
}

/// Records a heartbeat (on the active controller); returns whether the broker stays fenced and,
/// for one in controlled shutdown, whether it may stop now.
pub(super) fn heartbeat(broker: &Broker, h: Heartbeat) -> Result<(bool, bool), ControllerError> {
    let image = broker.image();
    let Some(b) = image.brokers.get(&h.broker_id) else {
        return Err(ControllerError::new(
            ResponseError::BrokerIdNotRegistered,
            format!("Broker {} is not registered.", h.broker_id),
        ));
    };
    if b.epoch != h.broker_epoch {
        return Err(ControllerError::new(
            ResponseError::StaleBrokerEpoch,
            format!(
                "Broker {} heartbeat with epoch {}, but its registration has epoch {}.",
                h.broker_id, h.broker_epoch, b.epoch
            ),
        ));
    }
    broker
        .controller
        .sessions
        .lock()
        .insert(h.broker_id, Instant::now());
    broker
        .controller
        .metadata_offsets
        .lock()
        .insert(h.broker_id, h.metadata_offset);
    if h.want_shutdown {
        if !b.fenced {
            // Its leaderships move (new leaders from the ISR), it leaves every ISR, and it is
            // not elected again before it registers anew.
            fence(broker, h.broker_id, b.epoch, "controlled shutdown")?;
            let at = broker.image().last_offset;
            broker
                .controller
                .shutdown_offsets
                .lock()
                .insert(h.broker_id, at);
        }
        return Ok((true, may_shut_down(broker, h.broker_id)));
    }
    if b.fenced && h.metadata_offset >= b.epoch {
        let mut records = vec![MetadataRecord::UnfenceBroker {
            broker_id: h.broker_id,
            broker_epoch: b.epoch,
        }];
        records.extend(election::on_broker_unfenced(
            &image,
            h.broker_id,
            election::Defaults::of(broker),
        ));
        propose(broker, records)?;
        info!(broker = h.broker_id, epoch = b.epoch, "broker unfenced");
        return Ok((false, false));
    }
    Ok((b.fenced, false))
}

/// Kafka's grant of a controlled shutdown: every other live broker has heartbeaten with
/// metadata at least as new as the fencing (its new leaderships known where they went), so
/// the stopping broker leaves no partition without a leader that knows it leads.
fn may_shut_down(broker: &Broker, id: i32) -> bool {
    let image = broker.image();
    let at = broker
        .controller
        .shutdown_offsets
        .lock()
        .get(&id)
        .copied()
        // Fenced under an earlier controller: the newest metadata stands in for the fencing.
        .unwrap_or(image.last_offset);
    let offsets = broker.controller.metadata_offsets.lock();
    image
        .brokers
        .values()
        .filter(|b| b.id != id && !b.fenced)
        .all(|b| offsets.get(&b.id).is_some_and(|o| *o >= at))
}

/// The partition changes that fencing broker `id` makes (new leaders, smaller ISRs).
fn fenced_changes(broker: &Broker, image: &MetadataImage, id: i32) -> Vec<MetadataRecord> {
    election::on_broker_fenced(image, id, election::Defaults::of(broker), |r| {
        r != id && image.brokers.get(&r).is_some_and(|b| !b.fenced)
    })
}

/// Fences one broker registration, moving its leaderships.
fn fence(broker: &Broker, id: i32, epoch: i64, why: &str) -> Result<(), ControllerError> {
    let image = broker.image();
    let mut records = vec![MetadataRecord::FenceBroker {
        broker_id: id,
        broker_epoch: epoch,
    }];
    records.extend(fenced_changes(broker, &image, id));
    propose(broker, records)?;
    info!(broker = id, epoch, why, "broker fenced");
    Ok(())
}

/// The quorum leadership that the active controller's broker sessions belong to: the raft term
/// (Kafka's controller epoch) in which this node last used its session table. Heartbeats seen
/// in an earlier term say nothing of a broker's liveness now, whatever happened in between
/// (another controller, or none): a controller active in a new term, for the first time or
/// again, gives every registered broker a full session from then, as Kafka's new active
/// controller does. Kept by the loop that fences expired sessions.
#[derive(Debug, Default)]
pub struct SessionTerm {
    term: Option<i32>,
}

impl SessionTerm {
    /// The brokers to fence in leader term `term` at `now`: the unfenced brokers of `image`
    /// whose last heartbeat in `sessions` is older than `timeout`. When `term` is not the term
    /// the table was last used in, every registered broker's session starts at `now` first
    /// (and nothing expires). Returns `(broker id, broker epoch)`s.
    fn expired(
        &mut self,
        term: i32,
        sessions: &mut HashMap<i32, Instant>,
        image: &MetadataImage,
        timeout: Duration,
        now: Instant,
    ) -> Vec<(i32, i64)> {
        if self.term != Some(term) {
            sessions.clear();
            sessions.extend(image.brokers.keys().map(|id| (*id, now)));
            self.term = Some(term);
        }
        image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                now.saturating_duration_since(*sessions.entry(b.id).or_insert(now)) > timeout
            })
            .map(|b| (b.id, b.epoch))
            .collect()
    }
}

/// The raft term in which this node leads the metadata quorum, if it does.
fn leader_term(broker: &Broker) -> Option<i32> {
    match broker.quorum().describe() {
        Ok(status) if status.leader_id == broker.config.node_id => Some(status.leader_epoch),
        _ => None,
    }
}

/// On the active controller: fences every unfenced broker whose last heartbeat is older than
/// `broker.session.timeout.ms`. A controller active in a new term (see [`SessionTerm`]) gives
/// every broker a full session from now. Elsewhere it forgets what it knew as a controller.
pub fn fence_expired_sessions(broker: &Broker, seen: &mut SessionTerm) {
    let _one_at_a_time = broker.controller.lock.lock();
    let term =
        leader_term(broker).filter(|_| broker.controller_id() == Some(broker.config.node_id));
    let Some(term) = term else {
        seen.term = None;
        broker.controller.sessions.lock().clear();
        broker.controller.metadata_offsets.lock().clear();
        broker.controller.shutdown_offsets.lock().clear();
        return;
    };
    if seen.term != Some(term) {
        // What the last heartbeats said under an earlier leadership is stale too.
        broker.controller.metadata_offsets.lock().clear();
        broker.controller.shutdown_offsets.lock().clear();
        info!(
            term,
            "active controller in a new term: every registered broker's session starts now"
        );
    }
    let timeout = Duration::from_millis(broker.config.cluster.broker_session_timeout_ms as u64);
    let image = broker.image();
    let expired = {
        let mut sessions = broker.controller.sessions.lock();
        seen.expired(term, &mut sessions, &image, timeout, Instant::now())
    };
    for (id, epoch) in expired {
        // Fencing commits through the quorum; stop if the leadership changed meanwhile.
        if leader_term(broker) != Some(term) {
            return;
        }
        if let Err(e) = fence(broker, id, epoch, "session timed out") {
            tracing::warn!(broker = id, error = %e.message, "could not fence a broker");
        }
    }
}

/// This broker's registration request, from its configuration and bound listeners.
fn registration(broker: &Broker) -> Registration {
    let cfg = &broker.config;
    let endpoints = cfg
        .advertised_listeners
        .iter()
        .filter(|l| !cfg.cluster.controller_listener_names.contains(&l.name))
        .map(|l| BrokerEndpoint {
            name: l.name.clone(),
            host: l.host.clone(),
            port: l.port,
            security_protocol: cfg
                .listener_security_protocol_map
                .iter()
                .find(|(n, _)| n == &l.name)
                .map_or_else(|| "PLAINTEXT".to_string(), |(_, p)| p.clone()),
        })
        .collect();
    Registration {
        broker_id: cfg.node_id,
        incarnation_id: broker.incarnation_id,
        endpoints,
        rack: cfg.cluster.rack.clone(),
        previous_broker_epoch: broker.previous_broker_epoch.unwrap_or(-1),
    }
}

/// One step of this broker's side of the lifecycle (blocking): registers when it has no epoch,
/// heartbeats otherwise. Returns whether the broker is fenced after the step.
pub fn step(broker: &Broker, want_shutdown: bool) -> Result<bool, ControllerError> {
    if broker.image().cluster_id.is_none() {
        let cluster_id = crate::broker::initial_cluster_id(&broker.config);
        submit(broker, ControllerRequest::InitCluster { cluster_id })?;
        if let Err(e) = broker.record_cluster_id() {
            return Err(ControllerError::new(
                ResponseError::InconsistentClusterId,
                e.to_string(),
            ));
        }
    }
    let epoch = *broker.broker_epoch.lock();
    let Some(epoch) = epoch else {
        let ok = submit(
            broker,
            ControllerRequest::RegisterBroker(registration(broker)),
        )?;
        *broker.broker_epoch.lock() = Some(ok.value);
        return step(broker, want_shutdown);
    };
    let beat = Heartbeat {
        broker_id: broker.config.node_id,
        broker_epoch: epoch,
        metadata_offset: broker.image().last_offset,
        // Once a controlled shutdown began, every heartbeat asks for it (none unfences).
        want_shutdown: want_shutdown
            || broker
                .controller
                .shutdown_requested
                .load(std::sync::atomic::Ordering::Acquire),
    };
    match submit(broker, ControllerRequest::BrokerHeartbeat(beat)) {
        Ok(ok) => {
            if !ok.fenced
                && !broker
                    .strays_checked
                    .swap(true, std::sync::atomic::Ordering::AcqRel)
            {
                // Unfenced: this node's metadata has caught up, so a partition directory it
                // does not know belongs to a deleted topic.
                if let Err(e) = broker.replicas.remove_stray_dirs(&broker.image()) {
                    tracing::warn!(error = %e, "looking for leftover partition directories failed");
                }
            }
            Ok(ok.fenced)
        }
        Err(e)
            if e.error == ResponseError::StaleBrokerEpoch
                || e.error == ResponseError::BrokerIdNotRegistered =>
        {
            // The controller lost or replaced our registration: register again next step.
            *broker.broker_epoch.lock() = None;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// How a controlled shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlledShutdown {
    /// Not attempted: disabled, a cluster of one, a broker not registered and unfenced, or no
    /// other live broker to take the leaderships.
    Skipped,
    /// The controller fenced this broker and its image shows it leading nothing.
    Done {
        /// Partitions it led when the shutdown began.
        moved: usize,
    },
    /// The wait ended (at `broker.session.timeout.ms`) before that.
    TimedOut,
}

/// Partitions `id` leads in `image`.
fn led_by(image: &MetadataImage, id: i32) -> usize {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.leader == id)
        .count()
}

/// This broker's controlled shutdown (blocking; call it before anything stops): heartbeats
/// asking to shut down until the active controller has moved its leaderships away and fenced
/// it, as this node's image shows, or until `broker.session.timeout.ms` passes.
pub fn controlled_shutdown(broker: &Broker) -> ControlledShutdown {
    let cfg = &broker.config;
    let me = cfg.node_id;
    if !cfg.cluster.controlled_shutdown_enable
        || !cfg.cluster.broker
        || cfg.cluster.is_single_node(me)
    {
        return ControlledShutdown::Skipped;
    }
    let image = broker.image();
    let epoch = *broker.broker_epoch.lock();
    let registered = image
        .brokers
        .get(&me)
        .is_some_and(|b| !b.fenced && Some(b.epoch) == epoch);
    let others = image.brokers.values().any(|b| b.id != me && !b.fenced);
    if !registered || !others {
        info!(
            registered,
            other_live_brokers = others,
            "controlled shutdown skipped: no leadership can move"
        );
        return ControlledShutdown::Skipped;
    }
    let Some(epoch) = epoch else {
        return ControlledShutdown::Skipped;
    };
    let moved = led_by(&image, me);
    broker
        .controller
        .shutdown_requested
        .store(true, std::sync::atomic::Ordering::Release);
    let started = Instant::now();
    let deadline = started + Duration::from_millis(cfg.cluster.broker_session_timeout_ms as u64);
    info!(
        partitions = moved,
        "controlled shutdown: asking the active controller to move this broker's leaderships"
    );
    loop {
        let beat = Heartbeat {
            broker_id: me,
            broker_epoch: epoch,
            metadata_offset: broker.image().last_offset,
            want_shutdown: true,
        };
        match submit_until(broker, ControllerRequest::BrokerHeartbeat(beat), deadline) {
            Ok(ok) if ok.should_shut_down && led_by(&broker.image(), me) == 0 => {
                info!(
                    partitions = moved,
                    took_ms = started.elapsed().as_millis() as u64,
                    "controlled shutdown complete: gave up the leadership of every partition; fenced until restarted"
                );
                return ControlledShutdown::Done { moved };
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e.message, "controlled shutdown heartbeat failed"),
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                still_led = led_by(&broker.image(), me),
                "controlled shutdown timed out (broker.session.timeout.ms): stopping anyway"
            );
            return ControlledShutdown::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_metadata::BrokerImage;

    /// Brokers 1 to 3 registered, `fenced` among them fenced; broker i has epoch 10 * i.
    fn image(fenced: &[i32]) -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in 1..=3 {
            img.brokers.insert(
                id,
                BrokerImage {
                    id,
                    incarnation_id: Uuid::nil(),
                    epoch: 10 * id as i64,
                    endpoints: vec![],
                    rack: None,
                    fenced: fenced.contains(&id),
                },
            );
        }
        img
    }

    const SESSION: Duration = Duration::from_millis(3000);

    #[test]
    fn sessions_expire_within_one_term() {
        let img = image(&[3]);
        let start = Instant::now();
        let mut seen = SessionTerm::default();
        let mut sessions = HashMap::new();
        // First use as the active controller: every broker's session starts now.
        assert!(seen
            .expired(5, &mut sessions, &img, SESSION, start)
            .is_empty());
        assert_eq!(sessions.len(), 3);
        assert!(sessions.values().all(|t| *t == start));
        // Broker 2 heartbeats, broker 1 does not; broker 3 is fenced already.
        sessions.insert(2, start + Duration::from_millis(2000));
        let later = start + SESSION + Duration::from_millis(1);
        assert_eq!(
            seen.expired(5, &mut sessions, &img, SESSION, later),
            vec![(1, 10)]
        );
        // Exactly a session old is not yet expired.
        let exactly = start + Duration::from_millis(2000) + SESSION;
        assert_eq!(
            seen.expired(5, &mut sessions, &img, SESSION, exactly),
            vec![(1, 10)]
        );
    }

    #[test]
    fn a_new_term_gives_every_broker_a_full_session() {
        let img = image(&[]);
        let start = Instant::now();
        let mut seen = SessionTerm::default();
        let mut sessions = HashMap::new();
        assert!(seen
            .expired(5, &mut sessions, &img, SESSION, start)
            .is_empty());
        // Leadership lost in term 5 and won again in term 7, 10 s later, without this table
        // being cleared meanwhile (the loop that would have was busy): its heartbeats are stale.
        let back = start + Duration::from_secs(10);
        assert_eq!(
            seen.expired(5, &mut sessions, &img, SESSION, back).len(),
            3,
            "in the same term they would expire"
        );
        assert!(seen
            .expired(7, &mut sessions, &img, SESSION, back)
            .is_empty());
        assert_eq!(seen.term, Some(7));
        assert!(
            sessions.values().all(|t| *t == back),
            "every session restarts at the new term: {sessions:?}"
        );
        // From then on they expire a session after the new term's start, not before.
        let almost = back + SESSION;
        assert!(seen
            .expired(7, &mut sessions, &img, SESSION, almost)
            .is_empty());
        sessions.insert(2, almost);
        let past = almost + Duration::from_millis(1);
        assert_eq!(
            seen.expired(7, &mut sessions, &img, SESSION, past),
            vec![(1, 10), (3, 30)]
        );
    }

    #[test]
    fn a_new_term_forgets_brokers_no_longer_registered() {
        let start = Instant::now();
        let mut seen = SessionTerm::default();
        let mut sessions = HashMap::from([(9, start)]);
        assert!(seen
            .expired(2, &mut sessions, &image(&[]), SESSION, start)
            .is_empty());
        let mut ids: Vec<i32> = sessions.keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2, 3]);
    }
}

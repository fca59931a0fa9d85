//! The coordinator's timers: member session and revocation expiry, pending members, rebalance
//! and initial-delay deadlines, offset retention, and the removal of groups left empty without
//! offsets.

use super::*;

impl GroupCoordinator {
    /// Runs the timers: session expiry, pending members, rebalance and initial-delay deadlines,
    /// and offset retention.
    pub fn tick(&self, broker: &Broker) {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let mut topics = None;
        for g in groups.values_mut() {
            let mut fenced_members = false;
            if let Some(ng) = g.next_gen.as_mut() {
                let gone: Vec<String> = ng
                    .members
                    .values()
                    .filter(|m| {
                        m.session_deadline <= now || m.revocation_deadline.is_some_and(|d| d <= now)
                    })
                    .map(|m| m.id.clone())
                    .collect();
                if !gone.is_empty() {
                    fenced_members = true;
                    for id in &gone {
                        info!(group = %g.id, member = %id, "consumer group member fenced: session or revocation timeout");
                        ng.members.remove(id);
                        ng.target.remove(id);
                    }
                    ng.group_epoch += 1;
                    let topics = topics.get_or_insert_with(|| topic_infos(broker));
                    ng.subscription_metadata = ng.subscribed_topics(topics);
                    ng.maybe_update_target(topics);
                }
            }
            if fenced_members {
                if let Err(e) = self.persist_consumer_group(broker, g) {
                    warn!(group = %g.id, error = ?e, "storing a consumer group failed");
                }
            }
            g.pending.retain(|_, deadline| *deadline > now);
            let expired: Vec<String> = g
                .members
                .values()
                .filter(|m| m.join_waiter.is_none() && m.deadline <= now)
                .map(|m| m.id.clone())
                .collect();
            for id in &expired {
                info!(group = %g.id, member = %id, "member session expired: removing it");
                remove_member(g, id);
            }
            if !expired.is_empty() {
                self.after_member_removed(broker, g, "member session expired");
            }
            if let Some(d) = &mut g.initial_delay {
                if d.deadline <= now {
                    if d.new_member_joined && d.remaining_ms > 0 {
                        let delay = self.settings.initial_delay_ms.min(d.remaining_ms);
                        d.deadline = now + Duration::from_millis(delay as u64);
                        d.remaining_ms -= delay;
                        d.new_member_joined = false;
                    } else {
                        self.try_complete_join(broker, g, true);
                    }
                }
            } else if g.rebalance_deadline.is_some_and(|d| d <= now) {
                self.try_complete_join(broker, g, true);
            } else if g.state == GroupState::PreparingRebalance {
                // Pending members may have expired: maybe everyone is in now.
                self.try_complete_join(broker, g, false);
            }
        }
        let wall = now_ms();
        {
            let mut last = self.last_expiry_check.lock();
            if wall - *last < self.settings.retention_check_ms {
                return;
            }
            *last = wall;
        }
        let mut empty_groups = Vec::new();
        for g in groups.values_mut() {
            self.expire_offsets(broker, g, wall);
            if g.is_empty_without_offsets() {
                empty_groups.push(g.id.clone());
            }
        }
        self.remove_empty_groups(broker, &mut groups, empty_groups);
    }

    /// Removes the groups `ids` (empty, with no offsets left), with a tombstone each, as Kafka
    /// does when their last offsets expire or their topics are deleted.
    pub(super) fn remove_empty_groups(
        &self,
        broker: &Broker,
        groups: &mut HashMap<String, Group>,
        ids: Vec<String>,
    ) {
        for id in ids {
            let key = encode_key(&RecordKey::Group { group: id.clone() });
            if self.store(broker, &id, &[(key, None)]).is_ok() {
                groups.remove(&id);
                info!(group = %id, "removed an empty group with no offsets left");
            }
        }
    }
}

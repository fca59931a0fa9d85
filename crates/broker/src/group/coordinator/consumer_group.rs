//! The KIP-848 side of the group coordinator: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe on a group's `ConsumerGroup` state, and that state's records in
//! `__consumer_offsets` (only what changed is written). The classic protocol, offsets, loading
//! and timers are in the parent module.

use super::*;

impl GroupCoordinator {
    /// Appends what changed in a consumer group's state since its last write (tombstones for
    /// what is gone), so that a new coordinator finds its members and epochs.
    pub(super) fn persist_consumer_group(
        &self,
        broker: &Broker,
        g: &mut Group,
    ) -> Result<(), ResponseError> {
        let Some(ng) = &g.next_gen else {
            return Ok(());
        };
        let now = crate::group::consumer_records::records_of(&g.id, ng);
        let mut records: Vec<StoreRecord> = now
            .iter()
            .filter(|(k, v)| g.stored.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        records.extend(
            g.stored
                .keys()
                .filter(|k| !now.contains_key(*k))
                .map(|k| (k.clone(), None)),
        );
        if records.is_empty() {
            return Ok(());
        }
        self.store(broker, &g.id, &records)?;
        g.stored = now;
        Ok(())
    }

    /// Handles a ConsumerGroupHeartbeat (KIP-848): joins, leaves, subscription changes and the
    /// member's next step toward its target assignment.
    pub fn consumer_heartbeat(&self, broker: &Broker, p: HeartbeatParams) -> HeartbeatOutcome {
        let group_id = p.group_id.clone();
        let mut outcome = self.consumer_heartbeat_inner(broker, p);
        if outcome.error.is_none() {
            let mut groups = self.groups.lock();
            if let Some(g) = groups.get_mut(&group_id) {
                if let Err(e) = self.persist_consumer_group(broker, g) {
                    outcome.error = Some((e, "The group's state could not be stored.".to_string()));
                }
            }
        }
        outcome
    }

    /// ConsumerGroupHeartbeat on the group's state, before it is stored.
    fn consumer_heartbeat_inner(&self, broker: &Broker, p: HeartbeatParams) -> HeartbeatOutcome {
        let fail = |e: ResponseError, msg: &str| HeartbeatOutcome {
            error: Some((e, msg.to_string())),
            member_id: p.member_id.clone(),
            member_epoch: p.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        };
        if p.group_id.is_empty() {
            return fail(ResponseError::InvalidRequest, "GroupId can't be empty.");
        }
        if p.version >= 1 && p.member_id.is_empty() {
            return fail(ResponseError::InvalidRequest, "MemberId can't be empty.");
        }
        if p.member_epoch == 0 {
            if p.rebalance_timeout_ms == -1 {
                return fail(
                    ResponseError::InvalidRequest,
                    "RebalanceTimeoutMs must be provided in first request.",
                );
            }
            if p.subscribed_topic_names.is_none() && p.subscribed_topic_regex.is_none() {
                return fail(
                    ResponseError::InvalidRequest,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        }
        if let Some(a) = &p.server_assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return fail(
                    ResponseError::UnsupportedAssignor,
                    &format!(
                        "ServerAssignor {a} is not supported. Supported assignors: uniform, range."
                    ),
                );
            }
        }
        if let Some(re) = &p.subscribed_topic_regex {
            if regex::Regex::new(re).is_err() {
                return fail(
                    ResponseError::InvalidRegularExpression,
                    &format!("SubscribedTopicRegex {re} is not a valid regular expression."),
                );
            }
        }
        if let Err(e) = self.ensure_offsets_topic(broker) {
            return fail(e, "The coordinator is not available.");
        }
        let now = Instant::now();
        let topics = topic_infos(broker);
        let mut groups = match self.locked_for(broker, &p.group_id) {
            Ok(g) => g,
            Err(e) => return fail(e, "This broker does not coordinate the group."),
        };
        if !groups.contains_key(&p.group_id) {
            if p.member_epoch != 0 {
                return fail(
                    ResponseError::UnknownMemberId,
                    &format!("Group {} not found.", p.group_id),
                );
            }
            groups.insert(p.group_id.clone(), Group::new(&p.group_id));
        }
        let g = groups.get_mut(&p.group_id).expect("inserted above");
        if g.next_gen.is_none() {
            if !g.members.is_empty() || !g.pending.is_empty() {
                return fail(
                    ResponseError::GroupIdNotFound,
                    &format!("Group {} is not a consumer group.", p.group_id),
                );
            }
            g.next_gen = Some(ConsumerGroup::default());
            g.protocol_type = Some("consumer".to_string());
        }
        let ng = g.next_gen.as_mut().expect("set above");
        // Leaving (-1), or a static member leaving for a while (-2).
        if p.member_epoch < 0 {
            let Some(m) = ng.members.get_mut(&p.member_id) else {
                return fail(ResponseError::UnknownMemberId, "Unknown member.");
            };
            if p.member_epoch == -2 && m.instance_id.is_some() {
                m.left_static = true;
                m.member_epoch = -2;
            } else {
                ng.members.remove(&p.member_id);
                ng.target.remove(&p.member_id);
                ng.group_epoch += 1;
                ng.subscription_metadata = ng.subscribed_topics(&topics);
                ng.maybe_update_target(&topics);
                info!(group = %g.id, member = %p.member_id, "member left the consumer group");
            }
            return HeartbeatOutcome {
                error: None,
                member_id: p.member_id.clone(),
                member_epoch: p.member_epoch,
                heartbeat_interval_ms: 0,
                assignment: None,
            };
        }
        let member_id = if p.member_id.is_empty() {
            crate::partition::topic_id_base64(&uuid::Uuid::new_v4())
        } else {
            p.member_id.clone()
        };
        let mut bump = false;
        if p.member_epoch == 0 {
            // A static member coming back takes over its previous self's partitions.
            let previous = p.instance_id.as_ref().and_then(|inst| {
                ng.members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(inst) && m.id != member_id)
                    .map(|m| (m.id.clone(), m.left_static))
            });
            let inherited = match previous {
                Some((_, false)) => {
                    return fail(
                        ResponseError::UnreleasedInstanceId,
                        "Static member with this instance id is still in the group.",
                    )
                }
                Some((old, true)) => {
                    let m = ng.members.remove(&old).expect("found above");
                    let target = ng.target.remove(&old);
                    if let Some(t) = target {
                        ng.target.insert(member_id.clone(), t);
                    }
                    Some(m)
                }
                None => None,
            };
            let rejoining = ng.members.remove(&member_id).is_some();
            let member = ConsumerMember {
                id: member_id.clone(),
                instance_id: p.instance_id.clone(),
                rack_id: p.rack_id.clone(),
                client_id: p.client_id.clone(),
                client_host: p.client_host.clone(),
                member_epoch: inherited.as_ref().map_or(0, |m| m.member_epoch.max(0)),
                previous_epoch: 0,
                state: MemberState::Stable,
                rebalance_timeout_ms: p.rebalance_timeout_ms,
                subscribed_names: p.subscribed_topic_names.clone().unwrap_or_default(),
                subscribed_regex: p.subscribed_topic_regex.clone(),
                server_assignor: p.server_assignor.clone(),
                assigned: inherited
                    .as_ref()
                    .map(|m| m.assigned.clone())
                    .unwrap_or_default(),
                pending_revocation: Assignment::new(),
                session_deadline: now,
                revocation_deadline: None,
                left_static: false,
            };
            let same_as_inherited = inherited.as_ref().is_some_and(|m| {
                m.subscribed_names == member.subscribed_names
                    && m.subscribed_regex == member.subscribed_regex
            });
            ng.members.insert(member_id.clone(), member);
            if rejoining {
                ng.target.remove(&member_id);
            }
            if !same_as_inherited {
                bump = true;
            }
            info!(group = %g.id, member = %member_id, static_rejoin = inherited.is_some(), "member joined the consumer group");
        } else {
            let Some(m) = ng.members.get(&member_id) else {
                return fail(ResponseError::UnknownMemberId, "Unknown member.");
            };
            let epoch_ok = p.member_epoch == m.member_epoch
                || (p.member_epoch == m.previous_epoch
                    && p.owned.as_ref().is_some_and(|o| {
                        crate::group::consumer::flatten(o)
                            .is_subset(&crate::group::consumer::flatten(&m.assigned))
                    }));
            if !epoch_ok {
                return fail(
                    ResponseError::FencedMemberEpoch,
                    &format!(
                        "The consumer group member has a smaller member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                        p.member_epoch, m.member_epoch
                    ),
                );
            }
        }
        let m = ng.members.get_mut(&member_id).expect("present");
        let before = m.assigned.clone();
        m.session_deadline =
            now + Duration::from_millis(self.settings.consumer_session_ms.max(0) as u64);
        if p.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        }
        if let Some(names) = &p.subscribed_topic_names {
            if *names != m.subscribed_names {
                m.subscribed_names = names.clone();
                bump = true;
            }
        }
        if let Some(re) = &p.subscribed_topic_regex {
            let re = (!re.is_empty()).then(|| re.clone());
            if re != m.subscribed_regex {
                m.subscribed_regex = re;
                bump = true;
            }
        }
        if p.server_assignor.is_some() && p.server_assignor != m.server_assignor {
            m.server_assignor = p.server_assignor.clone();
            bump = true;
        }
        if p.rack_id.is_some() {
            m.rack_id = p.rack_id.clone();
        }
        let metadata = ng.subscribed_topics(&topics);
        if metadata != ng.subscription_metadata {
            ng.subscription_metadata = metadata;
            bump = true;
        }
        if bump {
            ng.group_epoch += 1;
        }
        ng.maybe_update_target(&topics);
        ng.reconcile(&member_id, p.owned.as_ref(), now);
        let m = &ng.members[&member_id];
        let full_request = p.member_epoch == 0
            || (p.rebalance_timeout_ms != -1
                && p.subscribed_topic_names.is_some()
                && p.owned.is_some());
        HeartbeatOutcome {
            error: None,
            member_id: member_id.clone(),
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: self.settings.consumer_heartbeat_ms,
            assignment: (full_request || m.assigned != before).then(|| m.assigned.clone()),
        }
    }

    /// A consumer-protocol group for ConsumerGroupDescribe; `None` when there is no such group
    /// (unknown, or a classic group).
    pub fn describe_consumer_group(
        &self,
        broker: &Broker,
        group_id: &str,
    ) -> Result<Option<ConsumerGroupDescription>, ResponseError> {
        let groups = self.locked_for(broker, group_id)?;
        let Some(ng) = groups.get(group_id).and_then(|g| g.next_gen.as_ref()) else {
            return Ok(None);
        };
        let names: HashMap<uuid::Uuid, String> = broker
            .image()
            .topics
            .values()
            .map(|t| (t.topic_id, t.name.clone()))
            .collect();
        let named = |a: &Assignment| -> Vec<(uuid::Uuid, String, Vec<i32>)> {
            a.iter()
                .map(|(id, ps)| {
                    (
                        *id,
                        names.get(id).cloned().unwrap_or_default(),
                        ps.iter().copied().collect(),
                    )
                })
                .collect()
        };
        Ok(Some(ConsumerGroupDescription {
            state: ng.state_name(),
            group_epoch: ng.group_epoch,
            assignment_epoch: ng.assignment_epoch,
            assignor: if ng.assignor.is_empty() {
                ASSIGNORS[0].to_string()
            } else {
                ng.assignor.clone()
            },
            members: ng
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_names.clone(),
                    subscribed_topic_regex: m.subscribed_regex.clone(),
                    assignment: named(&m.assigned),
                    target_assignment: named(&ng.target.get(&m.id).cloned().unwrap_or_default()),
                })
                .collect(),
        }))
    }
}

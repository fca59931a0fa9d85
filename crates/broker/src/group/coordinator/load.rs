//! Which groups this broker coordinates: following the leadership of `__consumer_offsets`
//! partitions (a newly led one is read back from its log, a lost one dropped), and the replay
//! that rebuilds a partition's classic groups, KIP-848 groups and committed offsets.

use super::*;

impl GroupCoordinator {
    /// Follows the leadership of `__consumer_offsets` partitions: groups of partitions no
    /// longer led here are dropped (their waiting members answered NOT_COORDINATOR); partitions
    /// newly led are read back from the log and served once loaded.
    pub fn sync_leadership(&self, broker: &Broker) {
        let (_transition, t) = self.shards.begin(broker);
        let n = self.partitions(broker);
        if !t.unload.is_empty() {
            let mut groups = self.groups.lock();
            groups.retain(|id, g| {
                if !t.unload.contains(&partition_for(id, n)) {
                    return true;
                }
                for m in g.members.values_mut() {
                    m.fail_waiters(ResponseError::NotCoordinator);
                }
                false
            });
        }
        for (index, epoch) in t.load {
            match self.read_partition(broker, index) {
                Ok(loaded) => {
                    let mut groups = self.groups.lock();
                    groups.retain(|id, _| partition_for(id, n) != index);
                    groups.extend(loaded);
                    self.shards.activate(index, epoch);
                }
                Err(e) => {
                    warn!(partition = index, error = %e, "loading consumer groups failed");
                    self.shards.abandon(index);
                }
            }
        }
    }

    /// Rebuilds the groups of one `__consumer_offsets` partition from its log.
    pub(super) fn read_partition(
        &self,
        broker: &Broker,
        index: i32,
    ) -> anyhow::Result<HashMap<String, Group>> {
        let mut stored_groups: HashMap<String, Option<GroupValue>> = HashMap::new();
        let mut offsets: HashMap<String, BTreeMap<(String, i32), Option<OffsetValue>>> =
            HashMap::new();
        // Offsets committed in a transaction wait for its marker: (producer id) -> records.
        let mut pending: HashMap<i64, Vec<PendingOffset>> = HashMap::new();
        let mut consumer_groups = crate::group::consumer_records::GroupBuilder::default();
        let records = internal_topics::replay(broker, OFFSETS_TOPIC, index, |r| {
            if r.control {
                let records = pending.remove(&r.producer_id).unwrap_or_default();
                if internal_topics::control_type(r) == Some(1) {
                    for (group, tp, v) in records {
                        offsets.entry(group).or_default().insert(tp, Some(v));
                    }
                }
                return;
            }
            let Some(key) = r.key.as_deref().and_then(decode_key) else {
                return;
            };
            if consumer_groups.apply(&key, r.value.as_deref()) {
                return;
            }
            match key {
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                } => {
                    let v = r.value.as_deref().and_then(decode_offset);
                    match (r.transactional, v) {
                        (true, Some(v)) => pending.entry(r.producer_id).or_default().push((
                            group,
                            (topic, partition),
                            v,
                        )),
                        (_, v) => {
                            offsets
                                .entry(group)
                                .or_default()
                                .insert((topic, partition), v);
                        }
                    }
                }
                RecordKey::Group { group } => {
                    let v = r.value.as_deref().and_then(decode_group);
                    stored_groups.insert(group, v);
                }
                _ => {}
            }
        })?;
        let now = Instant::now();
        let mut groups: HashMap<String, Group> = HashMap::new();
        for (id, value) in stored_groups {
            let Some(v) = value else { continue };
            let mut g = Group::new(&id);
            g.generation = v.generation;
            g.protocol_type = if v.protocol_type.is_empty() {
                None
            } else {
                Some(v.protocol_type.clone())
            };
            g.protocol = v.protocol.clone();
            g.leader = v.leader.clone();
            if v.current_state_timestamp > 0 {
                g.state_timestamp = v.current_state_timestamp;
            }
            for (i, m) in v.members.into_iter().enumerate() {
                let protocol = v.protocol.clone().unwrap_or_default();
                if let Some(inst) = &m.group_instance_id {
                    g.static_members.insert(inst.clone(), m.member_id.clone());
                }
                g.members.insert(
                    m.member_id.clone(),
                    Member {
                        id: m.member_id,
                        instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        protocol_type: v.protocol_type.clone(),
                        protocols: vec![(protocol, m.subscription)],
                        assignment: m.assignment,
                        join_waiter: None,
                        sync_waiter: None,
                        deadline: now + Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                        join_order: i as u64,
                    },
                );
            }
            g.next_join_order = g.members.len() as u64;
            g.state = if g.members.is_empty() {
                GroupState::Empty
            } else {
                GroupState::Stable
            };
            groups.insert(id, g);
        }
        let topics = topic_infos(broker);
        for (id, mut ng) in consumer_groups.build(now, self.settings.consumer_session_ms) {
            // Subscribed topics as they are now: no epoch bump for nothing after a failover.
            ng.subscription_metadata = ng.subscribed_topics(&topics);
            let g = groups.entry(id.clone()).or_insert_with(|| Group::new(&id));
            g.protocol_type = Some("consumer".to_string());
            g.stored = crate::group::consumer_records::records_of(&id, &ng);
            g.next_gen = Some(ng);
        }
        for (id, offs) in offsets {
            let g = groups.entry(id.clone()).or_insert_with(|| Group::new(&id));
            for (tp, v) in offs {
                match v {
                    Some(v) => {
                        g.offsets.insert(tp, v);
                    }
                    None => {
                        g.offsets.remove(&tp);
                    }
                }
            }
        }
        for (pid, records) in pending {
            for (group, tp, v) in records {
                let g = groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group));
                g.pending_txn.entry(pid).or_default().insert(tp, v);
            }
        }
        groups.retain(|_, g| {
            !(g.members.is_empty()
                && g.offsets.is_empty()
                && g.pending_txn.is_empty()
                && g.generation == 0
                && g.protocol_type.is_none())
        });
        // The records read measure the load's cost: bounded by the live state once the
        // partition is compacted, whatever its history.
        info!(
            partition = index,
            records,
            groups = groups.len(),
            "loaded consumer groups"
        );
        Ok(groups)
    }
}

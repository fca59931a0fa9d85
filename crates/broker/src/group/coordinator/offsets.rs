//! Committed offsets in the group coordinator: OffsetCommit (and TxnOffsetCommit, visible once
//! the transaction commits), OffsetFetch, OffsetDelete, offsets of deleted topics and the
//! retention of offsets of empty groups. Membership, loading and timers are in the parent module.

use super::*;

impl GroupCoordinator {
    /// Handles an OffsetCommit: a whole-request error, or one error per entry.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_offsets(
        &self,
        broker: &Broker,
        api_version: i16,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        retention_ms: i64,
        entries: &[OffsetCommitEntry],
    ) -> Result<Vec<i16>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.ensure_offsets_topic(broker)?;
        let mut groups = self.locked_for(broker, group_id)?;
        if !groups.contains_key(group_id) {
            if generation >= 0 {
                return Err(if api_version >= 9 {
                    ResponseError::GroupIdNotFound
                } else {
                    ResponseError::IllegalGeneration
                });
            }
            groups.insert(group_id.to_string(), Group::new(group_id));
        }
        let g = groups.get_mut(group_id).expect("inserted above");
        if g.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(ng) = &g.next_gen {
            if !(generation < 0 && ng.members.is_empty()) {
                let Some(m) = ng.members.get(member_id) else {
                    return Err(ResponseError::UnknownMemberId);
                };
                if api_version < 9 {
                    return Err(ResponseError::UnsupportedVersion);
                }
                if generation > m.member_epoch {
                    return Err(ResponseError::FencedMemberEpoch);
                }
                if generation < m.member_epoch {
                    return Err(ResponseError::StaleMemberEpoch);
                }
            }
        }
        let simple = g.next_gen.is_some() || (generation < 0 && g.state == GroupState::Empty);
        if !simple {
            if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
                if g.fenced(member_id, instance_id) {
                    return Err(ResponseError::FencedInstanceId);
                }
                if !g.members.contains_key(member_id) {
                    return Err(ResponseError::UnknownMemberId);
                }
                if generation != g.generation {
                    return Err(ResponseError::IllegalGeneration);
                }
            } else {
                return Err(ResponseError::UnknownMemberId);
            }
            // A valid member of a generation whose assignment is not out yet (Kafka's order).
            if g.state == GroupState::CompletingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
            // A commit keeps the member's session alive.
            if let Some(m) = g.members.get_mut(member_id) {
                m.deadline = session_deadline(m.session_timeout_ms);
            }
        }
        let (results, records, accepted) =
            self.offset_records(broker, group_id, entries, retention_ms);
        if let Err(err) = self.store(broker, group_id, &records) {
            return Ok(results
                .into_iter()
                .map(|r| if r == NONE { err.code() } else { r })
                .collect());
        }
        g.offsets.extend(accepted);
        Ok(results)
    }

    /// Checks committed offsets (topic exists, metadata size) and encodes the accepted ones:
    /// per-entry error codes, the records to append and the values to apply once written.
    pub(super) fn offset_records(
        &self,
        broker: &Broker,
        group_id: &str,
        entries: &[OffsetCommitEntry],
        retention_ms: i64,
    ) -> PreparedOffsets {
        let now = now_ms();
        let image = broker.image();
        let mut results = Vec::with_capacity(entries.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for e in entries {
            let exists = image
                .topic(&e.topic)
                .is_some_and(|t| e.partition >= 0 && (e.partition as usize) < t.partitions.len());
            if !exists {
                results.push(ResponseError::UnknownTopicOrPartition.code());
                continue;
            }
            let metadata = e.metadata.clone().unwrap_or_default();
            if metadata.len() > self.settings.metadata_max_bytes {
                results.push(ResponseError::OffsetMetadataTooLarge.code());
                continue;
            }
            let value = OffsetValue {
                offset: e.offset,
                leader_epoch: e.leader_epoch,
                metadata,
                commit_timestamp: now,
                expire_timestamp: (retention_ms >= 0).then(|| now + retention_ms),
            };
            records.push((
                encode_key(&RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: e.topic.clone(),
                    partition: e.partition,
                }),
                Some(encode_offset(&value)),
            ));
            accepted.push(((e.topic.clone(), e.partition), value));
            results.push(NONE);
        }
        (results, records, accepted)
    }

    /// Committed offsets of a group: for the given partitions, or all when `None`.
    pub fn fetch_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<OffsetsByTopic, ResponseError> {
        let groups = self.locked_for(broker, group_id)?;
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        let pending = |t: &str, p: i32| {
            groups.get(group_id).is_some_and(|g| {
                g.pending_txn
                    .values()
                    .any(|o| o.contains_key(&(t.to_string(), p)))
            })
        };
        let get = |t: &str, p: i32| -> CommittedOffset {
            match offsets.and_then(|o| o.get(&(t.to_string(), p))) {
                Some(v) => CommittedOffset {
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata.clone(),
                    pending: pending(t, p),
                },
                None => CommittedOffset {
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    pending: pending(t, p),
                },
            }
        };
        Ok(match partitions {
            Some(list) => list
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (*p, get(t, *p))).collect()))
                .collect(),
            None => {
                let mut out: Vec<(String, Vec<(i32, CommittedOffset)>)> = Vec::new();
                for ((t, p), _) in offsets.into_iter().flatten() {
                    match out.last_mut() {
                        Some((lt, v)) if lt == t => v.push((*p, get(t, *p))),
                        _ => out.push((t.clone(), vec![(*p, get(t, *p))])),
                    }
                }
                out
            }
        })
    }

    /// Handles an OffsetDelete: a group-level error, or one error per partition.
    pub fn delete_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, ResponseError> {
        let mut groups = self.locked_for(broker, group_id)?;
        let Some(g) = groups.get_mut(group_id) else {
            return Err(ResponseError::GroupIdNotFound);
        };
        if g.state == GroupState::Dead {
            return Err(ResponseError::GroupIdNotFound);
        }
        let subscribed = match &g.next_gen {
            Some(ng) => Some(
                ng.subscribed_topics(&topic_infos(broker))
                    .into_keys()
                    .collect::<HashSet<String>>(),
            ),
            None => g.subscribed_topics(),
        };
        if !g.members.is_empty() && subscribed.is_none() {
            // A running group of a protocol other than "consumer": Kafka refuses.
            return Err(ResponseError::NonEmptyGroup);
        }
        let mut errors = Vec::new();
        let mut records = Vec::new();
        let mut removed = Vec::new();
        for (t, p) in partitions {
            if subscribed.as_ref().is_some_and(|s| s.contains(t)) {
                errors.push(ResponseError::GroupSubscribedToTopic.code());
                continue;
            }
            if g.offsets.contains_key(&(t.clone(), *p)) {
                records.push((
                    encode_key(&RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: t.clone(),
                        partition: *p,
                    }),
                    None,
                ));
                removed.push((t.clone(), *p));
            }
            errors.push(NONE);
        }
        self.store(broker, group_id, &records)?;
        for k in removed {
            g.offsets.remove(&k);
        }
        Ok(errors)
    }

    /// Drops every group's committed offsets of a deleted topic (Kafka does the same when a
    /// topic is deleted), with tombstones so that a replay agrees; a group left empty with no
    /// offsets is removed then, as Kafka removes it.
    pub fn remove_topic_offsets(&self, broker: &Broker, topic: &str) {
        let mut groups = self.groups.lock();
        let mut emptied = Vec::new();
        for g in groups.values_mut() {
            let keys: Vec<(String, i32)> = g
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            if keys.is_empty() {
                continue;
            }
            let records: Vec<StoreRecord> = keys
                .iter()
                .map(|(t, p)| {
                    (
                        encode_key(&RecordKey::Offset {
                            group: g.id.clone(),
                            topic: t.clone(),
                            partition: *p,
                        }),
                        None,
                    )
                })
                .collect();
            match self.store(broker, &g.id, &records) {
                Ok(()) => {
                    for k in &keys {
                        g.offsets.remove(k);
                    }
                    if g.is_empty_without_offsets() {
                        emptied.push(g.id.clone());
                    }
                }
                Err(e) => {
                    warn!(group = %g.id, topic, error = ?e, "could not drop offsets of a deleted topic")
                }
            }
        }
        self.remove_empty_groups(broker, &mut groups, emptied);
    }

    /// Handles a TxnOffsetCommit: the offsets are written as part of the producer's
    /// transaction and become visible when its commit marker is written.
    #[allow(clippy::too_many_arguments)]
    pub fn txn_commit_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        entries: &[OffsetCommitEntry],
    ) -> Result<Vec<i16>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.ensure_offsets_topic(broker)?;
        let mut groups = self.locked_for(broker, group_id)?;
        let g = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id));
        if g.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        // With group metadata (KIP-447), the member must be current.
        if generation >= 0 || !member_id.is_empty() {
            if let Some(ng) = &g.next_gen {
                match ng.members.get(member_id) {
                    None => return Err(ResponseError::UnknownMemberId),
                    Some(m) if m.member_epoch != generation => {
                        return Err(ResponseError::IllegalGeneration)
                    }
                    Some(_) => {}
                }
            } else {
                if g.fenced(member_id, instance_id) {
                    return Err(ResponseError::FencedInstanceId);
                }
                if !g.members.contains_key(member_id) {
                    return Err(ResponseError::UnknownMemberId);
                }
                if generation != g.generation {
                    return Err(ResponseError::IllegalGeneration);
                }
            }
        }
        let (results, records, accepted) = self.offset_records(broker, group_id, entries, -1);
        let index = partition_for(group_id, self.partitions(broker));
        if let Err(err) = internal_topics::append(
            broker,
            OFFSETS_TOPIC,
            index,
            &records,
            Some((producer_id, producer_epoch)),
        ) {
            return Ok(results
                .into_iter()
                .map(|r| if r == NONE { err.code() } else { r })
                .collect());
        }
        g.pending_txn
            .entry(producer_id)
            .or_default()
            .extend(accepted);
        Ok(results)
    }

    /// A transaction's marker was written to `__consumer_offsets`: its offsets become visible
    /// (commit) or are dropped (abort).
    pub fn complete_txn_offsets(&self, producer_id: i64, commit: bool) {
        let mut groups = self.groups.lock();
        for g in groups.values_mut() {
            if let Some(offsets) = g.pending_txn.remove(&producer_id) {
                if commit {
                    g.offsets.extend(offsets);
                }
            }
        }
    }

    /// Removes offsets past their retention. Offsets of a group with members are kept; those of
    /// an empty group expire `offsets.retention.minutes` after it became empty (or after the
    /// commit, for groups that never had members), as in Kafka.
    pub(super) fn expire_offsets(&self, broker: &Broker, g: &mut Group, now: i64) {
        if g.state != GroupState::Empty {
            return;
        }
        let base_is_state = g.protocol_type.is_some();
        let expired: Vec<(String, i32)> = g
            .offsets
            .iter()
            .filter(|(_, v)| match v.expire_timestamp {
                Some(e) => e <= now,
                None => {
                    let base = if base_is_state {
                        g.state_timestamp
                    } else {
                        v.commit_timestamp
                    };
                    base + self.settings.retention_ms <= now
                }
            })
            .map(|(k, _)| k.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        let records: Vec<StoreRecord> = expired
            .iter()
            .map(|(t, p)| {
                (
                    encode_key(&RecordKey::Offset {
                        group: g.id.clone(),
                        topic: t.clone(),
                        partition: *p,
                    }),
                    None,
                )
            })
            .collect();
        if self.store(broker, &g.id, &records).is_ok() {
            for k in &expired {
                g.offsets.remove(k);
            }
            info!(group = %g.id, offsets = expired.len(), "expired committed offsets");
        }
    }
}

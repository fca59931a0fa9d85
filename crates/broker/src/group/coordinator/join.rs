//! JoinGroup for classic groups: new, known and static members, the rebalance they start
//! (PreparingRebalance, the initial delay) and its completion, when every member has rejoined or
//! the rebalance timeout removes the ones that did not.

use super::*;

impl GroupCoordinator {
    /// Handles a JoinGroup; the receiver yields the response once the rebalance completes.
    pub fn join(&self, broker: &Broker, p: JoinParams) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.join_inner(broker, p.clone(), tx) {
            // join_inner only returns the sender back when it answered nothing.
            let (error, tx) = e;
            let _ = tx.send(JoinResult::error(error, &p.member_id));
        }
        rx
    }

    pub(super) fn join_inner(
        &self,
        broker: &Broker,
        p: JoinParams,
        tx: oneshot::Sender<JoinResult>,
    ) -> Result<(), (ResponseError, oneshot::Sender<JoinResult>)> {
        if p.group_id.is_empty() {
            return Err((ResponseError::InvalidGroupId, tx));
        }
        if p.session_timeout_ms < self.settings.min_session_ms
            || p.session_timeout_ms > self.settings.max_session_ms
        {
            return Err((ResponseError::InvalidSessionTimeout, tx));
        }
        if let Err(e) = self.ensure_offsets_topic(broker) {
            return Err((e, tx));
        }
        let mut groups = match self.locked_for(broker, &p.group_id) {
            Ok(g) => g,
            Err(e) => return Err((e, tx)),
        };
        if !groups.contains_key(&p.group_id) {
            if !p.member_id.is_empty() {
                return Err((ResponseError::UnknownMemberId, tx));
            }
            groups.insert(p.group_id.clone(), Group::new(&p.group_id));
        }
        let g = groups.get_mut(&p.group_id).expect("inserted above");
        if g.state == GroupState::Dead {
            return Err((ResponseError::CoordinatorNotAvailable, tx));
        }
        if g.next_gen.as_ref().is_some_and(|n| !n.members.is_empty()) {
            // Classic members joining a consumer-protocol group (KIP-848 migration) is not
            // supported.
            return Err((ResponseError::InconsistentGroupProtocol, tx));
        }
        if g.next_gen.is_some() {
            g.next_gen = None;
        }
        if !g.supports(&p.protocol_type, &p.protocols) {
            return Err((ResponseError::InconsistentGroupProtocol, tx));
        }
        if p.member_id.is_empty() {
            self.join_unknown_member(broker, g, p, tx)
        } else {
            self.join_known_member(broker, g, p, tx)
        }
    }

    pub(super) fn join_unknown_member(
        &self,
        broker: &Broker,
        g: &mut Group,
        p: JoinParams,
        tx: oneshot::Sender<JoinResult>,
    ) -> Result<(), (ResponseError, oneshot::Sender<JoinResult>)> {
        let prefix = p.group_instance_id.as_deref().unwrap_or(&p.client_id);
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(inst) = p.group_instance_id.clone() {
            if let Some(old_id) = g.static_members.get(&inst).cloned() {
                self.replace_static_member(broker, g, &old_id, new_id, p, tx);
                return Ok(());
            }
        } else if p.require_known_member_id {
            if g.members.len() + g.pending.len() >= self.settings.max_size {
                return Err((ResponseError::GroupMaxSizeReached, tx));
            }
            g.pending.insert(
                new_id.clone(),
                Instant::now() + Duration::from_millis(p.session_timeout_ms as u64),
            );
            let _ = tx.send(JoinResult::error(ResponseError::MemberIdRequired, &new_id));
            return Ok(());
        }
        if g.members.len() >= self.settings.max_size {
            return Err((ResponseError::GroupMaxSizeReached, tx));
        }
        self.add_member_and_rebalance(broker, g, new_id, p, tx);
        Ok(())
    }

    pub(super) fn join_known_member(
        &self,
        broker: &Broker,
        g: &mut Group,
        p: JoinParams,
        tx: oneshot::Sender<JoinResult>,
    ) -> Result<(), (ResponseError, oneshot::Sender<JoinResult>)> {
        if g.pending.contains_key(&p.member_id) {
            let id = p.member_id.clone();
            self.add_member_and_rebalance(broker, g, id, p, tx);
            return Ok(());
        }
        if g.fenced(&p.member_id, p.group_instance_id.as_deref()) {
            return Err((ResponseError::FencedInstanceId, tx));
        }
        if !g.members.contains_key(&p.member_id) {
            return Err((ResponseError::UnknownMemberId, tx));
        }
        let state = g.state;
        let is_leader = g.is_leader(&p.member_id);
        let member = g.members.get_mut(&p.member_id).expect("checked above");
        let same_protocols = member.protocols == p.protocols;
        match state {
            GroupState::PreparingRebalance => {
                update_member(member, &p, tx);
                self.try_complete_join(broker, g, false);
            }
            GroupState::CompletingRebalance if same_protocols => {
                member.deadline = session_deadline(member.session_timeout_ms);
                let _ = tx.send(g.current_join_result(&p.member_id, is_leader));
            }
            GroupState::Stable if same_protocols && !is_leader => {
                member.deadline = session_deadline(member.session_timeout_ms);
                let _ = tx.send(g.current_join_result(&p.member_id, false));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                update_member(member, &p, tx);
                self.prepare_rebalance(g, "member rejoined with new metadata or as leader");
                self.try_complete_join(broker, g, false);
            }
            GroupState::Empty | GroupState::Dead => {
                return Err((ResponseError::UnknownMemberId, tx));
            }
        }
        Ok(())
    }

    pub(super) fn add_member_and_rebalance(
        &self,
        broker: &Broker,
        g: &mut Group,
        id: String,
        p: JoinParams,
        tx: oneshot::Sender<JoinResult>,
    ) {
        g.pending.remove(&id);
        if let Some(inst) = &p.group_instance_id {
            g.static_members.insert(inst.clone(), id.clone());
        }
        let order = g.next_join_order;
        g.next_join_order += 1;
        let member = Member {
            id: id.clone(),
            instance_id: p.group_instance_id.clone(),
            client_id: p.client_id.clone(),
            client_host: p.client_host.clone(),
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            session_timeout_ms: p.session_timeout_ms,
            protocol_type: p.protocol_type.clone(),
            protocols: p.protocols.clone(),
            assignment: Bytes::new(),
            join_waiter: Some(tx),
            sync_waiter: None,
            deadline: session_deadline(p.session_timeout_ms),
            join_order: order,
        };
        if g.members.is_empty() {
            g.protocol_type = Some(p.protocol_type.clone());
        }
        g.members.insert(id.clone(), member);
        if g.leader.is_none() {
            g.leader = Some(id);
        }
        if let Some(d) = g.initial_delay.as_mut() {
            d.new_member_joined = true;
        }
        if matches!(
            g.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(g, "a new member joined");
        }
        self.try_complete_join(broker, g, false);
    }

    pub(super) fn replace_static_member(
        &self,
        broker: &Broker,
        g: &mut Group,
        old_id: &str,
        new_id: String,
        p: JoinParams,
        tx: oneshot::Sender<JoinResult>,
    ) {
        let Some(mut member) = g.members.remove(old_id) else {
            // The instance map pointed at a member that is gone: treat as new.
            g.static_members
                .remove(p.group_instance_id.as_deref().unwrap_or_default());
            self.add_member_and_rebalance(broker, g, new_id, p, tx);
            return;
        };
        member.fail_waiters(ResponseError::FencedInstanceId);
        let old_protocols = std::mem::replace(&mut member.protocols, p.protocols.clone());
        member.id = new_id.clone();
        member.client_id = p.client_id.clone();
        member.client_host = p.client_host.clone();
        member.session_timeout_ms = p.session_timeout_ms;
        member.rebalance_timeout_ms = p.rebalance_timeout_ms;
        member.deadline = session_deadline(p.session_timeout_ms);
        let was_leader = g.is_leader(old_id);
        if was_leader {
            g.leader = Some(new_id.clone());
        }
        if let Some(inst) = &p.group_instance_id {
            g.static_members.insert(inst.clone(), new_id.clone());
        }
        g.members.insert(new_id.clone(), member);
        match g.state {
            GroupState::Stable => {
                let selected_unchanged = g.select_protocol() == g.protocol;
                if selected_unchanged && (!was_leader || p.supports_skip_assignment) {
                    // Same subscription protocol: keep the assignment, no rebalance.
                    if let Err(e) = self.store_group(broker, g) {
                        // Undo the replacement so that the old instance keeps working.
                        let mut m = g.members.remove(&new_id).expect("just inserted");
                        m.id = old_id.to_string();
                        m.protocols = old_protocols;
                        if was_leader {
                            g.leader = Some(old_id.to_string());
                        }
                        if let Some(inst) = &p.group_instance_id {
                            g.static_members.insert(inst.clone(), old_id.to_string());
                        }
                        g.members.insert(old_id.to_string(), m);
                        let _ = tx.send(JoinResult::error(e, ""));
                        return;
                    }
                    let mut result = g.current_join_result(&new_id, was_leader);
                    result.skip_assignment = was_leader;
                    let _ = tx.send(result);
                } else {
                    g.members.get_mut(&new_id).expect("inserted").join_waiter = Some(tx);
                    self.prepare_rebalance(g, "static member rejoined");
                    self.try_complete_join(broker, g, false);
                }
            }
            GroupState::CompletingRebalance => {
                g.members.get_mut(&new_id).expect("inserted").join_waiter = Some(tx);
                self.prepare_rebalance(g, "static member rejoined during a rebalance");
                self.try_complete_join(broker, g, false);
            }
            _ => {
                g.members.get_mut(&new_id).expect("inserted").join_waiter = Some(tx);
                self.try_complete_join(broker, g, false);
            }
        }
    }

    pub(super) fn prepare_rebalance(&self, g: &mut Group, reason: &str) {
        if g.state == GroupState::CompletingRebalance {
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.sync_waiter.take() {
                    let _ = tx.send(SyncResult::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let timeout = g.max_rebalance_timeout_ms();
        if g.state == GroupState::Empty && self.settings.initial_delay_ms > 0 {
            let delay = self.settings.initial_delay_ms.min(timeout.max(0));
            g.initial_delay = Some(InitialDelay {
                deadline: Instant::now() + Duration::from_millis(delay as u64),
                remaining_ms: (timeout - delay).max(0),
                new_member_joined: false,
            });
            g.rebalance_deadline = None;
        } else {
            g.initial_delay = None;
            g.rebalance_deadline = Some(Instant::now() + Duration::from_millis(timeout as u64));
        }
        info!(group = %g.id, generation = g.generation, reason, "preparing to rebalance");
        g.transition(GroupState::PreparingRebalance);
    }

    /// Completes the join phase when every member has rejoined (or when forced by a timer).
    pub(super) fn try_complete_join(&self, broker: &Broker, g: &mut Group, force: bool) {
        if g.state != GroupState::PreparingRebalance {
            return;
        }
        if g.initial_delay.is_some() && !force {
            return;
        }
        let all_joined =
            g.members.values().all(|m| m.join_waiter.is_some()) && g.pending.is_empty();
        if !all_joined && !force {
            return;
        }
        // Dynamic members that did not rejoin in time are removed; static ones stay.
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            remove_member(g, &id);
        }
        g.initial_delay = None;
        g.rebalance_deadline = None;
        g.generation += 1;
        if g.members.is_empty() {
            g.protocol = None;
            g.leader = None;
            g.transition(GroupState::Empty);
            if let Err(e) = self.store_group(broker, g) {
                warn!(group = %g.id, error = ?e, "could not store the empty group");
            }
            info!(group = %g.id, generation = g.generation, "group is empty");
            return;
        }
        g.protocol = g.select_protocol();
        if g.leader.as_ref().is_none_or(|l| !g.members.contains_key(l)) {
            g.leader = g
                .members
                .values()
                .min_by_key(|m| m.join_order)
                .map(|m| m.id.clone());
        }
        g.transition(GroupState::CompletingRebalance);
        let leader_members = g.leader_members();
        let leader = g.leader.clone().unwrap_or_default();
        for m in g.members.values_mut() {
            m.deadline = session_deadline(m.session_timeout_ms);
            if let Some(tx) = m.join_waiter.take() {
                let _ = tx.send(JoinResult {
                    error: NONE,
                    generation_id: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol.clone(),
                    leader: leader.clone(),
                    skip_assignment: false,
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        leader_members.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        info!(group = %g.id, generation = g.generation, members = g.members.len(),
            protocol = ?g.protocol, "rebalance: members joined, awaiting assignment");
    }
}

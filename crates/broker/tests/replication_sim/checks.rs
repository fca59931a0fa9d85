//! The simulation's invariants, checked after every step (one leader per epoch, ISR logs agreeing
//! up to the high watermark, no acknowledged record lost), and the healing and final check at the
//! end of a seed.

use super::*;

impl Sim {
    /// The invariants, after every step:
    /// 1. at most one replica leads in any leader epoch (as the replicas see themselves, and as
    ///    the controller names them);
    /// 2. a leader's high watermark never goes down within its epoch;
    /// 3. every live ISR member (the leader's view, and the controller's when it names this
    ///    leader) has the leader's log, byte for byte, up to the leader's high watermark;
    /// 4. every acknowledged batch is, at its offset and byte for byte, in the log of every
    ///    replica leading in its epoch or a later one.
    pub(super) fn check(&mut self) -> Result<(), String> {
        if let Some(e) = self.broken.take() {
            return Err(e);
        }
        let ctl_p = self.ctl.partition();
        for id in self.alive() {
            let node = &self.nodes[(id - 1) as usize];
            let inc = node.incarnation;
            let part = node.part.as_ref().unwrap();
            if !part.is_leader() {
                continue;
            }
            let state = part.state();
            let epoch = state.leader_epoch;
            let seen = *self.leader_of_epoch.entry(epoch).or_insert(id);
            if seen != id {
                return Err(format!("two leaders in epoch {epoch}: {seen} and {id}"));
            }
            let hw = part.high_watermark();
            let before = self.hw_in_epoch.entry(epoch).or_insert(hw);
            if hw < *before {
                return Err(format!(
                    "leader {id} high watermark went down in epoch {epoch}: {before} -> {hw}"
                ));
            }
            *before = hw;
            if self.unclean {
                continue;
            }
            let mut members: Vec<i32> = state.isr.clone();
            if ctl_p.leader == id && ctl_p.leader_epoch == epoch {
                members.extend(ctl_p.isr.iter().copied().filter(|r| !state.isr.contains(r)));
            }
            let own = prefix(part, hw)?;
            for r in members.into_iter().filter(|r| *r != id) {
                let Some(other) = self.part(r) else {
                    continue;
                };
                let other_leo = leo(other);
                if other_leo < hw {
                    return Err(format!(
                        "ISR member {r} of leader {id} (epoch {epoch}) has log end {other_leo} below the high watermark {hw}"
                    ));
                }
                if prefix(other, hw)? != own {
                    return Err(format!(
                        "ISR member {r} of leader {id} (epoch {epoch}) differs from the leader below the high watermark {hw}"
                    ));
                }
            }
            let key = (id, inc, epoch);
            let from = self.verified.get(&key).copied().unwrap_or(0);
            for a in &self.acked[from..] {
                if a.epoch <= epoch && !holds_batch(part, a.base, &a.bytes) {
                    return Err(format!(
                        "acknowledged r{} (offset {}, epoch {}) is not in the log of {id}, leader in epoch {epoch}",
                        a.id, a.base, a.epoch
                    ));
                }
            }
            self.verified.insert(key, self.acked.len());
        }
        Ok(())
    }

    /// Everyone back up and connected, then fetch rounds until all logs agree.
    pub(super) fn heal(&mut self) -> Result<(), String> {
        self.log("heal".to_string());
        for id in NODES {
            if self.part(id).is_none() {
                self.restart_node(id);
            }
            self.node_mut(id).isolated = false;
        }
        for round in 0..HEAL_ROUNDS {
            self.step += 1;
            for id in NODES {
                if self.node(id).applied < self.ctl.version {
                    self.deliver_metadata(id);
                }
            }
            for id in NODES {
                let n = self.node(id);
                if self.ctl.fenced(id) && n.applied >= n.registered_at {
                    self.unfence(id);
                }
            }
            for id in NODES {
                if self.node(id).applied < self.ctl.version {
                    self.deliver_metadata(id);
                }
            }
            self.check()?;
            // Every in-flight fetch is served and applied, then every follower fetches once.
            for _ in 0..2 {
                while self.fetches.iter().any(|f| f.answer.is_none()) {
                    let i = self
                        .fetches
                        .iter()
                        .position(|f| f.answer.is_none())
                        .unwrap();
                    let f = self.fetches.remove(i);
                    self.fetches.insert(0, f);
                    self.serve_one_now();
                }
                while !self.fetches.is_empty() {
                    self.apply_fetch();
                }
                self.check()?;
                while self.send_fetch() {}
            }
            self.wake_producers();
            self.isr_upkeep();
            self.now += LAG_MS / 4;
            self.check()?;
            let p = self.ctl.partition();
            if p.leader < 0 || p.isr.len() != NODES.len() {
                continue;
            }
            let leader = self.part(p.leader).unwrap();
            let (end, hw) = (leo(leader), leader.high_watermark());
            let settled = NODES.iter().all(|id| {
                let part = self.part(*id).unwrap();
                self.node(*id).applied == self.ctl.version
                    && leo(part) == end
                    && part.high_watermark() == hw
            });
            if settled && hw == end {
                self.log(format!("healed after {round} rounds: log end {end}"));
                return self.final_check();
            }
        }
        Err(format!("not healed after {HEAL_ROUNDS} rounds"))
    }

    /// Serves the first fetch in flight, never holding it.
    pub(super) fn serve_one_now(&mut self) {
        // serve_fetch picks at random among the unanswered; make the first the only one.
        let rest: Vec<Fetch> = self.fetches.drain(1..).collect();
        loop {
            self.serve_fetch();
            if self.fetches.first().is_none_or(|f| f.answer.is_some()) {
                break;
            }
        }
        self.fetches.extend(rest);
    }

    /// After the heal: three byte-identical logs holding every acknowledged batch.
    pub(super) fn final_check(&mut self) -> Result<(), String> {
        let logs: Vec<Vec<u8>> = NODES
            .iter()
            .map(|id| prefix(self.part(*id).unwrap(), i64::MAX))
            .collect::<Result<_, _>>()?;
        for (i, l) in logs.iter().enumerate().skip(1) {
            if *l != logs[0] {
                return Err(format!(
                    "after the heal the logs of {} and {} differ",
                    NODES[0], NODES[i]
                ));
            }
        }
        for id in NODES.iter().copied().filter(|_| !self.unclean) {
            let part = self.part(id).unwrap();
            for a in &self.acked {
                if !holds_batch(part, a.base, &a.bytes) {
                    return Err(format!(
                        "after the heal acknowledged r{} (offset {}) is not on {id}",
                        a.id, a.base
                    ));
                }
            }
        }
        Ok(())
    }
}

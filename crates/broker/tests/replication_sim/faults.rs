//! The simulation's faults: a node crashed and restarted (cleanly or not), its broker session
//! expiring or renewed, a node cut off from the others and reconnected.

use super::*;

impl Sim {
    /// A broker process dies: its partition goes, its connections with it.
    pub(super) fn crash(&mut self) -> bool {
        let Some(id) = self.rng.pick(&self.alive()) else {
            return false;
        };
        let part = self.part(id).unwrap();
        let hw = part.high_watermark();
        let end = leo(part);
        let checkpoint = self.rng.below(hw as u64 + 1) as i64;
        let node = self.node_mut(id);
        node.part = None;
        node.hw_checkpoint = checkpoint;
        self.fetches.retain(|f| f.follower != id && f.leader != id);
        self.stats.borrow_mut().crashes += 1;
        self.log(format!("node {id} crashes (hw checkpoint {checkpoint})"));
        if self.rng.chance(30) {
            // Killed in the middle of an append: part of a batch at the end of the newest
            // segment, which recovery must cut away.
            let value = vec![b't'; 1 + self.rng.below(200) as usize];
            let batch = build_batch(end, &[(None, Some(value.as_slice()), self.now)], -1, -1, -1);
            let torn = 1 + self.rng.below(batch.len() as u64 - 1) as usize;
            let newest = std::fs::read_dir(&self.node(id).dir)
                .expect("log dir")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .max()
                .expect("a segment");
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&newest)
                .expect("open segment");
            std::io::Write::write_all(&mut file, &batch[..torn]).expect("torn write");
            self.stats.borrow_mut().torn_writes += 1;
            self.log(format!("node {id}: {torn} bytes of a batch at {end} torn"));
        }
        true
    }

    /// A crashed broker starts again: its log reopened after an unclean shutdown, registered
    /// anew (fenced), the metadata applied.
    pub(super) fn restart(&mut self) -> bool {
        let down: Vec<i32> = NODES
            .iter()
            .copied()
            .filter(|id| self.part(*id).is_none())
            .collect();
        let Some(id) = self.rng.pick(&down) else {
            return false;
        };
        self.restart_node(id);
        true
    }

    pub(super) fn restart_node(&mut self, id: i32) {
        {
            let node = self.node_mut(id);
            node.incarnation += 1;
            node.isolated = false;
            node.image = MetadataImage::default();
            node.applied = 0;
        }
        self.open(id);
        let leo = leo(self.part(id).unwrap());
        self.log(format!("node {id} restarts (log end {leo})"));
        // Registration: a new broker epoch, fenced; after a crash (no clean-shutdown marker)
        // it leaves every ISR and ELR, and what a still-unfenced old registration led moves
        // away (controller/lifecycle.rs `register`).
        let mut records = vec![];
        if !self.ctl.fenced(id) {
            records.push(MetadataRecord::FenceBroker {
                broker_id: id,
                broker_epoch: self.ctl.broker_epoch(id),
            });
        }
        records.extend(self.unclean_restart_changes(id));
        let epoch = self.ctl.next_broker_epoch;
        self.ctl.next_broker_epoch += 1;
        records.push(MetadataRecord::RegisterBroker {
            broker_id: id,
            incarnation_id: Uuid::from_u128(epoch as u128),
            broker_epoch: epoch,
            endpoints: vec![],
            rack: None,
        });
        self.commit(records, &format!("node {id} registers"));
        self.node_mut(id).registered_at = self.ctl.version;
        self.node_mut(id).broker_epoch = epoch;
        self.deliver_metadata(id);
    }

    /// The controller fences a broker whose session expired (crashed or cut off).
    pub(super) fn expire_session(&mut self) -> bool {
        let expired: Vec<i32> = NODES
            .iter()
            .copied()
            .filter(|id| {
                !self.ctl.fenced(*id) && (self.part(*id).is_none() || self.node(*id).isolated)
            })
            .collect();
        let Some(id) = self.rng.pick(&expired) else {
            return false;
        };
        let mut records = vec![MetadataRecord::FenceBroker {
            broker_id: id,
            broker_epoch: self.ctl.broker_epoch(id),
        }];
        records.extend(self.fenced_changes(id));
        self.commit(records, &format!("node {id} fenced"));
        true
    }

    /// A fenced broker whose metadata caught up with its registration is unfenced by its
    /// heartbeat (controller/lifecycle.rs `heartbeat`).
    pub(super) fn heartbeat(&mut self) -> bool {
        let ready: Vec<i32> = self
            .alive()
            .into_iter()
            .filter(|id| {
                let n = self.node(*id);
                !n.isolated && self.ctl.fenced(*id) && n.applied >= n.registered_at
            })
            .collect();
        let Some(id) = self.rng.pick(&ready) else {
            return false;
        };
        self.unfence(id);
        true
    }

    pub(super) fn unfence(&mut self, id: i32) {
        let mut records = vec![MetadataRecord::UnfenceBroker {
            broker_id: id,
            broker_epoch: self.ctl.broker_epoch(id),
        }];
        records.extend(election::on_broker_unfenced(
            &self.ctl.image,
            id,
            self.defaults(),
        ));
        self.commit(records, &format!("node {id} unfenced"));
    }

    /// A live broker loses the controller (no heartbeats, no metadata), or gets it back.
    pub(super) fn isolate_or_reconnect(&mut self) -> bool {
        let isolated: Vec<i32> = NODES
            .iter()
            .copied()
            .filter(|id| self.node(*id).isolated)
            .collect();
        if let Some(id) = self.rng.pick(&isolated) {
            self.node_mut(id).isolated = false;
            self.log(format!("node {id} reaches the controller again"));
            return true;
        }
        let Some(id) = self.rng.pick(&self.alive()) else {
            return false;
        };
        self.node_mut(id).isolated = true;
        self.log(format!("node {id} is cut off from the controller"));
        true
    }
}

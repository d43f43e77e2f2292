//! The parent's check: the recovered state must equal the model after some prefix of the
//! child's writes that contains every acknowledged one (DESIGN.md section 6).
//!
//! The prefixes are walked in order while a set of mismatched keys is kept up to date (each
//! write changes only the keys it touches), so checking every prefix costs one pass over the
//! state plus one pass over the writes.

use std::collections::BTreeSet;

use super::workload::{Lane, Map, Op, State, Step, Workload, TREE_NAMES};

/// What a crashed child must have left in one lane's keys: the state they started from, and
/// the seed and count of acknowledged writes of the sequence the lane ran from there (`None`:
/// it ran nothing).
#[derive(Clone, Debug)]
pub struct Expectation {
    pub lane: Lane,
    pub start: State,
    pub ran: Option<(u64, u64)>,
}

impl Expectation {
    /// Exactly `state`, with nothing run since.
    pub fn exactly(state: State) -> Expectation {
        Expectation {
            lane: Lane::ALL,
            start: state,
            ran: None,
        }
    }
}

/// Keys whose value differs between the model and the recovered state.
struct Mismatches(BTreeSet<(usize, Vec<u8>)>);

impl Mismatches {
    fn new(model: &State, found: &State) -> Mismatches {
        let mut set = BTreeSet::new();
        for (t, (m, f)) in model.iter().zip(found).enumerate() {
            for key in m.keys().chain(f.keys()) {
                if m.get(key) != f.get(key) {
                    set.insert((t, key.clone()));
                }
            }
        }
        Mismatches(set)
    }

    fn recheck(&mut self, model: &State, found: &State, op: &Op) {
        let (t, keys) = op.touched();
        for key in keys {
            if model[t].get(key) == found[t].get(key) {
                self.0.remove(&(t, key.to_vec()));
            } else {
                self.0.insert((t, key.to_vec()));
            }
        }
    }

    /// The first few mismatches, one line each.
    fn describe(&self, model: &State, found: &State) -> String {
        let show = |m: &Map, k: &[u8]| match m.get(k) {
            Some(v) => format!("{:?}", v.escape_ascii().to_string()),
            None => "absent".into(),
        };
        let mut out = String::new();
        for (t, k) in self.0.iter().take(5) {
            out.push_str(&format!(
                "\n    tree {:?} key {:?}: expected {}, found {}",
                TREE_NAMES[*t],
                k.escape_ascii().to_string(),
                show(&model[*t], k),
                show(&found[*t], k)
            ));
        }
        if self.0.len() > 5 {
            out.push_str(&format!("\n    ... {} keys differ in all", self.0.len()));
        }
        out
    }
}

/// The length of a prefix of the expected writes that `found` equals in the lane's keys, or
/// what differs.
pub fn matching_prefix(expected: &Expectation, found: &State) -> Result<u64, String> {
    let found = &expected.lane.part(found);
    let Some((seed, acked)) = expected.ran else {
        let diff = Mismatches::new(&expected.start, found);
        return match diff.0.is_empty() {
            true => Ok(0),
            false => Err(format!(
                "the state differs from the last one checked, with no writes since:{}",
                diff.describe(&expected.start, found)
            )),
        };
    };
    let mut w = Workload::new(seed, expected.lane, expected.start.clone());
    let mut diff = Mismatches::new(&w.state, found);
    let mut at_ack = String::new();
    let mut closest = (usize::MAX, 0);
    loop {
        if w.writes == acked {
            at_ack = diff.describe(&w.state, found);
        }
        if w.writes >= acked {
            if diff.0.is_empty() {
                return Ok(w.writes);
            }
            closest = closest.min((diff.0.len(), w.writes));
        }
        match w.step().0 {
            // The child acknowledges at each flush, so none past the first unacknowledged one
            // was issued.
            Step::Flush if w.writes > acked => break,
            Step::Flush => {}
            Step::Write(op) => diff.recheck(&w.state, found, &op),
        }
    }
    Err(format!(
        "no prefix of {} to {} writes matches ({acked} acknowledged; the closest, {} writes, \
         differs in {} keys); against the acknowledged prefix:{at_ack}",
        acked, w.writes, closest.1, closest.0
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash::workload::{apply, Op};

    /// The states after each write of the sequence of `seed` (index n: after n writes), up to
    /// the `flushes`-th flush, and the write counts at each flush.
    fn states(seed: u64, flushes: usize) -> (Vec<State>, Vec<u64>, Vec<Op>) {
        let mut w = Workload::new(seed, Lane::ALL, State::default());
        let (mut states, mut acks, mut ops) = (vec![w.state.clone()], vec![], vec![]);
        while acks.len() < flushes {
            match w.step().0 {
                Step::Flush => acks.push(w.writes),
                Step::Write(op) => {
                    states.push(w.state.clone());
                    ops.push(op);
                }
            }
        }
        (states, acks, ops)
    }

    #[test]
    fn every_prefix_from_the_acknowledged_one_to_the_next_flush_is_accepted() {
        let (states, acks, _) = states(7, 6);
        let acked = acks[3];
        let expected = Expectation {
            lane: Lane::ALL,
            start: State::default(),
            ran: Some((7, acked)),
        };
        for n in acked..=acks[4] {
            let got = matching_prefix(&expected, &states[n as usize]).unwrap();
            assert_eq!(states[got as usize], states[n as usize]);
            assert!(got >= acked);
        }
    }

    #[test]
    fn a_lost_acknowledged_write_or_one_never_issued_is_rejected() {
        let (states, acks, _) = states(11, 6);
        let expected = Expectation {
            lane: Lane::ALL,
            start: State::default(),
            ran: Some((11, acks[3])),
        };
        // The last acknowledged write missing (unless it changed nothing).
        let before = &states[acks[3] as usize - 1];
        if before != &states[acks[3] as usize] {
            assert!(matching_prefix(&expected, before).is_err());
        }
        // A write past the next flush: the child never issued it.
        let beyond = &states[acks[4] as usize + 1];
        if beyond != &states[acks[4] as usize] {
            assert!(matching_prefix(&expected, beyond).is_err());
        }
    }

    #[test]
    fn half_a_batch_is_rejected() {
        let (states, acks, ops) = states(3, 40);
        // The state before a batch plus its first write only (a batch where that state is no
        // prefix's: its first write changes something and so do the others).
        let (i, torn) = ops
            .iter()
            .enumerate()
            .find_map(|(i, op)| {
                let Op::Batch(tree, writes) = op else {
                    return None;
                };
                let mut torn = states[i].clone();
                apply(&mut torn, &Op::Batch(*tree, writes[..1].to_vec()));
                states.iter().all(|s| *s != torn).then_some((i, torn))
            })
            .expect("the sequence has a batch that can tear");
        // Acknowledged up to the flush before the batch, so the batch is within reach.
        let acked = acks.iter().copied().rfind(|&a| a <= i as u64);
        let expected = Expectation {
            lane: Lane::ALL,
            start: State::default(),
            ran: Some((3, acked.unwrap_or(0))),
        };
        assert!(matching_prefix(&expected, &states[i + 1]).is_ok());
        assert!(matching_prefix(&expected, &torn).is_err());
    }

    #[test]
    fn a_lane_is_checked_on_its_own_keys_only() {
        let lane = Lane { index: 1, count: 2 };
        let mut w = Workload::new(9, lane, State::default());
        while w.step().0 != Step::Flush {}
        let expected = Expectation {
            lane,
            start: State::default(),
            ran: Some((9, w.writes)),
        };
        let mut found = w.state.clone();
        // The lane wrote only its own keys.
        assert_eq!(lane.part(&w.state), w.state);
        // Another lane's key (key 0 is lane 0's): not this lane's business.
        found[0].insert(b"key0000".to_vec(), b"x".to_vec());
        assert_eq!(matching_prefix(&expected, &found), Ok(w.writes));
        // A key no lane writes shows in lane 0's check.
        let mut stray = found.clone();
        stray[2].insert(b"kez".to_vec(), Vec::new());
        let lane0 = Expectation {
            lane: Lane { index: 0, count: 2 },
            ..Expectation::exactly(Lane { index: 0, count: 2 }.part(&found))
        };
        assert!(matching_prefix(&lane0, &found).is_ok());
        assert!(matching_prefix(&lane0, &stray).is_err());
        // One of its own keys with a value no write wrote.
        found[0].insert(b"key0001".to_vec(), b"x".to_vec());
        assert!(matching_prefix(&expected, &found).is_err());
    }

    #[test]
    fn with_no_writes_only_the_same_state_is_accepted() {
        let (states, _, _) = states(5, 2);
        let last = states.last().unwrap().clone();
        let expected = Expectation::exactly(last.clone());
        assert_eq!(matching_prefix(&expected, &last), Ok(0));
        assert!(matching_prefix(&expected, &states[0]).is_err());
    }
}

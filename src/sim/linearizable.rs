//! A linearizability checker for one znode (Wing & Gong's search with
//! Lowe's memoisation), over histories the simulator records.
//!
//! ZooKeeper promises linearizable writes and, for a client that calls
//! `sync` before it reads, a read that sees every write completed before
//! the sync was sent. Checking per znode is enough for those promises
//! (linearizability is compositional) and keeps histories small, so a
//! plain search is fast: at each point, any operation invoked before the
//! earliest pending response may take effect next; a (set of operations
//! done, znode state) pair already explored is not explored again.
//!
//! An operation whose reply never came (the connection closed first) may
//! have taken effect or not: it has no response time and the search may
//! place it anywhere after its invocation, or nowhere.

use std::collections::HashSet;

/// What a znode holds: its data and version, or nothing.
pub type State = Option<(Vec<u8>, i32)>;

/// An operation on the znode; `version` -1 matches any version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    Create {
        data: Vec<u8>,
    },
    SetData {
        data: Vec<u8>,
        version: i32,
    },
    Delete {
        version: i32,
    },
    /// A multi's check.
    Check {
        version: i32,
    },
    /// A read after a sync: the data and version seen, or nothing.
    Read,
}

/// What the reply said.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    /// setData's new version.
    Version(i32),
    NodeExists,
    NoNode,
    BadVersion,
    Read(State),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub client: u64,
    pub op: Op,
    /// None: no reply came; the operation may or may not have taken effect.
    pub outcome: Option<Outcome>,
    pub invoke: u64,
    /// Set exactly when `outcome` is.
    pub response: Option<u64>,
}

/// The checker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order explains the history; the event that could not be placed.
    Violation {
        stuck_at: Event,
    },
    /// The search gave up after `SEARCH_STATES_MAX` states.
    Inconclusive,
}

/// States the search explores at most before it gives up on a history.
pub const SEARCH_STATES_MAX: usize = 200_000;

/// Applies `op` to `state`: the new state and the reply ZooKeeper gives.
pub fn apply(state: &State, op: &Op) -> (State, Outcome) {
    let matches = |version: i32| version == -1 || state.as_ref().is_some_and(|(_, current)| *current == version);
    match op {
        Op::Create { data } => match state {
            Some(_) => (state.clone(), Outcome::NodeExists),
            None => (Some((data.clone(), 0)), Outcome::Ok),
        },
        Op::SetData { data, version } => match state {
            None => (None, Outcome::NoNode),
            Some((_, current)) if matches(*version) => {
                (Some((data.clone(), current + 1)), Outcome::Version(current + 1))
            }
            Some(_) => (state.clone(), Outcome::BadVersion),
        },
        Op::Delete { version } => match state {
            None => (None, Outcome::NoNode),
            Some(_) if matches(*version) => (None, Outcome::Ok),
            Some(_) => (state.clone(), Outcome::BadVersion),
        },
        Op::Check { version } => match state {
            None => (None, Outcome::NoNode),
            Some(_) if matches(*version) => (state.clone(), Outcome::Ok),
            Some(_) => (state.clone(), Outcome::BadVersion),
        },
        Op::Read => (state.clone(), Outcome::Read(state.clone())),
    }
}

/// Checks `history` against a znode that starts as `initial`.
pub fn check(initial: &State, history: &[Event]) -> Verdict {
    let n = history.len();
    let mut done = vec![false; n];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut explored = 0usize;
    // Depth-first, with an explicit stack: (operation placed, state before it).
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = initial.clone();
    // The next candidate index to try at the current depth.
    let mut next = 0usize;
    let mut deepest: Option<usize> = None;
    loop {
        // Every answered operation placed: a linearization exists.
        let remaining_response = (0..n).filter(|&i| !done[i]).filter_map(|i| history[i].response).min();
        let Some(earliest_response) = remaining_response else {
            return Verdict::Linearizable;
        };
        let mut placed = None;
        let start = next;
        for i in start..n {
            if done[i] || history[i].invoke >= earliest_response {
                continue;
            }
            let (after, outcome) = apply(&state, &history[i].op);
            if history[i].outcome.as_ref().is_some_and(|expected| *expected != outcome) {
                continue;
            }
            done[i] = true;
            let key = (bits(&done), after.clone());
            if !seen.insert(key) {
                done[i] = false;
                continue;
            }
            explored += 1;
            if explored > SEARCH_STATES_MAX {
                return Verdict::Inconclusive;
            }
            placed = Some((i, after));
            break;
        }
        if let Some((i, after)) = placed {
            stack.push((i, std::mem::replace(&mut state, after)));
            next = 0;
            continue;
        }
        // Nothing fits here: undo the last placement and try its successors.
        let blocked = (0..n).filter(|&i| !done[i] && history[i].response == Some(earliest_response)).min();
        if deepest.is_none() {
            deepest = blocked;
        }
        match stack.pop() {
            Some((i, before)) => {
                done[i] = false;
                state = before;
                next = i + 1;
            }
            None => {
                let stuck = deepest.or(blocked).unwrap_or(0);
                return Verdict::Violation { stuck_at: history[stuck].clone() };
            }
        }
    }
}

fn bits(done: &[bool]) -> Vec<u64> {
    let mut words = vec![0u64; done.len().div_ceil(64)];
    for (i, flag) in done.iter().enumerate() {
        if *flag {
            words[i / 64] |= 1 << (i % 64);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(client: u64, op: Op, outcome: Option<Outcome>, invoke: u64, response: Option<u64>) -> Event {
        Event { client, op, outcome, invoke, response }
    }

    fn data(text: &str) -> Vec<u8> {
        text.as_bytes().to_vec()
    }

    fn read(value: Option<(&str, i32)>) -> Outcome {
        Outcome::Read(value.map(|(text, version)| (data(text), version)))
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let history = vec![
            event(1, Op::Create { data: data("a") }, Some(Outcome::Ok), 1, Some(2)),
            event(1, Op::SetData { data: data("b"), version: 0 }, Some(Outcome::Version(1)), 3, Some(4)),
            event(2, Op::Read, Some(read(Some(("b", 1)))), 5, Some(6)),
            event(2, Op::Delete { version: 1 }, Some(Outcome::Ok), 7, Some(8)),
            event(1, Op::Read, Some(read(None)), 9, Some(10)),
        ];
        assert_eq!(check(&None, &history), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        let history = vec![
            event(1, Op::Create { data: data("a") }, Some(Outcome::Ok), 1, Some(2)),
            event(1, Op::SetData { data: data("b"), version: -1 }, Some(Outcome::Version(1)), 3, Some(4)),
            // Invoked after the setData completed, yet shows the old value.
            event(2, Op::Read, Some(read(Some(("a", 0)))), 5, Some(6)),
        ];
        match check(&None, &history) {
            Verdict::Violation { stuck_at } => assert_eq!(stuck_at.op, Op::Read),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        for seen in [("a", 0), ("b", 1)] {
            let history = vec![
                event(1, Op::Create { data: data("a") }, Some(Outcome::Ok), 1, Some(2)),
                event(1, Op::SetData { data: data("b"), version: -1 }, Some(Outcome::Version(1)), 3, Some(6)),
                event(2, Op::Read, Some(read(Some(seen))), 4, Some(5)),
            ];
            assert_eq!(check(&None, &history), Verdict::Linearizable, "{seen:?}");
        }
    }

    #[test]
    fn two_reads_that_go_back_in_time_are_caught() {
        // Both reads overlap the write, but the second starts after the
        // first ended and sees older data: no order fits.
        let history = vec![
            event(1, Op::Create { data: data("a") }, Some(Outcome::Ok), 1, Some(2)),
            event(1, Op::SetData { data: data("b"), version: -1 }, Some(Outcome::Version(1)), 3, Some(20)),
            event(2, Op::Read, Some(read(Some(("b", 1)))), 4, Some(5)),
            event(3, Op::Read, Some(read(Some(("a", 0)))), 6, Some(7)),
        ];
        assert!(matches!(check(&None, &history), Verdict::Violation { .. }));
    }

    #[test]
    fn an_unanswered_write_may_or_may_not_have_happened() {
        let took_effect = vec![
            event(1, Op::Create { data: data("a") }, None, 1, None),
            event(2, Op::Read, Some(read(Some(("a", 0)))), 5, Some(6)),
        ];
        assert_eq!(check(&None, &took_effect), Verdict::Linearizable);
        let did_not = vec![
            event(1, Op::Create { data: data("a") }, None, 1, None),
            event(2, Op::Read, Some(read(None)), 5, Some(6)),
        ];
        assert_eq!(check(&None, &did_not), Verdict::Linearizable);
        // But it cannot take effect before it was sent.
        let too_early = vec![
            event(2, Op::Read, Some(read(Some(("a", 0)))), 1, Some(2)),
            event(1, Op::Create { data: data("a") }, None, 3, None),
        ];
        assert!(matches!(check(&None, &too_early), Verdict::Violation { .. }));
    }

    #[test]
    fn conditional_writes_are_checked_against_versions() {
        // Two setData with version 0 cannot both succeed.
        let history = vec![
            event(1, Op::Create { data: data("a") }, Some(Outcome::Ok), 1, Some(2)),
            event(1, Op::SetData { data: data("b"), version: 0 }, Some(Outcome::Version(1)), 3, Some(6)),
            event(2, Op::SetData { data: data("c"), version: 0 }, Some(Outcome::Version(1)), 4, Some(7)),
        ];
        assert!(matches!(check(&None, &history), Verdict::Violation { .. }));
        // One succeeds and the other gets BadVersion: fine.
        let history = vec![
            event(1, Op::Create { data: data("a") }, Some(Outcome::Ok), 1, Some(2)),
            event(1, Op::SetData { data: data("b"), version: 0 }, Some(Outcome::Version(1)), 3, Some(6)),
            event(2, Op::SetData { data: data("c"), version: 0 }, Some(Outcome::BadVersion), 4, Some(7)),
            event(2, Op::Check { version: 1 }, Some(Outcome::Ok), 8, Some(9)),
        ];
        assert_eq!(check(&None, &history), Verdict::Linearizable);
    }

    #[test]
    fn a_lost_acknowledged_delete_is_caught() {
        let history = vec![
            event(1, Op::Create { data: data("a") }, Some(Outcome::Ok), 1, Some(2)),
            event(1, Op::Delete { version: -1 }, Some(Outcome::Ok), 3, Some(4)),
            event(2, Op::Read, Some(read(Some(("a", 0)))), 5, Some(6)),
        ];
        assert!(matches!(check(&None, &history), Verdict::Violation { .. }));
    }

    #[test]
    fn many_concurrent_operations_finish_quickly() {
        // Eight clients each set their own value concurrently, then one read
        // sees the last writer's value: the search must not blow up.
        let mut history = vec![event(0, Op::Create { data: data("0") }, Some(Outcome::Ok), 1, Some(2))];
        for client in 1..=8u64 {
            history.push(event(client, Op::SetData { data: vec![client as u8], version: -1 }, None, 10 + client, None));
        }
        history.push(event(9, Op::Read, Some(Outcome::Read(Some((vec![5], 8)))), 30, Some(31)));
        assert_eq!(check(&None, &history), Verdict::Linearizable);
    }
}

//! The scheduler's state, with no I/O: the running agents as folded from the event log, and a timer queue of the next
//! tick each of them is due. The loop in `super` feeds it events and the clock and publishes what it hands out.
//!
//! One queue entry per running session (a `BinaryHeap`, earliest first); an entry whose session has ended is stale and
//! is dropped when it reaches the front, so a stop never has to search the heap. Iteration is over `BTreeMap`s and the
//! heap's total order, so the same log and clock give the same ticks in the same order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use strom_domain::{AgentEvent, TickSchedule};

use crate::log::LoggedEvent;

/// The running session of one agent, as the log tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Running {
    session: u64,
    schedule: TickSchedule,
    /// Highest tick of this session with an `AgentRunRecorded` in the log: it was emitted and run, whoever emitted it.
    last_run_tick: u64,
}

impl Running {
    fn due_at(&self, tick_no: u64) -> Option<DateTime<Utc>> {
        self.schedule.due_at(tick_no)
    }

    /// The highest tick due at or before `now` (0 if none is due yet).
    fn latest_due(&self, now: DateTime<Utc>) -> u64 {
        self.schedule.latest_due(now)
    }
}

/// A queue entry: look at `tick_no` of `session` of `agent_id` at `wake_at`. Field order is the heap order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    wake_at: DateTime<Utc>,
    agent_id: Arc<str>,
    session: u64,
    tick_no: u64,
}

/// A tick to publish now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedTick {
    pub agent_id: Arc<str>,
    pub session: u64,
    pub tick_no: u64,
    pub scheduled_at: DateTime<Utc>,
    /// Due ticks before this one that will never be emitted (the scheduler was down or fell behind).
    pub skipped: u64,
}

/// What applying one log event changed, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Started,
    Ended,
    Ran,
    Nothing,
}

/// Running agents and their next due ticks.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    running: BTreeMap<Arc<str>, Running>,
    queue: BinaryHeap<Reverse<Due>>,
}

impl Schedule {
    pub fn running_agents(&self) -> usize {
        self.running.len()
    }

    /// Folds one logged event. Only Agent lifecycle events and runs matter:
    /// - `AgentStarted` adds the session and queues its tick 1 (due at `started_at`);
    /// - `AgentStopped` / `AgentArchived` remove the agent, which makes its queued tick stale;
    /// - `AgentRunRecorded` remembers the session's last run tick (a restarted scheduler does not re-emit it);
    /// - `AgentConfigUpdated` changes nothing here: it only happens while stopped, and a session ticks at the
    ///   `frequency_s` its `AgentStarted` recorded.
    ///
    pub fn apply(&mut self, event: &LoggedEvent) -> Change {
        let Some(agent_event) = event.event.as_agent() else {
            return Change::Nothing;
        };
        match agent_event {
            AgentEvent::AgentStarted {
                session,
                started_at,
                frequency_s,
            } => {
                let agent_id: Arc<str> = Arc::from(event.aggregate_id.as_str());
                self.start(
                    agent_id,
                    *session,
                    TickSchedule::new(*started_at, *frequency_s),
                );
                Change::Started
            }
            AgentEvent::AgentStopped { .. } | AgentEvent::AgentArchived { .. } => {
                self.running.remove(event.aggregate_id.as_str());
                Change::Ended
            }
            AgentEvent::AgentRunRecorded {
                session, tick_no, ..
            } => match self.running.get_mut(event.aggregate_id.as_str()) {
                Some(running) if running.session == *session => {
                    running.last_run_tick = running.last_run_tick.max(*tick_no);
                    Change::Ran
                }
                _ => Change::Nothing,
            },
            _ => Change::Nothing,
        }
    }

    fn start(&mut self, agent_id: Arc<str>, session: u64, schedule: TickSchedule) {
        let running = Running {
            session,
            schedule,
            last_run_tick: 0,
        };
        self.running.insert(Arc::clone(&agent_id), running);
        self.queue.push(Reverse(Due {
            wake_at: schedule.started_at,
            agent_id,
            session,
            tick_no: 1,
        }));
    }

    /// When the front of the queue wants attention (possibly a stale entry: waking early is harmless).
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.queue.peek().map(|Reverse(due)| due.wake_at)
    }

    /// Takes up to `max` ticks due at `now`, earliest first. For each agent only the latest due tick is planned;
    /// older unemitted ones are counted in `skipped`. Stale entries (stopped agents, ended sessions) are dropped.
    /// The caller must hand every planned tick back through [`Self::emitted`] or [`Self::retry`].
    pub fn take_due(&mut self, now: DateTime<Utc>, max: usize) -> Vec<PlannedTick> {
        let mut planned = Vec::new();
        while planned.len() < max {
            let Some(Reverse(front)) = self.queue.peek() else {
                break;
            };
            if front.wake_at > now {
                break;
            }
            let Some(Reverse(due)) = self.queue.pop() else {
                break;
            };
            if let Some(tick) = self.plan(due, now) {
                planned.push(tick);
            }
        }
        planned
    }

    fn plan(&mut self, due: Due, now: DateTime<Utc>) -> Option<PlannedTick> {
        let running = *self
            .running
            .get(&due.agent_id)
            .filter(|r| r.session == due.session)?;
        let first_unemitted = due.tick_no.max(running.last_run_tick + 1);
        let latest = running.latest_due(now);
        if latest < first_unemitted {
            // Already run (a restart within the tick's period): wait for the next one.
            self.requeue(due.agent_id, &running, first_unemitted);
            return None;
        }
        let Some(scheduled_at) = running.due_at(latest) else {
            tracing::error!(agent_id = %due.agent_id, latest, "tick time out of range; the agent gets no more ticks");
            return None;
        };
        Some(PlannedTick {
            agent_id: due.agent_id,
            session: due.session,
            tick_no: latest,
            scheduled_at,
            skipped: latest - first_unemitted,
        })
    }

    /// `tick` was published (or was already on the bus): queue the next one, if the session is still running.
    pub fn emitted(&mut self, tick: PlannedTick) {
        if let Some(running) = self.current(&tick) {
            self.requeue(tick.agent_id, &running, tick.tick_no + 1);
        }
    }

    /// `tick` could not be published: look at it again at `wake_at` (by then a later tick may be due instead).
    pub fn retry(&mut self, tick: PlannedTick, wake_at: DateTime<Utc>) {
        if self.current(&tick).is_some() {
            self.queue.push(Reverse(Due {
                wake_at,
                agent_id: tick.agent_id,
                session: tick.session,
                tick_no: tick.tick_no,
            }));
        }
    }

    fn current(&self, tick: &PlannedTick) -> Option<Running> {
        self.running
            .get(&tick.agent_id)
            .filter(|r| r.session == tick.session)
            .copied()
    }

    fn requeue(&mut self, agent_id: Arc<str>, running: &Running, tick_no: u64) {
        let Some(wake_at) = running.due_at(tick_no) else {
            tracing::error!(%agent_id, tick_no, "tick time out of range; the agent gets no more ticks");
            return;
        };
        self.queue.push(Reverse(Due {
            wake_at,
            agent_id,
            session: running.session,
            tick_no,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogPosition;
    use chrono::TimeDelta;
    use serde_json::json;

    const A: &str = "agent-a";
    const B: &str = "agent-b";

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn logged(agent_id: &str, event: AgentEvent) -> LoggedEvent {
        LoggedEvent {
            position: LogPosition::START,
            event_id: uuid::Uuid::nil(),
            aggregate_id: agent_id.into(),
            sequence: 1,
            event: event.into(),
            metadata: strom_domain::EventMetadata::default(),
            recorded_at: t(0),
            hash: String::new(),
        }
    }

    fn started(session: u64, at: i64, frequency_s: u32) -> AgentEvent {
        AgentEvent::AgentStarted {
            session,
            started_at: t(at),
            frequency_s,
        }
    }

    fn stopped(session: u64, at: i64) -> AgentEvent {
        AgentEvent::AgentStopped {
            session,
            stopped_at: t(at),
            reason: "test".into(),
        }
    }

    fn ran(session: u64, tick_no: u64) -> AgentEvent {
        serde_json::from_value(json!({"AgentRunRecorded": {
            "session": session, "tick_no": tick_no,
            "scheduled_at": "2027-01-15T08:00:00.000Z", "started_at": "2027-01-15T08:00:00.000Z",
            "completed_at": "2027-01-15T08:00:00.000Z",
            "observation": {"symbol": "BTC-USD", "price": "1", "observed_at": "2027-01-15T08:00:00.000Z"},
            "outcome": "observed", "correlation_id": "c"
        }}))
        .unwrap()
    }

    /// Takes and emits everything due at `now`, returning (agent, tick, scheduled offset, skipped).
    fn tick_at(schedule: &mut Schedule, now: i64) -> Vec<(String, u64, i64, u64)> {
        let ticks = schedule.take_due(t(now), usize::MAX);
        ticks
            .into_iter()
            .map(|tick| {
                let row = (
                    tick.agent_id.to_string(),
                    tick.tick_no,
                    (tick.scheduled_at - t(0)).num_seconds(),
                    tick.skipped,
                );
                schedule.emitted(tick);
                row
            })
            .collect()
    }

    #[test]
    fn the_schedule_formula_is_the_aggregates() {
        let running = Running {
            session: 1,
            schedule: TickSchedule::new(t(100), 60),
            last_run_tick: 0,
        };
        assert_eq!(running.due_at(1), Some(t(100)));
        assert_eq!(running.due_at(3), Some(t(220)));
        assert_eq!(running.latest_due(t(99)), 0);
        assert_eq!(running.latest_due(t(100)), 1);
        assert_eq!(running.latest_due(t(159)), 1);
        assert_eq!(running.latest_due(t(160)), 2);
        assert_eq!(running.latest_due(t(160) - TimeDelta::milliseconds(1)), 1);
    }

    #[test]
    fn a_running_agent_ticks_at_its_frequency_from_its_start() {
        let mut s = Schedule::default();
        s.apply(&logged(A, started(1, 10, 5)));
        assert_eq!(s.next_wake(), Some(t(10)));
        assert!(tick_at(&mut s, 9).is_empty());
        assert_eq!(tick_at(&mut s, 10), vec![(A.into(), 1, 10, 0)]);
        assert!(tick_at(&mut s, 14).is_empty());
        assert_eq!(tick_at(&mut s, 15), vec![(A.into(), 2, 15, 0)]);
        assert_eq!(s.next_wake(), Some(t(20)));
    }

    #[test]
    fn a_stop_drops_the_pending_tick_and_a_new_session_restarts_the_count() {
        let mut s = Schedule::default();
        s.apply(&logged(A, started(1, 0, 1)));
        assert_eq!(tick_at(&mut s, 0).len(), 1);
        s.apply(&logged(A, stopped(1, 0)));
        assert!(tick_at(&mut s, 5).is_empty());
        assert_eq!(s.running_agents(), 0);
        s.apply(&logged(A, started(2, 7, 1)));
        assert_eq!(tick_at(&mut s, 7), vec![(A.into(), 1, 7, 0)]);
    }

    #[test]
    fn after_downtime_only_the_latest_due_tick_is_emitted_and_the_rest_counted() {
        let mut s = Schedule::default();
        s.apply(&logged(A, started(1, 0, 10)));
        s.apply(&logged(A, ran(1, 1)));
        s.apply(&logged(A, ran(1, 2)));
        s.apply(&logged(B, started(1, 0, 10)));
        // Ticks 1..=6 are due at 55 s; A ran 1 and 2, so 3..=5 are skipped; B never ran, so 1..=5 are.
        assert_eq!(
            tick_at(&mut s, 55),
            vec![(A.into(), 6, 50, 3), (B.into(), 6, 50, 5)]
        );
        assert_eq!(
            tick_at(&mut s, 60),
            vec![(A.into(), 7, 60, 0), (B.into(), 7, 60, 0)]
        );
    }

    #[test]
    fn a_tick_already_run_is_not_emitted_again_after_a_restart() {
        let mut s = Schedule::default();
        s.apply(&logged(A, started(1, 0, 10)));
        s.apply(&logged(A, ran(1, 1)));
        assert!(tick_at(&mut s, 5).is_empty());
        assert_eq!(s.next_wake(), Some(t(10)));
        assert_eq!(tick_at(&mut s, 10), vec![(A.into(), 2, 10, 0)]);
    }

    #[test]
    fn a_failed_publish_is_retried_and_becomes_the_latest_due_tick() {
        let mut s = Schedule::default();
        s.apply(&logged(A, started(1, 0, 1)));
        let ticks = s.take_due(t(0), 10);
        assert_eq!(ticks.len(), 1);
        s.retry(ticks.into_iter().next().unwrap(), t(3));
        assert!(tick_at(&mut s, 2).is_empty());
        assert_eq!(tick_at(&mut s, 3), vec![(A.into(), 4, 3, 3)]);
    }

    #[test]
    fn take_due_hands_out_at_most_max_ticks_in_due_order() {
        let mut s = Schedule::default();
        s.apply(&logged(B, started(1, 0, 1)));
        s.apply(&logged(A, started(1, 0, 1)));
        let first = s.take_due(t(0), 1);
        assert_eq!(first[0].agent_id.as_ref(), A);
        let second = s.take_due(t(0), 1);
        assert_eq!(second[0].agent_id.as_ref(), B);
    }

    #[test]
    fn other_aggregates_and_events_change_nothing() {
        let mut s = Schedule::default();
        let mut backtest = logged(A, started(1, 0, 1));
        backtest.event = strom_domain::BacktestEvent::BacktestStarted { started_at: t(0) }.into();
        assert_eq!(s.apply(&backtest), Change::Nothing);
        assert_eq!(s.apply(&logged(A, ran(1, 1))), Change::Nothing);
        assert_eq!(s.running_agents(), 0);
    }
}

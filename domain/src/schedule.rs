//! The tick schedule of a session (specs/04 §5): tick `n` is due at `started_at + (n − 1) × frequency_s`. This is the
//! one home of that formula: the Agent aggregate validates runs with it, the scheduler plans ticks with it, and the
//! read model and the API compute `next_tick_at` and the countdown with it.

use chrono::{DateTime, TimeDelta, Utc};

/// When the ticks of one running session are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickSchedule {
    /// Tick 1 is due here (whole seconds: `StartAgent` truncates).
    pub started_at: DateTime<Utc>,
    /// Seconds between ticks, fixed for the session by `AgentStarted`.
    pub frequency_s: u32,
}

impl TickSchedule {
    pub fn new(started_at: DateTime<Utc>, frequency_s: u32) -> Self {
        Self {
            started_at,
            frequency_s,
        }
    }

    /// When tick `tick_no` (1-based) is due: `started_at + (tick_no − 1) × frequency_s`. `None` for tick 0 or past the
    /// representable range.
    pub fn due_at(&self, tick_no: u64) -> Option<DateTime<Utc>> {
        let offset_s = tick_no
            .checked_sub(1)?
            .checked_mul(u64::from(self.frequency_s))?;
        let offset = TimeDelta::try_seconds(i64::try_from(offset_s).ok()?)?;
        self.started_at.checked_add_signed(offset)
    }

    /// The highest tick due at or before `now` (0 when `now` is before tick 1).
    pub fn latest_due(&self, now: DateTime<Utc>) -> u64 {
        let elapsed_ms = (now - self.started_at).num_milliseconds();
        if elapsed_ms < 0 {
            return 0;
        }
        let period_ms = i64::from(self.frequency_s.max(1)) * 1_000;
        u64::try_from(elapsed_ms / period_ms).map_or(0, |n| n + 1)
    }

    /// The countdown target at `now`: the first tick due strictly after `now` (specs/04 §5). `None` past the
    /// representable range.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.due_at(self.latest_due(now) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        "2026-11-22T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(seconds)
    }

    #[test]
    fn tick_one_is_due_at_the_start_and_each_next_one_a_period_later() {
        let schedule = TickSchedule::new(t(0), 60);
        assert_eq!(schedule.due_at(0), None);
        assert_eq!(schedule.due_at(1), Some(t(0)));
        assert_eq!(schedule.due_at(3), Some(t(120)));
        assert_eq!(schedule.due_at(u64::MAX), None);
    }

    #[test]
    fn the_latest_due_tick_counts_whole_periods_since_the_start() {
        let schedule = TickSchedule::new(t(0), 60);
        assert_eq!(schedule.latest_due(t(-1)), 0);
        assert_eq!(schedule.latest_due(t(0)), 1);
        assert_eq!(schedule.latest_due(t(59)), 1);
        assert_eq!(schedule.latest_due(t(60)), 2);
    }

    #[test]
    fn the_countdown_targets_the_first_tick_strictly_after_now() {
        let schedule = TickSchedule::new(t(0), 10);
        assert_eq!(schedule.next_after(t(-5)), Some(t(0)));
        assert_eq!(schedule.next_after(t(0)), Some(t(10)));
        assert_eq!(schedule.next_after(t(9)), Some(t(10)));
        assert_eq!(schedule.next_after(t(10)), Some(t(20)));
    }
}

//! Maintenance windows: recurring intervals, each opening at a cron tick and open for a duration, in which
//! due rotations may start.

use std::time::Duration;

use jiff::Timestamp;

use super::add;
use super::schedule::Schedule;

/// A maintenance window: open from each tick of `schedule` for `duration`.
#[derive(Debug, Clone)]
pub struct MaintenanceWindow {
    /// The openings.
    pub schedule: Schedule,
    /// How long each opening lasts.
    pub duration: Duration,
}

impl MaintenanceWindow {
    /// Whether a window is open at `t`: the last opening at or before `t` is less than `duration` ago.
    pub fn is_open(&self, t: Timestamp) -> bool {
        self.schedule
            .last_at_or_before(t)
            .is_some_and(|opened| t < add(opened, self.duration))
    }

    /// The first time at or after `t` at which a window is open: `t` itself, or the next opening.
    pub fn open_at_or_after(&self, t: Timestamp) -> Option<Timestamp> {
        if self.is_open(t) {
            Some(t)
        } else {
            self.schedule.next_after(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::schedule::zone;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn open_from_each_opening_for_the_duration() {
        let w = MaintenanceWindow {
            schedule: Schedule::parse("0 1 * * *").unwrap(),
            duration: Duration::from_secs(3 * 3600),
        };
        assert!(!w.is_open(ts("2026-11-28T00:59:59Z")));
        assert!(w.is_open(ts("2026-11-28T01:00:00Z")));
        assert!(w.is_open(ts("2026-11-28T03:59:59Z")));
        assert!(!w.is_open(ts("2026-11-28T04:00:00Z")));
        assert_eq!(
            w.open_at_or_after(ts("2026-11-28T12:00:00Z")),
            Some(ts("2026-11-29T01:00:00Z"))
        );
        assert_eq!(
            w.open_at_or_after(ts("2026-11-28T02:00:00Z")),
            Some(ts("2026-11-28T02:00:00Z"))
        );
    }

    #[test]
    fn every_minute_for_ten_seconds() {
        let w = MaintenanceWindow {
            schedule: Schedule::parse("* * * * *")
                .unwrap()
                .in_zone(zone("Asia/Kolkata").unwrap()),
            duration: Duration::from_secs(10),
        };
        assert!(w.is_open(ts("2026-11-28T20:48:05.5Z")));
        assert!(!w.is_open(ts("2026-11-28T20:48:17.5Z")));
        assert_eq!(
            w.open_at_or_after(ts("2026-11-28T20:48:17.5Z")),
            Some(ts("2026-11-28T20:49:00Z"))
        );
    }

    #[test]
    fn a_window_in_a_zone_follows_its_clock() {
        // 01:00-04:00 in Berlin: 00:00-03:00 UTC in winter.
        let w = MaintenanceWindow {
            schedule: Schedule::parse("0 1 * * *")
                .unwrap()
                .in_zone(zone("Europe/Berlin").unwrap()),
            duration: Duration::from_secs(3 * 3600),
        };
        assert!(w.is_open(ts("2026-11-28T00:30:00Z")));
        assert!(!w.is_open(ts("2026-11-28T03:30:00Z")));
        // 23:30 UTC is 00:30 in Berlin: closed, opens half an hour later.
        assert_eq!(
            w.open_at_or_after(ts("2026-11-28T23:30:00Z")),
            Some(ts("2026-11-29T00:00:00Z"))
        );
    }
}

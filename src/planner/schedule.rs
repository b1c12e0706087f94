//! Five-field cron schedules in UTC.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Why a cron expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a five-field cron expression (minute hour day-of-month month day-of-week): {reason}"
)]
pub struct ScheduleError {
    /// The refused text.
    pub input: String,
    /// What the parser said.
    pub reason: String,
}

/// A parsed five-field cron expression, evaluated in UTC.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
}

impl Schedule {
    /// Parses five whitespace-separated fields; seconds and years are refused.
    pub fn parse(input: &str) -> Result<Schedule, ScheduleError> {
        let err = |reason: String| ScheduleError {
            input: input.to_owned(),
            reason,
        };
        let fields = input.split_whitespace().count();
        if fields != 5 {
            return Err(err(format!("found {fields} fields")));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(input)
            .map_err(|e| err(e.to_string()))?;
        Ok(Schedule { cron })
    }

    /// The first tick strictly after `t`, if any within the parser's range.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let z = t.to_zoned(TimeZone::UTC);
        self.cron
            .find_next_occurrence(&z, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The last tick at or before `t`, if any.
    pub fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let z = t.to_zoned(TimeZone::UTC);
        self.cron
            .find_previous_occurrence(&z, true)
            .ok()
            .map(|z| z.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_finds_ticks_in_utc() {
        let s = Schedule::parse("0 3 * * 0").unwrap();
        // 2026-11-27 is a Friday; the next Sunday 03:00 UTC is 2026-11-29.
        assert_eq!(
            s.next_after(ts("2026-11-27T18:00:00Z")),
            Some(ts("2026-11-29T03:00:00Z"))
        );
        assert_eq!(
            s.last_at_or_before(ts("2026-11-27T18:00:00Z")),
            Some(ts("2026-11-22T03:00:00Z"))
        );
        assert_eq!(
            s.last_at_or_before(ts("2026-11-29T03:00:00Z")),
            Some(ts("2026-11-29T03:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-11-29T03:00:00Z")),
            Some(ts("2026-12-06T03:00:00Z"))
        );
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "",
            "* * * *",
            "0 * * * * *",
            "0 0 * * * 2026",
            "61 * * * *",
            "* 25 * * *",
            "a b c d e",
            "@daily",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Schedule::parse("*/5 * * * *").is_ok());
        assert!(Schedule::parse("0 0 1 JAN MON").is_ok());
    }
}

//! Five-field cron schedules, read in a time zone (UTC unless the resource names one).

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

/// A parsed five-field cron expression, evaluated in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: TimeZone,
}

/// Why a time zone name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a known IANA time zone (for example Europe/Berlin or UTC)")]
pub struct ZoneError {
    /// The refused name.
    pub input: String,
}

/// The time zone named `name` (IANA), from the zone data compiled into the binary or the system's.
pub fn zone(name: &str) -> Result<TimeZone, ZoneError> {
    TimeZone::get(name).map_err(|_| ZoneError {
        input: name.to_owned(),
    })
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
        Ok(Schedule {
            cron,
            zone: TimeZone::UTC,
        })
    }

    /// The same schedule read in `zone`.
    pub fn in_zone(self, zone: TimeZone) -> Schedule {
        Schedule { zone, ..self }
    }

    /// The first tick strictly after `t`, if any within the parser's range.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let z = t.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&z, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The last tick at or before `t`, if any.
    pub fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let z = t.to_zoned(self.zone.clone());
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
    fn ticks_in_a_time_zone_across_daylight_saving_changes() {
        let berlin = zone("Europe/Berlin").unwrap();
        let s = Schedule::parse("30 2 * * *").unwrap().in_zone(berlin);
        // Winter: 02:30 CET is 01:30 UTC.
        assert_eq!(
            s.next_after(ts("2026-03-27T12:00:00Z")),
            Some(ts("2026-03-28T01:30:00Z"))
        );
        // 2026-03-29: clocks jump from 02:00 to 03:00; the 02:30 tick runs right after the gap, 03:00 CEST.
        assert_eq!(
            s.next_after(ts("2026-03-28T12:00:00Z")),
            Some(ts("2026-03-29T01:00:00Z"))
        );
        // Summer: 02:30 CEST is 00:30 UTC.
        assert_eq!(
            s.next_after(ts("2026-03-29T12:00:00Z")),
            Some(ts("2026-03-30T00:30:00Z"))
        );
        // 2026-10-25: 02:00-03:00 happens twice; the tick runs once, at the first 02:30 (CEST, 00:30 UTC).
        let first = s.next_after(ts("2026-10-24T12:00:00Z")).unwrap();
        assert_eq!(first, ts("2026-10-25T00:30:00Z"));
        assert_eq!(s.next_after(first), Some(ts("2026-10-26T01:30:00Z")));
        assert_eq!(s.last_at_or_before(ts("2026-10-25T12:00:00Z")), Some(first));
        // Shanghai has no daylight saving: 03:00 there is 19:00 UTC the day before.
        let sh = Schedule::parse("0 3 * * *")
            .unwrap()
            .in_zone(zone("Asia/Shanghai").unwrap());
        assert_eq!(
            sh.next_after(ts("2026-11-28T12:00:00Z")),
            Some(ts("2026-11-28T19:00:00Z"))
        );
        assert!(zone("Mars/Olympus_Mons").is_err());
        assert!(zone("").is_err());
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

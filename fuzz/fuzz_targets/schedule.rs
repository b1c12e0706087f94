//! The duration and cron parsers, and the next tick computation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_rotator_core::planner::duration::{MAX_DURATION, parse_duration};
use secret_rotator_core::planner::schedule::Schedule;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(d) = parse_duration(&s) {
        assert!(d > std::time::Duration::ZERO && d <= MAX_DURATION);
    }
    if let Ok(sched) = Schedule::parse(&s) {
        let t: jiff::Timestamp = "2026-11-27T18:00:00Z".parse().unwrap();
        if let Some(n) = sched.next_after(t) {
            assert!(n > t);
        }
        if let Some(p) = sched.last_at_or_before(t) {
            assert!(p <= t);
        }
    }
});

//! Pure rotation decisions: durations, schedules and (with the operator) when a rotation is due.
//! Nothing here does I/O.

pub mod duration;
pub mod schedule;

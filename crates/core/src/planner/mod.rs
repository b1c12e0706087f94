//! Pure rotation decisions. Given the spec, the status, the store's current version, the annotations and
//! the clock, [`plan`] says what the reconcile does next and when to look again. Nothing here does I/O.
//!
//! The store is the truth about when the last rotation happened: the due time of a period is counted from
//! the creation time of the store's SYSCURRENT version, and a cron tick is due when it falls after that
//! time. So an operator that restarts between a store rotation and its status write never rotates again
//! for the same due time: the store already shows the new version.

pub mod backoff;
pub mod duration;
pub mod schedule;
pub mod window;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use schedule::Schedule;
use window::MaintenanceWindow;

/// The longest the controller waits before looking again, to notice drift in the store.
pub const MAX_REQUEUE: Duration = Duration::from_secs(600);

/// When rotations fall due.
#[derive(Debug, Clone)]
pub enum Timing {
    /// Every `period` after the last rotation.
    Period(Duration),
    /// At cron ticks; with a window, a tick is honoured only until `tick + window`.
    Schedule {
        /// The cron expression.
        schedule: Box<Schedule>,
        /// How long after a tick a rotation may still start.
        window: Option<Duration>,
    },
}

/// Why a rotation happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The store holds no usable value yet (a database secret with an unknown password).
    Bootstrap,
    /// The resource asked for a rotation when created, and the store's version predates it.
    OnCreate,
    /// The `rotate-now` annotation carries a value not handled before.
    RotateNow(String),
    /// A period elapsed or a cron tick passed.
    Scheduled(Timestamp),
}

impl Reason {
    /// A short name for logs, events and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Bootstrap => "bootstrap",
            Reason::OnCreate => "on-create",
            Reason::RotateNow(_) => "rotate-now",
            Reason::Scheduled(_) => "scheduled",
        }
    }
}

/// A rotate-now the operator recorded before rotating: done once the store's SYSCURRENT moves past
/// `from_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRotateNow {
    /// The annotation value.
    pub value: String,
    /// SYSCURRENT when the rotation was decided.
    pub from_version: String,
}

/// What the planner reads.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// Now.
    pub now: Timestamp,
    /// When rotations fall due.
    pub timing: &'a Timing,
    /// `spec.rotation.maintenanceWindow`: when scheduled rotations may start.
    pub maintenance: Option<&'a MaintenanceWindow>,
    /// `spec.suspend`.
    pub suspend: bool,
    /// `spec.rotation.rotateOnCreate`.
    pub rotate_on_create: bool,
    /// `metadata.creationTimestamp`.
    pub created: Timestamp,
    /// The `rotate-now` annotation.
    pub rotate_now: Option<&'a str>,
    /// `status.lastRotateNow`.
    pub last_rotate_now: Option<&'a str>,
    /// `status.pendingRotateNow`.
    pub pending_rotate_now: Option<&'a PendingRotateNow>,
    /// `status.failedAttempts`.
    pub failed_attempts: u32,
    /// `status.lastFailure.time`.
    pub last_failure: Option<Timestamp>,
    /// The store's SYSCURRENT: its id and creation time; `None` if the store has no usable value.
    pub current: Option<(&'a str, Timestamp)>,
    /// A fraction in [0, 1) that spreads retries (the caller draws it).
    pub jitter: f64,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Rotate, for this reason.
    Rotate(Reason),
    /// A recorded rotate-now already happened in the store: record it as handled, do not rotate.
    CompleteRotateNow(String),
    /// Keep the synced Secret and the status in line with the store; nothing is due.
    Sync,
    /// A rotation is due but the last attempt failed recently: wait for the backoff to end.
    Backoff,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What to do now.
    pub action: Action,
    /// The next scheduled rotation (none while suspended).
    pub next_rotation: Option<Timestamp>,
    /// When to look again, if nothing else happens first.
    pub requeue_after: Duration,
    /// A scheduled rotation is due but waits for the maintenance window that opens then.
    pub waiting_for_window: Option<Timestamp>,
}

pub(crate) fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

fn until(now: Timestamp, t: Timestamp) -> Duration {
    let d = t.duration_since(now);
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

/// The next due time after a rotation at `last`, seen at `now`.
pub fn next_due(timing: &Timing, last: Timestamp, now: Timestamp) -> Option<Timestamp> {
    match timing {
        Timing::Period(p) => Some(add(last, *p)),
        Timing::Schedule { schedule, window } => {
            let tick = schedule.next_after(last)?;
            match window {
                // A tick whose window has closed is skipped: the next chance is the latest tick at or
                // before now, if its window is still open, or else the next tick after now.
                Some(w) if add(tick, *w) < now => match schedule.last_at_or_before(now) {
                    Some(lt) if lt > last && now <= add(lt, *w) => Some(lt),
                    _ => schedule.next_after(now),
                },
                _ => Some(tick),
            }
        }
    }
}

/// Decides the next step.
pub fn plan(i: &Input<'_>) -> Plan {
    let retry_at = i
        .last_failure
        .filter(|_| i.failed_attempts > 0)
        .map(|t| add(t, backoff::delay(i.failed_attempts, i.jitter)));
    let in_backoff = retry_at.is_some_and(|t| t > i.now);

    let Some((current_id, current_created)) = i.current else {
        // Nothing usable in the store yet.
        return if i.suspend {
            Plan {
                action: Action::Sync,
                next_rotation: None,
                requeue_after: MAX_REQUEUE,
                waiting_for_window: None,
            }
        } else if in_backoff {
            Plan {
                action: Action::Backoff,
                next_rotation: None,
                requeue_after: until(i.now, retry_at.unwrap_or(i.now)),
                waiting_for_window: None,
            }
        } else {
            Plan {
                action: Action::Rotate(Reason::Bootstrap),
                next_rotation: None,
                requeue_after: MAX_REQUEUE,
                waiting_for_window: None,
            }
        };
    };

    let due = if i.suspend {
        None
    } else {
        next_due(i.timing, current_created, i.now)
    };

    let requeue_for = |t: Option<Timestamp>| {
        t.map(|t| until(i.now, t))
            .unwrap_or(MAX_REQUEUE)
            .min(MAX_REQUEUE)
    };

    // A rotate-now recorded before a restart: done if the store moved on, else still to do.
    if let Some(p) = i.pending_rotate_now {
        if p.from_version != current_id {
            return Plan {
                action: Action::CompleteRotateNow(p.value.clone()),
                next_rotation: due,
                requeue_after: requeue_for(due),
                waiting_for_window: None,
            };
        }
        if !i.suspend {
            return if in_backoff {
                Plan {
                    action: Action::Backoff,
                    next_rotation: due,
                    requeue_after: until(i.now, retry_at.unwrap_or(i.now)),
                    waiting_for_window: None,
                }
            } else {
                Plan {
                    action: Action::Rotate(Reason::RotateNow(p.value.clone())),
                    next_rotation: due,
                    requeue_after: requeue_for(due),
                    waiting_for_window: None,
                }
            };
        }
    }

    let reason = if i.suspend {
        None
    } else if let Some(v) = i
        .rotate_now
        .filter(|v| Some(*v) != i.last_rotate_now && !v.is_empty())
    {
        Some(Reason::RotateNow(v.to_owned()))
    } else if i.rotate_on_create && current_created < i.created {
        Some(Reason::OnCreate)
    } else {
        due.filter(|d| *d <= i.now).map(Reason::Scheduled)
    };

    // A scheduled rotation starts only inside the maintenance window; until then it waits, and says so.
    if let (Some(Reason::Scheduled(_)), Some(w)) = (&reason, i.maintenance)
        && !w.is_open(i.now)
    {
        let opens = w.open_at_or_after(i.now);
        return Plan {
            action: Action::Sync,
            next_rotation: opens,
            requeue_after: requeue_for(opens),
            waiting_for_window: opens,
        };
    }
    // The next rotation as people see it: the due time, moved to the window's next opening. The look
    // again stays at the due time, so that the status says the rotation waits as soon as it does.
    let shown = match (due, i.maintenance) {
        (Some(d), Some(w)) if d > i.now => w.open_at_or_after(d),
        (d, _) => d,
    };

    match reason {
        Some(_) if in_backoff => Plan {
            action: Action::Backoff,
            next_rotation: shown,
            requeue_after: until(i.now, retry_at.unwrap_or(i.now)),
            waiting_for_window: None,
        },
        Some(r) => Plan {
            action: Action::Rotate(r),
            next_rotation: shown,
            requeue_after: requeue_for(due),
            waiting_for_window: None,
        },
        None => Plan {
            action: Action::Sync,
            next_rotation: shown,
            requeue_after: requeue_for(due),
            waiting_for_window: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn base<'a>(timing: &'a Timing) -> Input<'a> {
        Input {
            now: ts("2026-11-27T12:00:00Z"),
            timing,
            maintenance: None,
            suspend: false,
            rotate_on_create: false,
            created: ts("2026-11-01T00:00:00Z"),
            rotate_now: None,
            last_rotate_now: None,
            pending_rotate_now: None,
            failed_attempts: 0,
            last_failure: None,
            current: Some(("v3", ts("2026-11-27T11:00:00Z"))),
            jitter: 0.5,
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn period_counts_from_the_stores_current_version() {
        let t = Timing::Period(DAY);
        let p = plan(&base(&t));
        assert_eq!(p.action, Action::Sync);
        assert_eq!(p.next_rotation, Some(ts("2026-11-28T11:00:00Z")));
        assert_eq!(p.requeue_after, MAX_REQUEUE, "capped, to notice drift");
        let mut i = base(&t);
        i.now = ts("2026-11-28T11:00:00Z");
        assert_eq!(
            plan(&i).action,
            Action::Rotate(Reason::Scheduled(ts("2026-11-28T11:00:00Z")))
        );
        // Shortly before: the exact requeue time.
        i.now = ts("2026-11-28T10:59:30Z");
        let p = plan(&i);
        assert_eq!(p.action, Action::Sync);
        assert_eq!(p.requeue_after, Duration::from_secs(30));
    }

    #[test]
    fn a_restart_after_the_store_rotated_does_not_rotate_again() {
        // The store rotated at 11:59:59 (status not yet written); the old due time was 11:59.
        let t = Timing::Period(Duration::from_secs(3600));
        let mut i = base(&t);
        i.current = Some(("v4", ts("2026-11-27T11:59:59Z")));
        let p = plan(&i);
        assert_eq!(p.action, Action::Sync);
        assert_eq!(p.next_rotation, Some(ts("2026-11-27T12:59:59Z")));
    }

    #[test]
    fn rotate_now_rotates_once_per_value() {
        let t = Timing::Period(DAY);
        let mut i = base(&t);
        i.rotate_now = Some("2026-11-27T12:00:00Z");
        assert_eq!(
            plan(&i).action,
            Action::Rotate(Reason::RotateNow("2026-11-27T12:00:00Z".into()))
        );
        i.last_rotate_now = Some("2026-11-27T12:00:00Z");
        assert_eq!(plan(&i).action, Action::Sync);
        i.rotate_now = Some("");
        i.last_rotate_now = None;
        assert_eq!(
            plan(&i).action,
            Action::Sync,
            "an empty value asks for nothing"
        );
    }

    #[test]
    fn a_recorded_rotate_now_completes_or_resumes_by_the_store() {
        let t = Timing::Period(DAY);
        let pending = PendingRotateNow {
            value: "x".into(),
            from_version: "v3".into(),
        };
        let mut i = base(&t);
        i.rotate_now = Some("x");
        i.pending_rotate_now = Some(&pending);
        // The store still shows v3: the rotation did not happen; do it.
        assert_eq!(
            plan(&i).action,
            Action::Rotate(Reason::RotateNow("x".into()))
        );
        // The store moved on: it happened; record it without rotating.
        i.current = Some(("v4", ts("2026-11-27T11:59:00Z")));
        assert_eq!(plan(&i).action, Action::CompleteRotateNow("x".into()));
    }

    #[test]
    fn rotate_on_create_only_when_the_store_predates_the_resource() {
        let t = Timing::Period(DAY);
        let mut i = base(&t);
        i.rotate_on_create = true;
        i.created = ts("2026-11-27T11:30:00Z");
        assert_eq!(plan(&i).action, Action::Rotate(Reason::OnCreate));
        i.current = Some(("v4", ts("2026-11-27T11:31:00Z")));
        assert_eq!(plan(&i).action, Action::Sync);
        i.rotate_on_create = false;
        i.current = Some(("v3", ts("2026-11-27T11:00:00Z")));
        assert_eq!(plan(&i).action, Action::Sync);
    }

    #[test]
    fn suspend_stops_every_rotation() {
        let t = Timing::Period(Duration::from_secs(60));
        let mut i = base(&t);
        i.suspend = true;
        i.rotate_now = Some("go");
        i.rotate_on_create = true;
        i.created = ts("2026-11-27T11:59:00Z");
        let p = plan(&i);
        assert_eq!(p.action, Action::Sync);
        assert_eq!(p.next_rotation, None);
        i.current = None;
        assert_eq!(plan(&i).action, Action::Sync);
    }

    #[test]
    fn bootstrap_when_the_store_has_no_usable_value() {
        let t = Timing::Period(DAY);
        let mut i = base(&t);
        i.current = None;
        assert_eq!(plan(&i).action, Action::Rotate(Reason::Bootstrap));
    }

    #[test]
    fn failures_back_off_then_retry() {
        let t = Timing::Period(Duration::from_secs(60));
        let mut i = base(&t);
        i.failed_attempts = 3;
        i.last_failure = Some(ts("2026-11-27T11:59:50Z"));
        let p = plan(&i);
        assert_eq!(p.action, Action::Backoff);
        let wait = backoff::delay(3, 0.5);
        assert_eq!(p.requeue_after, wait - Duration::from_secs(10));
        i.now = add(ts("2026-11-27T11:59:50Z"), wait);
        assert!(matches!(
            plan(&i).action,
            Action::Rotate(Reason::Scheduled(_))
        ));
    }

    #[test]
    fn cron_ticks_after_the_last_rotation() {
        let t = Timing::Schedule {
            schedule: Box::new(Schedule::parse("0 3 * * *").unwrap()),
            window: None,
        };
        let mut i = base(&t);
        // Last rotation 2026-11-27 11:00; next tick 2026-11-28 03:00.
        assert_eq!(plan(&i).next_rotation, Some(ts("2026-11-28T03:00:00Z")));
        // The operator was down over two ticks: one rotation, then the next tick.
        i.current = Some(("v3", ts("2026-11-20T11:00:00Z")));
        assert_eq!(
            plan(&i).action,
            Action::Rotate(Reason::Scheduled(ts("2026-11-21T03:00:00Z")))
        );
    }

    #[test]
    fn cron_windows_skip_missed_ticks() {
        let t = Timing::Schedule {
            schedule: Box::new(Schedule::parse("0 3 * * *").unwrap()),
            window: Some(Duration::from_secs(2 * 3600)),
        };
        let mut i = base(&t);
        i.current = Some(("v3", ts("2026-11-20T11:00:00Z")));
        // 12:00 is past today's 03:00 + 2h: wait for tomorrow's tick.
        let p = plan(&i);
        assert_eq!(p.action, Action::Sync);
        assert_eq!(p.next_rotation, Some(ts("2026-11-28T03:00:00Z")));
        // Within today's window: rotate now, for today's tick.
        i.now = ts("2026-11-27T04:30:00Z");
        assert_eq!(
            plan(&i).action,
            Action::Rotate(Reason::Scheduled(ts("2026-11-27T03:00:00Z")))
        );
    }

    #[test]
    fn a_due_rotation_waits_for_the_maintenance_window() {
        let t = Timing::Period(DAY);
        let w = MaintenanceWindow {
            schedule: Schedule::parse("0 1 * * *").unwrap(),
            duration: Duration::from_secs(3 * 3600),
        };
        let mut i = base(&t);
        i.maintenance = Some(&w);
        // Not due yet (due 2026-11-28T11:00): shown as the next opening after the due time.
        let p = plan(&i);
        assert_eq!(p.action, Action::Sync);
        assert_eq!(p.next_rotation, Some(ts("2026-11-29T01:00:00Z")));
        assert_eq!(p.waiting_for_window, None);
        // Due at noon, window closed: waits, says so, looks again when it opens.
        i.now = ts("2026-11-28T12:00:00Z");
        let p = plan(&i);
        assert_eq!(p.action, Action::Sync);
        assert_eq!(p.waiting_for_window, Some(ts("2026-11-29T01:00:00Z")));
        assert_eq!(p.next_rotation, Some(ts("2026-11-29T01:00:00Z")));
        assert_eq!(p.requeue_after, MAX_REQUEUE);
        i.now = ts("2026-11-29T00:59:00Z");
        assert_eq!(plan(&i).requeue_after, Duration::from_secs(60));
        // Inside the window: rotates for the original due time.
        i.now = ts("2026-11-29T01:00:00Z");
        assert_eq!(
            plan(&i).action,
            Action::Rotate(Reason::Scheduled(ts("2026-11-28T11:00:00Z")))
        );
        // rotate-now does not wait.
        i.now = ts("2026-11-28T12:00:00Z");
        i.rotate_now = Some("x");
        assert_eq!(
            plan(&i).action,
            Action::Rotate(Reason::RotateNow("x".into()))
        );
        // Nor does rotateOnCreate.
        i.rotate_now = None;
        i.rotate_on_create = true;
        i.created = ts("2026-11-28T11:30:00Z");
        assert_eq!(plan(&i).action, Action::Rotate(Reason::OnCreate));
        // Suspended: nothing waits.
        i.rotate_on_create = false;
        i.suspend = true;
        assert_eq!(plan(&i).waiting_for_window, None);
    }

    #[test]
    fn a_short_period_waits_for_a_short_window() {
        let t = Timing::Period(Duration::from_secs(5));
        let w = MaintenanceWindow {
            schedule: Schedule::parse("* * * * *")
                .unwrap()
                .in_zone(schedule::zone("Asia/Kolkata").unwrap()),
            duration: Duration::from_secs(10),
        };
        let mut i = base(&t);
        i.maintenance = Some(&w);
        i.current = Some(("v3", ts("2026-11-28T20:48:07Z")));
        i.now = ts("2026-11-28T20:48:17.3Z");
        let p = plan(&i);
        assert_eq!(p.action, Action::Sync);
        assert_eq!(p.waiting_for_window, Some(ts("2026-11-28T20:49:00Z")));
        // Before it is due: shown at the opening, looked at again when due (to say it waits).
        i.now = ts("2026-11-28T20:48:09Z");
        let p = plan(&i);
        assert_eq!(p.next_rotation, Some(ts("2026-11-28T20:49:00Z")));
        assert_eq!(p.waiting_for_window, None);
        assert_eq!(p.requeue_after, Duration::from_secs(3));
    }
}

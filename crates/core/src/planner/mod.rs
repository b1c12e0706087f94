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
pub enum RotationReason {
    /// The store holds no usable value yet (a database secret with an unknown password).
    Bootstrap,
    /// The resource asked for a rotation when created, and the store's version predates it.
    OnCreate,
    /// The `rotate-now` annotation carries a value not handled before.
    RotateNow(String),
    /// A period elapsed or a cron tick passed.
    Scheduled(Timestamp),
}

impl RotationReason {
    /// A short name for logs, events and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            RotationReason::Bootstrap => "bootstrap",
            RotationReason::OnCreate => "on-create",
            RotationReason::RotateNow(_) => "rotate-now",
            RotationReason::Scheduled(_) => "scheduled",
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
    /// How the store secret would be created, when the store holds no secret of that name.
    pub missing: Option<Creation>,
    /// The `rollback-to` annotation.
    pub rollback_to: Option<&'a str>,
    /// `status.lastRollback.request`: the last rollback request handled, whatever its result.
    pub last_rollback_request: Option<&'a str>,
    /// The version the last successful rollback made SYSCURRENT, and when.
    pub last_rollback_done: Option<(&'a str, Timestamp)>,
    /// The shortest time between two changes of SYSCURRENT a person's request (rotate-now, rollback-to)
    /// may make (the operator's `--min-rotation-period`).
    pub min_gap: Duration,
}

/// The annotation a rollback request comes in (named in refusals).
pub const ROLLBACK_ANNOTATION: &str = "secretrotator.dev/rollback-to";

/// What a store secret holds when the operator creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    /// A generated value (COMMON).
    Generated,
    /// A database account whose password is not known yet: an administrator sets the first one.
    Unknown,
    /// An account's current password, adopted from the Secret its owner handed over.
    Adopted,
}

/// A `rollback-to` request: the annotation's value, and the version it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRequest {
    /// The annotation's value (`v3`, or `v3/<anything new>` to ask again).
    pub request: String,
    /// The version to make SYSCURRENT again.
    pub version: String,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the missing store secret; then rotate for this reason, when one is due at once.
    Create {
        /// The rotation that follows the creation in the same reconcile.
        then: Option<RotationReason>,
    },
    /// Move SYSCURRENT back to an earlier version.
    Rollback(RollbackRequest),
    /// A request (rotate-now, rollback-to) waits: SYSCURRENT changed less than the minimum gap ago.
    Wait {
        /// The request's kind: `rotate-now` or `rollback-to`.
        request: &'static str,
        /// When it may be carried out.
        until: Timestamp,
    },
    /// Record a rollback request as refused, changing nothing else.
    RefuseRollback {
        /// The request.
        request: RollbackRequest,
        /// Why it is refused.
        message: String,
    },
    /// Rotate, for this reason.
    Rotate(RotationReason),
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

/// Decides the next step. The order is the order of precedence: a missing store secret is created first,
/// a person's rollback request comes before anything scheduled, then a recorded rotate-now, then the
/// annotation, rotate-on-create and the schedule.
pub fn plan(i: &Input<'_>) -> Plan {
    rate_limited(i, decide(i))
}

/// A person's request waits while SYSCURRENT is younger than the minimum gap, as a scheduled rotation
/// would: each rotation is an ALTER and a rolling restart, and an annotation costs nothing to change.
fn rate_limited(i: &Input<'_>, p: Plan) -> Plan {
    let request = match &p.action {
        Action::Rotate(RotationReason::RotateNow(_)) => "rotate-now",
        Action::Rollback(_) => "rollback-to",
        _ => return p,
    };
    let Some((id, created)) = i.current else {
        return p;
    };
    let at = add(counted_from(i, id, created), i.min_gap);
    if at <= i.now {
        return p;
    }
    Plan {
        action: Action::Wait { request, until: at },
        requeue_after: until(i.now, at)
            .min(p.requeue_after)
            .max(Duration::from_secs(1)),
        ..p
    }
}

fn decide(i: &Input<'_>) -> Plan {
    let retry = Retry::of(i);
    if let Some(creation) = i.missing {
        return create(i, creation, &retry);
    }
    let Some((current_id, current_created)) = i.current else {
        return unknown_value(i, &retry);
    };
    if let Some(action) = rollback(i, current_id) {
        return Plan {
            action,
            ..schedule(i)
        };
    }
    let due = if i.suspend {
        None
    } else {
        next_due(
            i.timing,
            counted_from(i, current_id, current_created),
            i.now,
        )
    };
    if let Some(p) = i.pending_rotate_now
        && let Some(plan) = pending_rotate_now(i, p, current_id, due, &retry)
    {
        return plan;
    }
    let reason = if i.suspend {
        None
    } else if let Some(v) = i
        .rotate_now
        .filter(|v| Some(*v) != i.last_rotate_now && !v.is_empty())
    {
        Some(RotationReason::RotateNow(v.to_owned()))
    } else if i.rotate_on_create && current_created < i.created {
        Some(RotationReason::OnCreate)
    } else {
        due.filter(|d| *d <= i.now).map(RotationReason::Scheduled)
    };
    scheduled(i, reason, due, &retry)
}

/// The schedule alone (the next rotation, when to look again, a wait for the window) of a resource in
/// the state `i` describes: what a reconcile reports after it acted, from the state its action left.
pub fn schedule(i: &Input<'_>) -> Plan {
    let quiet = Input {
        rotate_now: None,
        rollback_to: None,
        pending_rotate_now: None,
        missing: None,
        ..i.clone()
    };
    Plan {
        action: Action::Sync,
        ..plan(&quiet)
    }
}

/// When the last failed attempt may be tried again.
struct Retry {
    at: Option<Timestamp>,
    waiting: bool,
}

impl Retry {
    fn of(i: &Input<'_>) -> Retry {
        let at = i
            .last_failure
            .filter(|_| i.failed_attempts > 0)
            .map(|t| add(t, backoff::delay(i.failed_attempts, i.jitter)));
        Retry {
            at,
            waiting: at.is_some_and(|t| t > i.now),
        }
    }

    fn backoff(&self, i: &Input<'_>, next_rotation: Option<Timestamp>) -> Plan {
        Plan {
            action: Action::Backoff,
            next_rotation,
            requeue_after: until(i.now, self.at.unwrap_or(i.now)),
            waiting_for_window: None,
        }
    }
}

fn requeue_for(now: Timestamp, t: Option<Timestamp>) -> Duration {
    t.map(|t| until(now, t))
        .unwrap_or(MAX_REQUEUE)
        .min(MAX_REQUEUE)
}

/// A missing store secret is created; what follows in the same reconcile depends on what it holds then.
fn create(i: &Input<'_>, creation: Creation, retry: &Retry) -> Plan {
    let then = match creation {
        Creation::Generated => None,
        // The password is not known: the first rotation sets it through the administrator.
        Creation::Unknown => (!retry.waiting).then_some(RotationReason::Bootstrap),
        // An adopted value predates the resource.
        Creation::Adopted => {
            (i.rotate_on_create && !retry.waiting).then_some(RotationReason::OnCreate)
        }
    };
    Plan {
        action: Action::Create { then },
        next_rotation: None,
        requeue_after: MAX_REQUEUE,
        waiting_for_window: None,
    }
}

/// The store secret exists but its value is not known yet (a database password for an administrator to
/// set): the bootstrap rotation sets it.
fn unknown_value(i: &Input<'_>, retry: &Retry) -> Plan {
    if i.suspend {
        Plan {
            action: Action::Sync,
            next_rotation: None,
            requeue_after: MAX_REQUEUE,
            waiting_for_window: None,
        }
    } else if retry.waiting {
        retry.backoff(i, None)
    } else {
        Plan {
            action: Action::Rotate(RotationReason::Bootstrap),
            next_rotation: None,
            requeue_after: MAX_REQUEUE,
            waiting_for_window: None,
        }
    }
}

/// A rollback request not handled yet: carried out, or refused with the reason.
fn rollback(i: &Input<'_>, current_id: &str) -> Option<Action> {
    let value = i.rollback_to?.trim();
    if value.is_empty() || i.last_rollback_request == Some(value) {
        return None;
    }
    let request = RollbackRequest {
        request: value.to_owned(),
        version: value.split('/').next().unwrap_or_default().to_owned(),
    };
    let refused = if !is_version_id(&request.version) {
        Some(format!(
            "{ROLLBACK_ANNOTATION}: {:?} is not a version id such as v3 (optionally v3/<anything new>)",
            request.version.chars().take(64).collect::<String>()
        ))
    } else if i.suspend {
        Some("the resource is suspended: resume it before rolling back".to_owned())
    } else if request.version == current_id {
        Some(format!(
            "{} is already SYSCURRENT; nothing to do",
            request.version
        ))
    } else {
        None
    };
    Some(match refused {
        Some(message) => Action::RefuseRollback { request, message },
        None => Action::Rollback(request),
    })
}

/// Whether `v` reads as a version id (`v` and digits).
pub fn is_version_id(v: &str) -> bool {
    v.len() > 1 && v.len() <= 21 && v.starts_with('v') && v[1..].bytes().all(|b| b.is_ascii_digit())
}

/// The time the due time counts from for SYSCURRENT `id` created at `created`: the rollback's time when a
/// rollback made it SYSCURRENT (an old version would otherwise look long overdue and rotate at once).
pub fn counted_from(i: &Input<'_>, id: &str, created: Timestamp) -> Timestamp {
    match i.last_rollback_done {
        Some((version, at)) if version == id => created.max(at),
        _ => created,
    }
}

/// A rotate-now recorded before a restart: done if the store moved on, else still to do.
fn pending_rotate_now(
    i: &Input<'_>,
    p: &PendingRotateNow,
    current_id: &str,
    due: Option<Timestamp>,
    retry: &Retry,
) -> Option<Plan> {
    if p.from_version != current_id {
        return Some(Plan {
            action: Action::CompleteRotateNow(p.value.clone()),
            next_rotation: due,
            requeue_after: requeue_for(i.now, due),
            waiting_for_window: None,
        });
    }
    if i.suspend {
        return None;
    }
    Some(if retry.waiting {
        retry.backoff(i, due)
    } else {
        Plan {
            action: Action::Rotate(RotationReason::RotateNow(p.value.clone())),
            next_rotation: due,
            requeue_after: requeue_for(i.now, due),
            waiting_for_window: None,
        }
    })
}

/// The plan for a rotation due for `reason` (or none), with the maintenance window and the backoff.
fn scheduled(
    i: &Input<'_>,
    reason: Option<RotationReason>,
    due: Option<Timestamp>,
    retry: &Retry,
) -> Plan {
    // A scheduled rotation starts only inside the maintenance window; until then it waits, and says so.
    if let (Some(RotationReason::Scheduled(_)), Some(w)) = (&reason, i.maintenance)
        && !w.is_open(i.now)
    {
        let opens = w.open_at_or_after(i.now);
        return Plan {
            action: Action::Sync,
            next_rotation: opens,
            requeue_after: requeue_for(i.now, opens),
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
        Some(_) if retry.waiting => retry.backoff(i, shown),
        Some(r) => Plan {
            action: Action::Rotate(r),
            next_rotation: shown,
            requeue_after: requeue_for(i.now, due),
            waiting_for_window: None,
        },
        None => Plan {
            action: Action::Sync,
            next_rotation: shown,
            requeue_after: requeue_for(i.now, due),
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
            missing: None,
            rollback_to: None,
            last_rollback_request: None,
            last_rollback_done: None,
            min_gap: Duration::ZERO,
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
            Action::Rotate(RotationReason::Scheduled(ts("2026-11-28T11:00:00Z")))
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
            Action::Rotate(RotationReason::RotateNow("2026-11-27T12:00:00Z".into()))
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
            Action::Rotate(RotationReason::RotateNow("x".into()))
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
        assert_eq!(plan(&i).action, Action::Rotate(RotationReason::OnCreate));
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
        assert_eq!(plan(&i).action, Action::Rotate(RotationReason::Bootstrap));
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
            Action::Rotate(RotationReason::Scheduled(_))
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
            Action::Rotate(RotationReason::Scheduled(ts("2026-11-21T03:00:00Z")))
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
            Action::Rotate(RotationReason::Scheduled(ts("2026-11-27T03:00:00Z")))
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
            Action::Rotate(RotationReason::Scheduled(ts("2026-11-28T11:00:00Z")))
        );
        // rotate-now does not wait.
        i.now = ts("2026-11-28T12:00:00Z");
        i.rotate_now = Some("x");
        assert_eq!(
            plan(&i).action,
            Action::Rotate(RotationReason::RotateNow("x".into()))
        );
        // Nor does rotateOnCreate.
        i.rotate_now = None;
        i.rotate_on_create = true;
        i.created = ts("2026-11-28T11:30:00Z");
        assert_eq!(plan(&i).action, Action::Rotate(RotationReason::OnCreate));
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

    #[test]
    fn a_missing_store_secret_is_created_and_what_follows_depends_on_its_value() {
        let t = Timing::Period(DAY);
        let mut i = base(&t);
        i.current = None;
        i.missing = Some(Creation::Generated);
        assert_eq!(plan(&i).action, Action::Create { then: None });
        i.missing = Some(Creation::Unknown);
        assert_eq!(
            plan(&i).action,
            Action::Create {
                then: Some(RotationReason::Bootstrap)
            }
        );
        i.missing = Some(Creation::Adopted);
        assert_eq!(plan(&i).action, Action::Create { then: None });
        i.rotate_on_create = true;
        assert_eq!(
            plan(&i).action,
            Action::Create {
                then: Some(RotationReason::OnCreate)
            }
        );
        // A failed attempt still waiting for its backoff: created, but not rotated yet.
        i.failed_attempts = 1;
        i.last_failure = Some(i.now);
        assert_eq!(plan(&i).action, Action::Create { then: None });
    }

    #[test]
    fn a_rollback_request_comes_first_and_is_handled_once() {
        let t = Timing::Period(DAY);
        let mut i = base(&t);
        i.rotate_now = Some("now-1");
        i.rollback_to = Some(" v2 ");
        let request = RollbackRequest {
            request: "v2".into(),
            version: "v2".into(),
        };
        assert_eq!(plan(&i).action, Action::Rollback(request.clone()));
        assert_eq!(
            plan(&i).next_rotation,
            Some(ts("2026-11-28T11:00:00Z")),
            "a rollback keeps the schedule it has until it moved SYSCURRENT"
        );
        i.last_rollback_request = Some("v2");
        assert_eq!(
            plan(&i).action,
            Action::Rotate(RotationReason::RotateNow("now-1".into())),
            "a handled request is not repeated"
        );
        i.rollback_to = Some("v2/again");
        assert!(
            matches!(plan(&i).action, Action::Rollback(r) if r.version == "v2" && r.request == "v2/again")
        );
    }

    #[test]
    fn rollbacks_that_cannot_be_done_are_refused_with_the_reason() {
        let t = Timing::Period(DAY);
        let mut i = base(&t);
        let refusal = |i: &Input<'_>| match plan(i).action {
            Action::RefuseRollback { message, .. } => message,
            other => panic!("expected a refusal, got {other:?}"),
        };
        i.rollback_to = Some("latest");
        assert!(refusal(&i).contains("is not a version id"));
        i.rollback_to = Some("v3");
        assert!(refusal(&i).contains("already SYSCURRENT"));
        i.rollback_to = Some("v1");
        i.suspend = true;
        assert!(refusal(&i).contains("suspended"));
        for ok in ["v1", "v42"] {
            assert!(is_version_id(ok), "{ok}");
        }
        for bad in ["", "v", "1", "V1", "v1a", "latest", "v-1"] {
            assert!(!is_version_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_rolled_back_version_counts_from_the_rollback() {
        let t = Timing::Period(DAY);
        let mut i = base(&t);
        let old = ts("2026-01-01T00:00:00Z");
        let at = ts("2026-11-27T06:00:00Z");
        i.current = Some(("v1", old));
        assert_eq!(
            plan(&i).action,
            Action::Rotate(RotationReason::Scheduled(ts("2026-01-02T00:00:00Z"))),
            "without the rollback, the old version is long overdue"
        );
        i.last_rollback_done = Some(("v1", at));
        assert_eq!(counted_from(&i, "v1", old), at);
        assert_eq!(counted_from(&i, "v2", old), old);
        let p = plan(&i);
        assert_eq!(p.action, Action::Sync);
        assert_eq!(p.next_rotation, Some(ts("2026-11-28T06:00:00Z")));
    }

    #[test]
    fn the_schedule_after_acting_ignores_requests_already_handled() {
        let t = Timing::Period(DAY);
        let mut i = base(&t);
        i.rotate_now = Some("now-1");
        i.rollback_to = Some("v1");
        let s = schedule(&i);
        assert_eq!(s.action, Action::Sync);
        assert_eq!(s.next_rotation, Some(ts("2026-11-28T11:00:00Z")));
    }

    #[test]
    fn a_persons_request_waits_for_the_minimum_gap_since_the_last_change() {
        let t = Timing::Period(DAY);
        let mut i = base(&t);
        i.min_gap = Duration::from_secs(3600);
        i.current = Some(("v3", ts("2026-11-27T11:30:00Z")));
        i.rotate_now = Some("now-1");
        let p = plan(&i);
        assert_eq!(
            p.action,
            Action::Wait {
                request: "rotate-now",
                until: ts("2026-11-27T12:30:00Z")
            }
        );
        assert_eq!(p.requeue_after, MAX_REQUEUE, "capped like any look again");
        i.rotate_now = None;
        i.rollback_to = Some("v2");
        assert!(matches!(
            plan(&i).action,
            Action::Wait {
                request: "rollback-to",
                ..
            }
        ));
        // A refusal does not wait; nor does a request once the gap has passed.
        i.rollback_to = Some("latest");
        assert!(matches!(plan(&i).action, Action::RefuseRollback { .. }));
        i.rollback_to = Some("v2");
        i.current = Some(("v3", ts("2026-11-27T10:00:00Z")));
        assert!(matches!(plan(&i).action, Action::Rollback(_)));
    }
}

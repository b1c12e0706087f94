//! Parse, don't validate: [`validate`] turns a SecretRotation into a [`ValidatedSpec`], checking the rules
//! the OpenAPI schema cannot hold (those that cross fields, or that need a parser: durations, cron,
//! templates, password policies). The operator reports a failure as `Ready=False`, reason `InvalidSpec`,
//! with the message of [`InvalidSpec`].

mod kube_names;
pub mod restarts;
pub mod server;
pub mod spec;

use crate::api::{
    ANNOTATION_ROTATE_NOW, DatabaseMode, DatabaseSpec, RotationSpec, SecretRotation, SecretType,
    TargetSpec,
};
use kube_names::{MAX_ANNOTATION_BYTES, label_value, printable, qualified_name, secret_key};
use secret_rotator_core::names::SecretName;
use secret_rotator_core::password::{self, PasswordPolicy};
use secret_rotator_core::planner::Timing;
use secret_rotator_core::planner::duration::parse_duration;
use secret_rotator_core::planner::schedule::{Schedule, zone};
use secret_rotator_core::planner::window::MaintenanceWindow;
use secret_rotator_core::template::Template;
pub use spec::{Accounts, Database, DatabaseRequest, SyncedSecretSpec, ValidatedSpec};

/// Prefix of annotation and label keys that belong to the operator.
const RESERVED_PREFIX: &str = "secretrotator.dev/";
/// Longest rotate-now annotation value: it is copied into the status.
pub const MAX_ROTATE_NOW: usize = 253;

/// One broken rule, with the path of the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's path, for example `spec.rotation.period`.
    pub field: String,
    /// What is wrong and how to mend it.
    pub message: String,
}

/// Every broken rule of one SecretRotation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SecretRotation {name}: {}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct InvalidSpec {
    /// `namespace/name` of the resource.
    pub name: String,
    /// The broken rules, in field order.
    pub errors: Vec<FieldError>,
}

impl InvalidSpec {
    /// The broken rules, one after another (the condition's message).
    pub fn rules(&self) -> String {
        self.errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Broken rules found so far.
struct Collector(Vec<FieldError>);

impl Collector {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }
}

/// Checks every cross-field rule of a SecretRotation and returns the spec in the form the reconcile uses.
pub fn validate(sr: &SecretRotation) -> Result<ValidatedSpec<DatabaseRequest>, InvalidSpec> {
    let spec = &sr.spec;
    let mut c = Collector(Vec::new());
    let store_secret = store_secret(&sr.store_secret_name(), &mut c);
    let timing = timing(&spec.rotation, &mut c);
    let database = database(spec.secret_type, spec.database.as_ref(), &mut c);
    let password = PasswordPolicy::from(&spec.password);
    if let Err(e) = password::classes(&password) {
        c.push("spec.password", e.to_string());
    }
    let templates = templates(spec.secret_type, &spec.target, &mut c);
    target_metadata(&spec.target, &mut c);
    let rotate_now = rotate_now(sr, &mut c);
    let restart_targets = restarts::restart_targets(&spec.restart_targets, &mut c);

    match (store_secret, timing, database) {
        (Some(store_secret), Some((timing, maintenance)), Some(database)) if c.0.is_empty() => {
            Ok(ValidatedSpec {
                store_secret,
                project: spec.project_id.clone().filter(|p| !p.is_empty()),
                secret_type: spec.secret_type,
                timing,
                maintenance,
                rotate_on_create: spec.rotation.rotate_on_create,
                suspend: spec.suspend,
                rotate_now,
                database,
                password,
                synced: SyncedSecretSpec {
                    name: sr.synced_secret_name(),
                    templates,
                    labels: spec.target.labels.clone(),
                    annotations: spec.target.annotations.clone(),
                    deletion_policy: spec.target.deletion_policy,
                },
                restart_targets,
            })
        }
        _ => Err(InvalidSpec {
            name: format!(
                "{}/{}",
                sr.metadata.namespace.as_deref().unwrap_or_default(),
                sr.metadata.name.as_deref().unwrap_or_default()
            ),
            errors: c.0,
        }),
    }
}

fn store_secret(name: &str, c: &mut Collector) -> Option<SecretName> {
    match SecretName::parse(name) {
        Ok(n) => Some(n),
        Err(_) => {
            c.push(
                "spec.secretName",
                format!(
                    "the store secret name {:?} must be 1 to {} letters, digits, '.', '_' or '-'; set spec.secretName when \"<namespace>.<name>\" is too long",
                    name.chars().take(80).collect::<String>(),
                    SecretName::MAX_LEN
                ),
            );
            None
        }
    }
}

/// The timing and the maintenance window, read in the rotation's time zone.
fn timing(r: &RotationSpec, c: &mut Collector) -> Option<(Timing, Option<MaintenanceWindow>)> {
    let before = c.0.len();
    match (r.period.as_deref(), r.schedule.as_deref()) {
        (Some(_), Some(_)) => c.push(
            "spec.rotation",
            "period and schedule are both set; set exactly one",
        ),
        (None, None) => c.push(
            "spec.rotation",
            "neither period nor schedule is set; set exactly one",
        ),
        _ => {}
    }
    let period = r.period.as_deref().and_then(|p| match parse_duration(p) {
        Ok(d) => Some(d),
        Err(e) => {
            c.push("spec.rotation.period", e.to_string());
            None
        }
    });
    let zone = match r.time_zone.as_deref() {
        None => Some(jiff::tz::TimeZone::UTC),
        Some(name) => match zone(name) {
            Ok(z) => Some(z),
            Err(e) => {
                c.push("spec.rotation.timeZone", e.to_string());
                None
            }
        },
    };
    let zone = zone.unwrap_or(jiff::tz::TimeZone::UTC);
    let schedule = r.schedule.as_deref().and_then(|s| match Schedule::parse(s) {
        Err(e) => {
            c.push("spec.rotation.schedule", e.to_string());
            None
        }
        // Found by fuzzing: a valid expression can name a day that never comes (31 February).
        Ok(sched) if sched.next_after(jiff::Timestamp::now()).is_none() => {
            c.push(
                "spec.rotation.schedule",
                format!("{s:?} never fires (for example day 31 of February); no rotation would ever happen"),
            );
            None
        }
        Ok(sched) => Some(sched.in_zone(zone.clone())),
    });
    let window = r.window.as_deref().and_then(|w| {
        if r.schedule.is_none() {
            c.push("spec.rotation.window", "window applies only with schedule");
        }
        match parse_duration(w) {
            Ok(d) => Some(d),
            Err(e) => {
                c.push("spec.rotation.window", e.to_string());
                None
            }
        }
    });
    let maintenance = r
        .maintenance_window
        .as_ref()
        .and_then(|w| maintenance_window(w, zone, c));
    if c.0.len() > before {
        return None;
    }
    let timing = match (period, schedule) {
        (Some(p), None) => Timing::Period(p),
        (None, Some(s)) => Timing::Schedule {
            schedule: Box::new(s),
            window,
        },
        _ => return None,
    };
    Some((timing, maintenance))
}

fn maintenance_window(
    w: &crate::api::MaintenanceWindowSpec,
    zone: jiff::tz::TimeZone,
    c: &mut Collector,
) -> Option<MaintenanceWindow> {
    let schedule = match Schedule::parse(&w.schedule) {
        Ok(s) if s.next_after(jiff::Timestamp::now()).is_none() => {
            c.push(
                "spec.rotation.maintenanceWindow.schedule",
                format!(
                    "{:?} never opens; no scheduled rotation would ever happen",
                    w.schedule
                ),
            );
            None
        }
        Ok(s) => Some(s.in_zone(zone)),
        Err(e) => {
            c.push("spec.rotation.maintenanceWindow.schedule", e.to_string());
            None
        }
    };
    let duration = match parse_duration(&w.duration) {
        Ok(d) => Some(d),
        Err(e) => {
            c.push("spec.rotation.maintenanceWindow.duration", e.to_string());
            None
        }
    };
    Some(MaintenanceWindow {
        schedule: schedule?,
        duration: duration?,
    })
}

/// `Some(None)` for a valid spec without a database, `None` when a rule is broken.
fn database(
    secret_type: SecretType,
    db: Option<&DatabaseSpec>,
    c: &mut Collector,
) -> Option<Option<DatabaseRequest>> {
    let before = c.0.len();
    match (secret_type.is_database(), db) {
        (true, None) => c.push(
            "spec.database",
            format!("secretType {secret_type} needs a database"),
        ),
        (false, Some(_)) => c.push(
            "spec.database",
            "secretType COMMON takes no database; use RDS-FG or GaussDB-FG for a database credential",
        ),
        _ => {}
    }
    let Some(db) = db else {
        return (c.0.len() == before).then_some(None);
    };
    let accounts = accounts(db, c)?;
    (c.0.len() == before).then(|| {
        Some(DatabaseRequest {
            server_ref: db.server_ref.clone(),
            database: db.database.clone(),
            accounts,
        })
    })
}

fn accounts(db: &DatabaseSpec, c: &mut Collector) -> Option<Accounts> {
    match db.mode {
        DatabaseMode::SingleUser => {
            let user = db.username.as_deref().unwrap_or_default();
            if user.is_empty() {
                c.push("spec.database.username", "SingleUser needs username");
            }
            if db.usernames.is_some() {
                c.push(
                    "spec.database.usernames",
                    "usernames is for MultiUser; SingleUser takes username",
                );
            }
            (!user.is_empty() && db.usernames.is_none())
                .then(|| Accounts::SingleUser(user.to_owned()))
        }
        DatabaseMode::MultiUser => {
            let pair = match db.usernames.as_deref() {
                Some([a, b]) if a != b => Some(Accounts::MultiUser([a.clone(), b.clone()])),
                Some([_, _]) => {
                    c.push(
                        "spec.database.usernames",
                        "the two MultiUser accounts must be distinct",
                    );
                    None
                }
                _ => {
                    c.push(
                        "spec.database.usernames",
                        "MultiUser needs exactly two usernames",
                    );
                    None
                }
            };
            if db.username.is_some() {
                c.push(
                    "spec.database.username",
                    "username is for SingleUser; MultiUser takes usernames",
                );
            }
            pair.filter(|_| db.username.is_none())
        }
    }
}

/// The parsed templates of the synced Secret, by key.
fn templates(
    secret_type: SecretType,
    target: &TargetSpec,
    c: &mut Collector,
) -> Vec<(String, Template)> {
    let mut out = Vec::new();
    for (key, text) in &target.template {
        let field = format!("spec.target.template[{}]", printable(key));
        if !secret_key(key) {
            c.push(
                &field,
                "a Secret key must be letters, digits, '-', '_' or '.', at most 253",
            );
        }
        let t = match Template::parse(text) {
            Err(e) => {
                c.push(&field, e.to_string());
                continue;
            }
            Ok(t) => t,
        };
        for v in t.variables() {
            let own = v.strip_prefix("previous.").unwrap_or(v);
            let available = if secret_type.is_database() {
                own != "value"
            } else {
                matches!(own, "value" | "versionId")
            };
            if !available {
                c.push(
                    &field,
                    format!("{{{{ {v} }}}} is not available for secretType {secret_type}"),
                );
            }
        }
        out.push((key.clone(), t));
    }
    out
}

/// The labels and annotations of the synced Secret follow Kubernetes' rules and leave ours alone.
fn target_metadata(target: &TargetSpec, c: &mut Collector) {
    let mut annotation_bytes = 0usize;
    for (key, value) in &target.annotations {
        if key.starts_with(RESERVED_PREFIX) {
            c.push(
                "spec.target.annotations",
                format!("{} is reserved for the operator", printable(key)),
            );
        } else if let Err(why) = qualified_name(key) {
            c.push(
                "spec.target.annotations",
                format!("key {}: {why}", printable(key)),
            );
        }
        annotation_bytes += key.len() + value.len();
    }
    if annotation_bytes > MAX_ANNOTATION_BYTES {
        c.push(
            "spec.target.annotations",
            format!("{annotation_bytes} bytes; Kubernetes allows {MAX_ANNOTATION_BYTES} in all"),
        );
    }
    for (key, value) in &target.labels {
        if key.starts_with(RESERVED_PREFIX) {
            c.push(
                "spec.target.labels",
                format!("{} is reserved for the operator", printable(key)),
            );
        } else if let Err(why) = qualified_name(key) {
            c.push(
                "spec.target.labels",
                format!("key {}: {why}", printable(key)),
            );
        }
        if let Err(why) = label_value(value) {
            c.push(
                "spec.target.labels",
                format!("value of {}: {why}", printable(key)),
            );
        }
    }
}

/// The rotate-now annotation, bounded: it is copied into the status.
fn rotate_now(sr: &SecretRotation, c: &mut Collector) -> Option<String> {
    let v = sr
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_ROTATE_NOW)?;
    if v.is_empty() || v.chars().count() > MAX_ROTATE_NOW {
        c.push(
            &format!("metadata.annotations[{ANNOTATION_ROTATE_NOW}]"),
            format!(
                "must be 1 to {MAX_ROTATE_NOW} characters (a timestamp or a counter); it is copied into the status"
            ),
        );
        return None;
    }
    Some(v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SecretRotationSpec;

    fn from_yaml(spec: &str) -> SecretRotation {
        let spec: SecretRotationSpec = serde_saphyr::from_str(spec).unwrap();
        let mut sr = SecretRotation::new("orders-db", spec);
        sr.metadata.namespace = Some("shop".to_owned());
        sr
    }

    fn errors(spec: &str) -> Vec<String> {
        match validate(&from_yaml(spec)) {
            Ok(_) => vec![],
            Err(e) => e.errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn time_zone_and_maintenance_window() {
        let v = validate(&from_yaml(
            "rotation: {period: 5s, timeZone: Asia/Kolkata, maintenanceWindow: {schedule: '* * * * *', duration: 10s}}",
        ))
        .unwrap();
        let w = v.maintenance.expect("the window is kept");
        assert_eq!(w.duration, std::time::Duration::from_secs(10));
        for (spec, field) in [
            (
                "rotation: {period: 1d, timeZone: Nowhere/Land}",
                "spec.rotation.timeZone",
            ),
            (
                "rotation: {period: 1d, maintenanceWindow: {schedule: '* *', duration: 1h}}",
                "spec.rotation.maintenanceWindow.schedule",
            ),
            (
                "rotation: {period: 1d, maintenanceWindow: {schedule: '0 0 31 2 *', duration: 1h}}",
                "spec.rotation.maintenanceWindow.schedule",
            ),
            (
                "rotation: {period: 1d, maintenanceWindow: {schedule: '0 1 * * *', duration: 0h}}",
                "spec.rotation.maintenanceWindow.duration",
            ),
        ] {
            let e = errors(spec);
            assert!(e.iter().any(|e| e.starts_with(field)), "{spec}: {e:?}");
        }
    }

    const PG: &str = "
secretType: RDS-FG
rotation: {period: 30d}
database:
  serverRef: {name: orders-pg}
  username: orders_app
";

    #[test]
    fn labels_and_annotations_follow_kubernetes_rules() {
        assert_eq!(
            errors(
                "rotation: {period: 1d}\ntarget: {labels: {app.kubernetes.io/part-of: payments, tier: ''}, annotations: {example.com/owner: 'any text, even ünïcode'}}"
            ),
            Vec::<String>::new()
        );
        for (spec, field) in [
            ("target: {labels: {app: 'célèbre'}}", "spec.target.labels"),
            ("target: {labels: {app: '-x'}}", "spec.target.labels"),
            (
                "target: {labels: {'Example.com/x': y}}",
                "spec.target.labels",
            ),
            ("target: {labels: {'a/b/c': y}}", "spec.target.labels"),
            (
                "target: {annotations: {'bad key': y}}",
                "spec.target.annotations",
            ),
        ] {
            let e = errors(&format!("rotation: {{period: 1d}}\n{spec}"));
            assert!(e.iter().any(|e| e.starts_with(field)), "{spec}: {e:?}");
        }
        let long = "x".repeat(64);
        let e = errors(&format!(
            "rotation: {{period: 1d}}\ntarget: {{labels: {{app: {long}}}}}"
        ));
        assert!(e.iter().any(|e| e.contains("1 to 63")), "{e:?}");
    }

    #[test]
    fn the_rotate_now_annotation_is_bounded() {
        let mut sr = from_yaml("rotation: {period: 1d}");
        let set = |sr: &mut SecretRotation, v: String| {
            sr.metadata.annotations = Some(
                [(crate::api::ANNOTATION_ROTATE_NOW.to_owned(), v)]
                    .into_iter()
                    .collect(),
            )
        };
        set(&mut sr, "2026-11-27T10:00:00Z".into());
        assert!(validate(&sr).is_ok());
        set(&mut sr, "x".repeat(MAX_ROTATE_NOW + 1));
        let e = validate(&sr).unwrap_err();
        assert!(e.errors[0].field.contains("rotate-now"), "{e}");
    }

    #[test]
    fn valid_specs_pass() {
        assert_eq!(errors("rotation: {period: 30d}"), Vec::<String>::new());
        assert_eq!(errors(PG), Vec::<String>::new());
        assert_eq!(
            errors(
                "rotation: {schedule: '0 3 * * 0', window: 2h}\ntarget: {template: {token: 'Bearer {{ value }}'}}"
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            errors(
                "secretType: GaussDB-FG
rotation: {period: 12h}
database:
  serverRef: {name: orders-my, kind: DatabaseServer}
  mode: MultiUser
  usernames: [a, b]"
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: &[(&str, &str)] = &[
            ("rotation: {}", "spec.rotation: neither"),
            (
                "rotation: {period: 1d, schedule: '* * * * *'}",
                "spec.rotation: period and schedule",
            ),
            ("rotation: {period: 0d}", "spec.rotation.period"),
            ("rotation: {schedule: '* * *'}", "spec.rotation.schedule"),
            ("rotation: {schedule: '0 0 31 2 *'}", "never fires"),
            (
                "rotation: {period: 1d, window: 1h}",
                "spec.rotation.window: window applies only",
            ),
            (
                "secretType: RDS-FG\nrotation: {period: 1d}",
                "spec.database: secretType RDS-FG needs",
            ),
            (
                "rotation: {period: 1d}\ndatabase: {serverRef: {name: s}, username: u}",
                "spec.database: secretType COMMON takes no database",
            ),
            (
                "secretType: RDS-FG\nrotation: {period: 1d}\ndatabase: {serverRef: {name: s}}",
                "spec.database.username: SingleUser needs username",
            ),
            (
                "secretType: RDS-FG\nrotation: {period: 1d}\ndatabase: {serverRef: {name: s}, mode: MultiUser, usernames: [a, a]}",
                "spec.database.usernames: the two MultiUser accounts must be distinct",
            ),
            (
                "rotation: {period: 1d}\npassword: {excludeLowercase: true, excludeUppercase: true, excludeNumbers: true, excludePunctuation: true}",
                "spec.password: the policy excludes every character class",
            ),
            (
                "rotation: {period: 1d}\ntarget: {template: {k: '{{ password }}'}}",
                "is not available for secretType COMMON",
            ),
            (
                "rotation: {period: 1d}\ntarget: {template: {k: '{{ nope }}'}}",
                "unknown variable",
            ),
            (
                "rotation: {period: 1d}\ntarget: {template: {'bad key': '{{ value }}'}}",
                "a Secret key must be",
            ),
            (
                "rotation: {period: 1d}\ntarget: {annotations: {secretrotator.dev/version-id: x}}",
                "spec.target.annotations",
            ),
            (
                "rotation: {period: 1d}\nrestartTargets: [{kind: Deployment, name: a}, {kind: Deployment, name: a}]",
                "spec.restartTargets",
            ),
            (
                "secretName: 'has space'\nrotation: {period: 1d}",
                "spec.secretName",
            ),
        ];
        for (spec, expected) in cases {
            let errs = errors(spec);
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "spec {spec:?}: expected an error containing {expected:?}, got {errs:?}"
            );
        }
    }

    #[test]
    fn default_name_too_long_is_reported() {
        let mut sr = from_yaml("rotation: {period: 1d}");
        sr.metadata.name = Some("x".repeat(70));
        let err = validate(&sr).unwrap_err();
        assert_eq!(err.errors[0].field, "spec.secretName");
        assert!(err.to_string().starts_with("invalid SecretRotation shop/"));
    }
}

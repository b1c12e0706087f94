//! Rules the OpenAPI schema cannot hold: those that cross fields, or that need a parser (durations,
//! cron, templates, password policies). The operator reports a failure as `Ready=False`, reason
//! `InvalidSpec`, with the message of [`InvalidSpec`].

use std::collections::BTreeSet;

use crate::api::{DatabaseEngine, DatabaseMode, SecretRotation, SecretType, TlsMode};
use crate::password;
use crate::planner::duration::parse_duration;
use crate::planner::schedule::Schedule;
use crate::template::Template;

/// Prefix of annotation and label keys that belong to the operator.
const RESERVED_PREFIX: &str = "secretrotator.dev/";

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

struct Collector(Vec<FieldError>);

impl Collector {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }
}

/// Checks every cross-field rule of a SecretRotation.
pub fn validate(sr: &SecretRotation) -> Result<(), InvalidSpec> {
    let spec = &sr.spec;
    let mut c = Collector(Vec::new());

    let store_name = sr.store_secret_name();
    if store_name.is_empty()
        || store_name.len() > 64
        || !store_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        c.push(
            "spec.secretName",
            format!(
                "the store secret name {:?} must be 1 to 64 letters, digits, '.', '_' or '-'; set spec.secretName when \"<namespace>.<name>\" is too long",
                store_name.chars().take(80).collect::<String>()
            ),
        );
    }

    // Rotation timing.
    let r = &spec.rotation;
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
    if let Some(p) = r.period.as_deref()
        && let Err(e) = parse_duration(p)
    {
        c.push("spec.rotation.period", e.to_string());
    }
    if let Some(s) = r.schedule.as_deref() {
        match Schedule::parse(s) {
            Err(e) => c.push("spec.rotation.schedule", e.to_string()),
            // Found by fuzzing: a valid expression can name a day that never comes (31 February).
            Ok(sched) if sched.next_after(jiff::Timestamp::now()).is_none() => c.push(
                "spec.rotation.schedule",
                format!("{s:?} never fires (for example day 31 of February); no rotation would ever happen"),
            ),
            Ok(_) => {}
        }
    }
    if let Some(w) = r.window.as_deref() {
        if r.schedule.is_none() {
            c.push("spec.rotation.window", "window applies only with schedule");
        }
        if let Err(e) = parse_duration(w) {
            c.push("spec.rotation.window", e.to_string());
        }
    }

    // Database.
    match (spec.secret_type.is_database(), &spec.database) {
        (true, None) => c.push(
            "spec.database",
            format!("secretType {} needs a database", spec.secret_type),
        ),
        (false, Some(_)) => c.push(
            "spec.database",
            "secretType COMMON takes no database; use RDS-FG or GaussDB-FG for a database credential",
        ),
        _ => {}
    }
    if let Some(db) = &spec.database {
        if spec.secret_type == SecretType::GaussDbFg && db.engine != DatabaseEngine::Mysql {
            c.push(
                "spec.database.engine",
                "GaussDB-FG speaks the MySQL protocol: set engine mysql",
            );
        }
        match db.mode {
            DatabaseMode::SingleUser => {
                if db.username.as_deref().unwrap_or_default().is_empty() {
                    c.push("spec.database.username", "SingleUser needs username");
                }
                if db.usernames.is_some() {
                    c.push(
                        "spec.database.usernames",
                        "usernames is for MultiUser; SingleUser takes username",
                    );
                }
            }
            DatabaseMode::MultiUser => {
                match db.usernames.as_deref() {
                    Some([a, b]) if a != b => {}
                    Some([_, _]) => c.push(
                        "spec.database.usernames",
                        "the two MultiUser accounts must be distinct",
                    ),
                    _ => c.push(
                        "spec.database.usernames",
                        "MultiUser needs exactly two usernames",
                    ),
                }
                if db.username.is_some() {
                    c.push(
                        "spec.database.username",
                        "username is for SingleUser; MultiUser takes usernames",
                    );
                }
                if db.admin_secret_ref.is_none() {
                    c.push(
                        "spec.database.adminSecretRef",
                        "MultiUser needs adminSecretRef: the account being reset is not the one in use, so it cannot change its own password",
                    );
                }
            }
        }
        if db.tls.mode == TlsMode::Disable && db.tls.ca_secret_ref.is_some() {
            c.push(
                "spec.database.tls.caSecretRef",
                "a CA is set but tls.mode is disable; use verify-full",
            );
        }
        if let Some(port) = db.port
            && !(1..=65535).contains(&port)
        {
            c.push("spec.database.port", "port must be 1 to 65535");
        }
    }

    // Generated values.
    if let Err(e) = password::classes(&spec.password) {
        c.push("spec.password", e.to_string());
    }

    // Target.
    for (key, text) in &spec.target.template {
        let field = format!("spec.target.template[{}]", printable(key));
        if key.is_empty()
            || key.len() > 253
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            c.push(
                &field,
                "a Secret key must be letters, digits, '-', '_' or '.', at most 253",
            );
        }
        match Template::parse(text) {
            Err(e) => c.push(&field, e.to_string()),
            Ok(t) => {
                for v in t.variables() {
                    let available = if spec.secret_type.is_database() {
                        v != "value"
                    } else {
                        matches!(v, "value" | "versionId")
                    };
                    if !available {
                        c.push(
                            &field,
                            format!(
                                "{{{{ {v} }}}} is not available for secretType {}",
                                spec.secret_type
                            ),
                        );
                    }
                }
            }
        }
    }
    let mut annotation_bytes = 0usize;
    for (key, value) in &spec.target.annotations {
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
    for (key, value) in &spec.target.labels {
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
    if let Some(v) = sr
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::api::ANNOTATION_ROTATE_NOW))
        && (v.is_empty() || v.chars().count() > MAX_ROTATE_NOW)
    {
        c.push(
            &format!("metadata.annotations[{}]", crate::api::ANNOTATION_ROTATE_NOW),
            format!(
                "must be 1 to {MAX_ROTATE_NOW} characters (a timestamp or a counter); it is copied into the status"
            ),
        );
    }

    // Restart targets.
    let mut seen = BTreeSet::new();
    for t in &spec.restart_targets {
        if !seen.insert((t.kind as u8, t.name.as_str())) {
            c.push(
                "spec.restartTargets",
                format!("{:?} {} is listed twice", t.kind, printable(&t.name)),
            );
        }
    }

    if c.0.is_empty() {
        Ok(())
    } else {
        Err(InvalidSpec {
            name: format!(
                "{}/{}",
                sr.metadata.namespace.as_deref().unwrap_or_default(),
                sr.metadata.name.as_deref().unwrap_or_default()
            ),
            errors: c.0,
        })
    }
}

/// A key or name cut to a readable length, for messages.
/// Longest rotate-now annotation value: it is copied into the status.
pub const MAX_ROTATE_NOW: usize = 253;
/// Kubernetes' limit on all annotations of one object together.
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

fn name_part(s: &str, max: usize) -> Result<(), String> {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphanumeric();
    if b.is_empty() || b.len() > max {
        return Err(format!("must be 1 to {max} characters"));
    }
    if !edge(&b[0]) || !edge(&b[b.len() - 1]) {
        return Err("must start and end with a letter or digit".into());
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err("may hold only letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain.
fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                let b = l.as_bytes();
                !b.is_empty()
                    && b.len() <= 63
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            });
        if !ok {
            return Err("the prefix must be a lowercase DNS subdomain".into());
        }
    }
    name_part(name, 63)
}

/// A label value: empty, or like a key's name part.
fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        Ok(())
    } else {
        name_part(v, 63)
    }
}

fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    format!("{out:?}")
}

/// The port to use for a database: the spec's, or the engine's usual one.
pub fn database_port(engine: DatabaseEngine, port: Option<i32>) -> u16 {
    port.and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or_else(|| engine.default_port())
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
            Ok(()) => vec![],
            Err(e) => e.errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    const PG: &str = "
secretType: RDS-FG
rotation: {period: 30d}
database:
  engine: postgresql
  host: orders-db.shop.svc
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
  engine: mysql
  host: 10.0.0.5
  mode: MultiUser
  usernames: [a, b]
  adminSecretRef: {name: admin}
  tls: {mode: verify-full, caSecretRef: {name: ca}}"
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
                "rotation: {period: 1d}\ndatabase: {engine: mysql, host: h, username: u}",
                "spec.database: secretType COMMON takes no database",
            ),
            (
                "secretType: GaussDB-FG\nrotation: {period: 1d}\ndatabase: {engine: postgresql, host: h, username: u}",
                "spec.database.engine",
            ),
            (
                "secretType: RDS-FG\nrotation: {period: 1d}\ndatabase: {engine: mysql, host: h}",
                "spec.database.username: SingleUser needs username",
            ),
            (
                "secretType: RDS-FG\nrotation: {period: 1d}\ndatabase: {engine: mysql, host: h, mode: MultiUser, usernames: [a, a], adminSecretRef: {name: x}}",
                "spec.database.usernames: the two MultiUser accounts must be distinct",
            ),
            (
                "secretType: RDS-FG\nrotation: {period: 1d}\ndatabase: {engine: mysql, host: h, mode: MultiUser, usernames: [a, b]}",
                "spec.database.adminSecretRef",
            ),
            (
                "secretType: RDS-FG\nrotation: {period: 1d}\ndatabase: {engine: mysql, host: h, username: u, tls: {mode: disable, caSecretRef: {name: c}}}",
                "spec.database.tls.caSecretRef",
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

    #[test]
    fn ports_default_by_engine() {
        assert_eq!(database_port(DatabaseEngine::Postgresql, None), 5432);
        assert_eq!(database_port(DatabaseEngine::Mysql, None), 3306);
        assert_eq!(database_port(DatabaseEngine::Mysql, Some(13306)), 13306);
    }
}

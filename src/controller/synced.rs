//! The synced Kubernetes Secret: its desired form from the store's SYSCURRENT, drift comparison, the
//! data HMAC, and server-side apply.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use sha2::Sha256;

use crate::api::RestartKind;
use crate::api::{
    ANNOTATION_ADOPT, ANNOTATION_ROTATION_TASK_ID, ANNOTATION_VERSION_ID, DeletionPolicy,
    SecretRotation,
};
use crate::validation::{SyncedSecretSpec, ValidatedSpec};
use jiff::Timestamp;
use secret_rotator_store::model::{DatabaseCredential, Version};

/// Label on every synced Secret: who manages it.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "secret-rotator";
/// Label on every synced Secret: the SecretRotation it belongs to.
pub const LABEL_OWNER: &str = "secretrotator.dev/secret-rotation";

/// Why the desired Secret could not be built. Messages never hold a value.
#[derive(Debug, thiserror::Error)]
pub enum SyncedError {
    /// A database secret's version is not `{"username","password"}` JSON.
    #[error("version {version} of {secret} is not a database credential")]
    NotACredential {
        /// Store secret.
        secret: String,
        /// Version id.
        version: String,
    },
}

/// The values a template can use for one version.
#[derive(Default)]
struct Values {
    username: String,
    password: String,
    value: String,
    version_id: String,
}

impl Drop for Values {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

impl Values {
    /// A version's values: the credential of a database type, the value of the others.
    fn of(spec: &ValidatedSpec, version: &Version) -> Result<Values, SyncedError> {
        let mut v = Values::default();
        v.version_id = version.version_metadata.id.clone();
        if spec.secret_type.is_database() {
            let cred = DatabaseCredential::from_value(&version.value).ok_or_else(|| {
                SyncedError::NotACredential {
                    secret: version.version_metadata.secret_name.clone(),
                    version: version.version_metadata.id.clone(),
                }
            })?;
            v.username = cred.username.clone();
            v.password = cred.password.clone();
        } else {
            v.value = String::from_utf8_lossy(version.value.expose()).into_owned();
        }
        Ok(v)
    }
}

/// Where the database is, for the templates.
struct Place {
    host: String,
    port: String,
    database: String,
}

/// What a template can use: SYSCURRENT's values, SYSPREVIOUS's (empty until a second version exists) and
/// the database's place.
struct Vars {
    current: Values,
    previous: Values,
    place: Place,
}

impl Vars {
    fn get(&self, name: &str) -> &str {
        match name {
            "username" => &self.current.username,
            "password" => &self.current.password,
            "value" => &self.current.value,
            "versionId" => &self.current.version_id,
            "host" => &self.place.host,
            "port" => &self.place.port,
            "database" => &self.place.database,
            "previous.username" => &self.previous.username,
            "previous.password" => &self.previous.password,
            "previous.value" => &self.previous.value,
            "previous.versionId" => &self.previous.version_id,
            _ => "",
        }
    }
}

/// The data of the synced Secret for a version; `previous` is SYSPREVIOUS, for `previous.*` variables (a
/// previous version that is not a credential of a database type leaves them empty).
pub fn desired_data(
    spec: &ValidatedSpec,
    version: &Version,
    previous: Option<&Version>,
) -> Result<BTreeMap<String, ByteString>, SyncedError> {
    let place = match &spec.database {
        Some(db) if spec.secret_type.is_database() => Place {
            host: db.server.host.clone(),
            port: db.server.port.to_string(),
            database: db.database.clone().unwrap_or_default(),
        },
        _ => Place {
            host: String::new(),
            port: String::new(),
            database: String::new(),
        },
    };
    let v = Vars {
        current: Values::of(spec, version)?,
        previous: previous
            .and_then(|p| Values::of(spec, p).ok())
            .unwrap_or_default(),
        place,
    };
    let mut data = BTreeMap::new();
    let templates = &spec.synced.templates;
    if templates.is_empty() {
        if spec.secret_type.is_database() {
            for key in ["username", "password", "host", "port"] {
                data.insert(key.to_owned(), ByteString(v.get(key).as_bytes().to_vec()));
            }
            if !v.place.database.is_empty() {
                data.insert(
                    "database".to_owned(),
                    ByteString(v.place.database.as_bytes().to_vec()),
                );
            }
        } else {
            data.insert(
                "value".to_owned(),
                ByteString(v.current.value.as_bytes().to_vec()),
            );
        }
    } else {
        for (key, t) in templates {
            data.insert(key.clone(), ByteString(t.render(|n| v.get(n)).into_bytes()));
        }
    }
    Ok(data)
}

/// HMAC-SHA256 of the data under the operator's key, hex: equal data, equal HMAC; reveals nothing.
pub fn data_hmac(key: &[u8], data: &BTreeMap<String, ByteString>) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return String::new();
    };
    for (k, v) in data {
        mac.update(&(k.len() as u64).to_be_bytes());
        mac.update(k.as_bytes());
        mac.update(&(v.0.len() as u64).to_be_bytes());
        mac.update(&v.0);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The whole desired Secret.
pub fn desired_secret(
    sr: &SecretRotation,
    target: &SyncedSecretSpec,
    data: BTreeMap<String, ByteString>,
    version_id: &str,
    task_id: &str,
) -> Secret {
    let name = target.name.clone();
    let mut labels = target.labels.clone();
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
    labels.insert(
        LABEL_OWNER.to_owned(),
        sr.metadata.name.clone().unwrap_or_default(),
    );
    let mut annotations = target.annotations.clone();
    annotations.insert(ANNOTATION_VERSION_ID.to_owned(), version_id.to_owned());
    annotations.insert(ANNOTATION_ROTATION_TASK_ID.to_owned(), task_id.to_owned());
    let owner_references = match target.deletion_policy {
        DeletionPolicy::Delete => sr.controller_owner_ref(&()).map(|o| vec![o]),
        DeletionPolicy::Retain => None,
    };
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: sr.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Whether the operator may write `existing` as `sr`'s synced Secret: it made it for this resource (its
/// labels name it, or this resource is its controller), or the Secret's owner opted in with
/// `secretrotator.dev/adopt: "true"`.
pub fn may_write(sr: &SecretRotation, existing: &Secret) -> bool {
    let meta = &existing.metadata;
    let label = |k: &str| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(k))
            .map(String::as_str)
    };
    let ours = label(LABEL_MANAGED_BY) == Some(MANAGED_BY)
        && label(LABEL_OWNER) == sr.metadata.name.as_deref();
    let controlled =
        meta.owner_references.iter().flatten().any(|o| {
            o.controller == Some(true) && Some(o.uid.as_str()) == sr.metadata.uid.as_deref()
        });
    let adopt = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_ADOPT))
        .is_some_and(|v| v == "true");
    ours || controlled || adopt
}

fn owner_matches(want: &Option<Vec<OwnerReference>>, have: &Option<Vec<OwnerReference>>) -> bool {
    match want {
        None => true,
        Some(w) => w.iter().all(|o| {
            have.as_ref().is_some_and(|h| {
                h.iter()
                    .any(|x| x.uid == o.uid && x.controller == o.controller)
            })
        }),
    }
}

/// Whether `existing` already holds everything `desired` says (extra keys, labels or annotations that
/// others added are left alone, except data: the data must be exactly ours).
pub fn up_to_date(desired: &Secret, existing: &Secret) -> bool {
    let subset = |want: &Option<BTreeMap<String, String>>,
                  have: &Option<BTreeMap<String, String>>| {
        want.as_ref().is_none_or(|w| {
            w.iter()
                .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
        })
    };
    desired.data == existing.data
        && subset(&desired.metadata.labels, &existing.metadata.labels)
        && subset(
            &desired.metadata.annotations,
            &existing.metadata.annotations,
        )
        && owner_matches(
            &desired.metadata.owner_references,
            &existing.metadata.owner_references,
        )
        && existing.metadata.deletion_timestamp.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SecretRotationSpec;
    use secret_rotator_core::secret_value::SecretValue;
    use secret_rotator_store::model::{ValueKind, VersionMetadata};

    fn checked(sr: &SecretRotation) -> ValidatedSpec {
        checked_on(sr, "engine: postgresql, host: db.svc")
    }

    /// The spec, its database on a server with this spec.
    fn checked_on(sr: &SecretRotation, server: &str) -> ValidatedSpec {
        crate::validation::server::resolved_on(crate::validation::validate(sr).unwrap(), server)
    }

    fn sr(spec: &str) -> SecretRotation {
        let spec: SecretRotationSpec = serde_saphyr::from_str(spec).unwrap();
        let mut sr = SecretRotation::new("orders", spec);
        sr.metadata.namespace = Some("shop".into());
        sr.metadata.uid = Some("uid-1".into());
        sr
    }

    fn version(id: &str, value: &str) -> Version {
        Version {
            version_metadata: VersionMetadata {
                id: id.into(),
                secret_name: "shop.orders".into(),
                ..Default::default()
            },
            value: SecretValue::from_str_value(value),
            kind: ValueKind::String,
        }
    }

    #[test]
    fn default_keys_by_type() {
        let c = sr("rotation: {period: 1d}");
        let d = desired_data(&checked(&c), &version("v1", "tok"), None).unwrap();
        assert_eq!(d.keys().collect::<Vec<_>>(), ["value"]);
        assert_eq!(d["value"].0, b"tok");
        let db = sr(
            "secretType: RDS-FG\nrotation: {period: 1d}\ndatabase: {serverRef: {name: pg}, username: app, database: orders}",
        );
        let d = desired_data(
            &checked(&db),
            &version("v2", r#"{"username":"app","password":"pw"}"#),
            None,
        )
        .unwrap();
        assert_eq!(
            d.keys().collect::<Vec<_>>(),
            ["database", "host", "password", "port", "username"]
        );
        assert_eq!(d["port"].0, b"5432");
        assert_eq!(d["password"].0, b"pw");
        assert!(desired_data(&checked(&db), &version("v2", "not json"), None).is_err());
    }

    #[test]
    fn templates_render_every_key() {
        let c = sr(
            "secretType: RDS-FG\nrotation: {period: 1d}\ndatabase: {serverRef: {name: my}, username: u}\ntarget: {template: {url: 'mysql://{{ username }}:{{ password }}@{{ host }}:{{ port }}', v: '{{ versionId }}'}}",
        );
        let d = desired_data(
            &checked_on(&c, "engine: mysql, host: h"),
            &version("v7", r#"{"username":"u","password":"p"}"#),
            None,
        )
        .unwrap();
        assert_eq!(d["url"].0, b"mysql://u:p@h:3306");
        assert_eq!(d["v"].0, b"v7");
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn previous_variables_hold_syspreviouss_values_or_nothing() {
        let c = sr(
            "rotation: {period: 1d}\ntarget: {template: {keys: '{{ value }},{{ previous.value }}', ids: '{{ versionId }}/{{ previous.versionId }}'}}",
        );
        assert!(checked(&c).synced.uses_previous());
        let d = desired_data(
            &checked(&c),
            &version("v2", "new"),
            Some(&version("v1", "old")),
        )
        .unwrap();
        assert_eq!(d["keys"].0, b"new,old");
        assert_eq!(d["ids"].0, b"v2/v1");
        let d = desired_data(&checked(&c), &version("v1", "first"), None).unwrap();
        assert_eq!(d["keys"].0, b"first,");
        assert_eq!(d["ids"].0, b"v1/");
        let db = sr(
            "secretType: RDS-FG\nrotation: {period: 1d}\ndatabase: {serverRef: {name: my}, mode: MultiUser, usernames: [a, b]}\ntarget: {template: {now: '{{ username }}:{{ password }}', before: '{{ previous.username }}:{{ previous.password }}'}}",
        );
        let d = desired_data(
            &checked(&db),
            &version("v3", r#"{"username":"b","password":"pb"}"#),
            Some(&version("v2", r#"{"username":"a","password":"pa"}"#)),
        )
        .unwrap();
        assert_eq!(d["now"].0, b"b:pb");
        assert_eq!(d["before"].0, b"a:pa");
        // A previous version that is no credential leaves the variables empty; the current must be one.
        let d = desired_data(
            &checked(&db),
            &version("v3", r#"{"username":"b","password":"pb"}"#),
            Some(&version("v2", "not json")),
        )
        .unwrap();
        assert_eq!(d["before"].0, b":");
    }

    #[test]
    fn secret_metadata_and_drift() {
        let c = sr(
            "rotation: {period: 1d}\ntarget: {name: api, labels: {team: a}, annotations: {note: x}}",
        );
        let data = desired_data(&checked(&c), &version("v1", "tok"), None).unwrap();
        let s = desired_secret(&c, &checked(&c).synced, data.clone(), "v1", "");
        assert_eq!(s.metadata.name.as_deref(), Some("api"));
        let ann = s.metadata.annotations.clone().unwrap();
        assert_eq!(ann[ANNOTATION_VERSION_ID], "v1");
        assert_eq!(ann["note"], "x");
        assert_eq!(s.metadata.labels.clone().unwrap()[LABEL_OWNER], "orders");
        assert_eq!(
            s.metadata.owner_references.as_ref().unwrap()[0].uid,
            "uid-1"
        );
        assert!(up_to_date(&s, &s));
        let mut edited = s.clone();
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("value".into(), ByteString(b"tampered".to_vec()));
        assert!(!up_to_date(&s, &edited));
        let mut extra_label = s.clone();
        extra_label
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("other".into(), "y".into());
        assert!(
            up_to_date(&s, &extra_label),
            "others' labels are left alone"
        );
        let retain = sr("rotation: {period: 1d}\ntarget: {deletionPolicy: Retain}");
        assert!(
            desired_secret(&retain, &checked(&retain).synced, data, "v1", "")
                .metadata
                .owner_references
                .is_none()
        );
    }

    #[test]
    fn only_secrets_made_for_the_resource_or_opted_in_are_written() {
        let c = sr("rotation: {period: 1d}");
        let data = desired_data(&checked(&c), &version("v1", "tok"), None).unwrap();
        let ours = desired_secret(&c, &checked(&c).synced, data, "v1", "");
        assert!(may_write(&c, &ours));
        let foreign = Secret {
            metadata: ObjectMeta {
                name: Some("orders".into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        assert!(!may_write(&c, &foreign), "a Secret someone else made");
        let mut other_owner = ours.clone();
        other_owner.metadata.owner_references = None;
        other_owner
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(LABEL_OWNER.into(), "another".into());
        assert!(
            !may_write(&c, &other_owner),
            "another SecretRotation's Secret"
        );
        let mut opted_in = foreign.clone();
        opted_in.metadata.annotations =
            Some([(ANNOTATION_ADOPT.to_owned(), "true".to_owned())].into());
        assert!(may_write(&c, &opted_in));
        opted_in.metadata.annotations =
            Some([(ANNOTATION_ADOPT.to_owned(), "yes".to_owned())].into());
        assert!(!may_write(&c, &opted_in), "only \"true\" opts in");
    }

    #[test]
    fn hmac_tracks_the_data_only() {
        let mut a = BTreeMap::new();
        a.insert("k".to_owned(), ByteString(b"v".to_vec()));
        let h1 = data_hmac(b"key", &a);
        assert_eq!(h1.len(), 64);
        assert_eq!(h1, data_hmac(b"key", &a));
        assert_ne!(h1, data_hmac(b"other", &a));
        a.insert("k".to_owned(), ByteString(b"w".to_vec()));
        assert_ne!(h1, data_hmac(b"key", &a));
        // Key/value boundaries are unambiguous.
        let mut b1 = BTreeMap::new();
        b1.insert("ab".to_owned(), ByteString(b"c".to_vec()));
        let mut b2 = BTreeMap::new();
        b2.insert("a".to_owned(), ByteString(b"bc".to_vec()));
        assert_ne!(data_hmac(b"key", &b1), data_hmac(b"key", &b2));
    }
}

/// How a restart target's restart went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartResult {
    /// The pod template was annotated.
    Done,
    /// No such workload.
    Missing,
    /// The patch failed; why.
    Failed(String),
}

/// One restart target and how its restart went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    /// The workload kind.
    pub kind: RestartKind,
    /// The workload name.
    pub name: String,
    /// How it went.
    pub result: RestartResult,
}

/// The version the synced Secret holds after this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The synced Secret's name.
    pub secret: String,
    /// The store version.
    pub version_id: String,
    /// The task that made it (empty for COMMON).
    pub task_id: String,
    /// When the store made it.
    pub created: Timestamp,
    /// The account it holds (database secrets).
    pub current_user: Option<String>,
    /// HMAC of the synced data.
    pub data_hmac: String,
    /// Whether this reconcile wrote the Secret.
    pub applied: bool,
    /// Restarts this reconcile made.
    pub restarts: Vec<Restart>,
    /// The version the restart targets are known to run with (none while a restart failed).
    pub restarted_version: Option<String>,
}

/// Where the synced Secret stands after this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncedState {
    /// The store has no usable value (a database password not known yet, or nothing created).
    NoValue,
    /// The apiserver refused the Secret; the message says why (never a value).
    Rejected(String),
    /// A Secret of that name appeared that the operator did not make (created, or replaced, between the
    /// look and the write): nothing was written; the message says so.
    Taken(String),
    /// The Secret holds a version.
    Holds(Held),
}

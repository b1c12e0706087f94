//! The reconcile in process: each step and the driver against an apiserver in the test process
//! ([`fake`]) and an embedded store in a temporary folder, as table-driven scenarios. The control-plane
//! tests (tests/cluster) run the same code against a real kube-apiserver; these pin down which requests
//! each path makes and what it records.

mod fake;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::controller::Action as KubeAction;
use kube::runtime::events::Event;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::reconcile;
use crate::api::ClusterDatabaseServer;
use crate::api::{ANNOTATION_ROLLBACK_TO, ANNOTATION_ROTATE_NOW, SecretRotation};
use crate::controller::error::ErrorKind;
use crate::controller::events::EventSink;
use crate::controller::policy::NamespacePolicy;
use crate::controller::servers::server_cache;
use crate::controller::{Context, secret_cache};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use fake::Fake;
use secret_rotator_store::Store;
use secret_rotator_store::embedded::crypto::MasterKey;
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator_store::model::{CreateSecret, SYSCURRENT};

const NS: &str = "shop";
const ROTATIONS: &str = "/apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations";
const SECRETS: &str = "/api/v1/namespaces/shop/secrets";

/// One resource, the fake apiserver, the store and the events, reconciled as the controller would.
struct Harness {
    fake: Fake,
    ctx: Arc<Context>,
    store: Arc<EmbeddedStore>,
    events: mpsc::Receiver<(ObjectReference, Event)>,
    name: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// `resource` is the SecretRotation's YAML without namespace, uid or timestamps.
    fn new(resource: &str, creates_missing: bool) -> Harness {
        Harness::with_gap(resource, creates_missing, Duration::ZERO)
    }

    /// With `--min-rotation-period` at `gap`.
    fn with_gap(resource: &str, creates_missing: bool, gap: Duration) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            EmbeddedStore::open(
                &dir.path().join("store.redb"),
                MasterKey::generate().unwrap(),
                EmbeddedOptions::default(),
            )
            .unwrap(),
        );
        let fake = Fake::default();
        let mut sr: Value = serde_saphyr::from_str(resource).unwrap();
        sr["metadata"]["namespace"] = json!(NS);
        sr["metadata"]["uid"] = json!("uid-resource");
        sr["metadata"]["generation"] = json!(1);
        sr["metadata"]["creationTimestamp"] = json!("2026-11-01T00:00:00Z");
        let name = sr["metadata"]["name"].as_str().unwrap().to_owned();
        fake.put(&format!("{ROTATIONS}/{name}"), sr);
        let (events, rx) = EventSink::capture();
        let (secrets, writer) = secret_cache();
        // The cache has listed (nothing): a Secret it lacks is looked up in the apiserver.
        writer.listed.send_replace(true);
        let (servers, mut server_writer) = server_cache();
        for yaml in SERVERS {
            let obj: ClusterDatabaseServer = serde_saphyr::from_str(yaml).unwrap();
            server_writer
                .cluster
                .apply_watcher_event(&kube::runtime::watcher::Event::Apply(obj));
        }
        server_writer.listed.send_replace((true, true));
        let ctx = Arc::new(Context {
            client: fake.client(),
            store: store.clone(),
            project: "default".into(),
            creates_missing,
            hmac_key: Zeroizing::new(vec![7; 32]),
            policy: NamespacePolicy::default(),
            min_period: gap,
            max_rollback_age: Duration::from_secs(30 * 86_400),
            metrics: Arc::new(Metrics::new()),
            events,
            notifier: Notifier::disabled(),
            secrets,
            freshness: Default::default(),
            admin_pool: Default::default(),
            retries: Default::default(),
            servers,
        });
        Harness {
            fake,
            ctx,
            store,
            events: rx,
            name,
            _dir: dir,
        }
    }

    fn path(&self) -> String {
        format!("{ROTATIONS}/{}", self.name)
    }

    /// The resource as the apiserver holds it now.
    fn resource(&self) -> SecretRotation {
        serde_json::from_value(self.fake.get(&self.path()).unwrap()).unwrap()
    }

    fn status(&self) -> Value {
        self.fake.get(&self.path()).unwrap()["status"].clone()
    }

    fn ready(&self) -> (String, String) {
        let st = self.status();
        let c = st["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or(Value::Null);
        (
            c["status"].as_str().unwrap_or("none").to_owned(),
            c["reason"].as_str().unwrap_or("none").to_owned(),
        )
    }

    fn annotate(&self, key: &str, value: &str) {
        let mut obj = self.fake.get(&self.path()).unwrap();
        obj["metadata"]["annotations"][key] = json!(value);
        self.fake.put(&self.path(), obj);
    }

    async fn reconcile(&self) -> Result<KubeAction, crate::controller::Error> {
        reconcile(Arc::new(self.resource()), self.ctx.clone()).await
    }

    /// The event reasons published so far.
    fn event_reasons(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok((_, ev)) = self.events.try_recv() {
            out.push(ev.reason);
        }
        out
    }

    async fn versions(&self) -> usize {
        let store_secret = self.resource().store_secret_name();
        match self
            .store
            .list_versions("default", &store_secret, None, None)
            .await
        {
            Ok(page) => page.version_metadatas.len(),
            Err(_) => 0,
        }
    }

    /// SYSCURRENT's id.
    async fn current(&self) -> String {
        let store_secret = self.resource().store_secret_name();
        self.store
            .show_version_by_stage("default", &store_secret, SYSCURRENT)
            .await
            .unwrap()
            .version_metadata
            .id
    }

    /// Every value the store holds for the resource, to look for where none may appear.
    async fn values(&self) -> Vec<String> {
        let store_secret = self.resource().store_secret_name();
        let Ok(page) = self
            .store
            .list_versions("default", &store_secret, None, None)
            .await
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for v in page.version_metadatas {
            let full = self
                .store
                .show_version("default", &store_secret, &v.id)
                .await
                .unwrap();
            out.push(String::from_utf8_lossy(full.value.expose()).into_owned());
        }
        out
    }
}

/// The servers every harness knows: one without an administrator that allows `shop` and `orders_*`, one
/// that allows another namespace only. Their hosts are never reached by these tests.
const SERVERS: &[&str] = &[
    "metadata: {name: orders-pg}\nspec: {engine: postgresql, host: orders-db.data.svc, accounts: ['orders_*'], allowedNamespaces: {names: [shop]}}",
    "metadata: {name: billing-pg}\nspec: {engine: postgresql, host: billing-db.data.svc, accounts: ['*'], allowedNamespaces: {names: [billing]}}",
];

const COMMON: &str = "
metadata: {name: api}
spec:
  secretType: COMMON
  rotation: {period: 30d}
  target: {name: api}
";

/// How a reconcile ends.
#[derive(Debug)]
enum Then {
    AwaitChange,
    After(Duration),
    Soon,
}

/// One reconcile of a fresh resource.
struct Case {
    name: &'static str,
    resource: &'static str,
    /// A Secret at the synced Secret's name before the reconcile.
    existing: Option<Value>,
    /// A store secret made before the reconcile, claimed by another resource.
    claimed_by_other: bool,
    creates_missing: bool,
    ready: (&'static str, &'static str),
    /// The requests that change something, in order.
    writes: &'static [&'static str],
    versions: usize,
    then: Then,
    events: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "a new COMMON resource gets a store secret, its Secret and Ready",
            resource: COMMON,
            existing: None,
            claimed_by_other: false,
            creates_missing: true,
            ready: ("True", "Synced"),
            writes: &[
                "POST /api/v1/namespaces/shop/secrets",
                "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/api/status",
            ],
            versions: 1,
            then: Then::Soon,
            events: &["Rotated"],
        },
        Case {
            name: "an invalid spec is a condition, and nothing else is touched",
            resource: "
metadata: {name: api}
spec:
  secretType: COMMON
  rotation: {}
  target: {name: api}
",
            existing: None,
            claimed_by_other: false,
            creates_missing: true,
            ready: ("False", "InvalidSpec"),
            writes: &[
                "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/api/status",
            ],
            versions: 0,
            then: Then::AwaitChange,
            events: &["InvalidSpec"],
        },
        Case {
            name: "a store secret outside the namespace is forbidden by the gate",
            resource: "
metadata: {name: api}
spec:
  secretType: COMMON
  secretName: billing.api
  rotation: {period: 30d}
  target: {name: api}
",
            existing: None,
            claimed_by_other: false,
            creates_missing: true,
            ready: ("False", "Forbidden"),
            writes: &[
                "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/api/status",
            ],
            versions: 0,
            then: Then::AwaitChange,
            events: &["Forbidden"],
        },
        Case {
            name: "a Secret someone else made is never written",
            resource: COMMON,
            existing: Some(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api", "namespace": NS}, "data": {"k": "dmFsdWU="}}),
            ),
            claimed_by_other: false,
            creates_missing: true,
            ready: ("False", "SecretNotOwned"),
            writes: &[
                "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/api/status",
            ],
            versions: 0,
            then: Then::After(Duration::from_secs(30)),
            events: &["SecretNotOwned"],
        },
        Case {
            name: "another resource's store secret is not taken",
            resource: COMMON,
            existing: None,
            claimed_by_other: true,
            creates_missing: true,
            ready: ("False", "StoreSecretClaimed"),
            writes: &[
                "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/api/status",
            ],
            versions: 1,
            then: Then::AwaitChange,
            events: &["StoreSecretClaimed"],
        },
        Case {
            name: "the csms backend never creates a missing store secret",
            resource: COMMON,
            existing: None,
            claimed_by_other: false,
            creates_missing: false,
            ready: ("False", "SecretNotFound"),
            writes: &[
                "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/api/status",
            ],
            versions: 0,
            then: Then::After(Duration::from_secs(60)),
            events: &["SecretNotFound"],
        },
        Case {
            name: "a database account without an administrator needs its current password",
            resource: "
metadata: {name: orders}
spec:
  secretType: RDS-FG
  rotation: {period: 30d}
  database: {serverRef: {name: orders-pg}, mode: SingleUser, username: orders_app}
  target: {name: orders}
",
            existing: None,
            claimed_by_other: false,
            creates_missing: true,
            ready: ("False", "NeedsInitialPassword"),
            writes: &[
                "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/orders/status",
            ],
            versions: 0,
            then: Then::Soon,
            events: &["RotationFailed"],
        },
        Case {
            name: "a server that does not serve the namespace is refused before anything is stored",
            resource: "
metadata: {name: orders}
spec:
  secretType: RDS-FG
  rotation: {period: 30d}
  database: {serverRef: {name: billing-pg}, username: orders_app}
  target: {name: orders}
",
            existing: None,
            claimed_by_other: false,
            creates_missing: true,
            ready: ("False", "Forbidden"),
            writes: &[
                "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/orders/status",
            ],
            versions: 0,
            then: Then::AwaitChange,
            events: &["Forbidden"],
        },
        Case {
            name: "an account the server's patterns do not allow is refused before anything is stored",
            resource: "
metadata: {name: orders}
spec:
  secretType: RDS-FG
  rotation: {period: 30d}
  database: {serverRef: {name: orders-pg}, username: postgres}
  target: {name: orders}
",
            existing: None,
            claimed_by_other: false,
            creates_missing: true,
            ready: ("False", "Forbidden"),
            writes: &[
                "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/orders/status",
            ],
            versions: 0,
            then: Then::AwaitChange,
            events: &["Forbidden"],
        },
        Case {
            name: "a server that does not exist is looked for again",
            resource: "
metadata: {name: orders}
spec:
  secretType: RDS-FG
  rotation: {period: 30d}
  database: {serverRef: {name: nowhere, kind: DatabaseServer}, username: orders_app}
  target: {name: orders}
",
            existing: None,
            claimed_by_other: false,
            creates_missing: true,
            ready: ("False", "ServerNotFound"),
            writes: &[
                "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/orders/status",
            ],
            versions: 0,
            then: Then::After(Duration::from_secs(60)),
            events: &["ServerNotFound"],
        },
    ]
}

#[tokio::test]
async fn one_reconcile_of_a_fresh_resource() {
    for case in cases() {
        let mut h = Harness::new(case.resource, case.creates_missing);
        if let Some(s) = &case.existing {
            h.fake.put(&format!("{SECRETS}/api"), s.clone());
        }
        if case.claimed_by_other {
            let req = CreateSecret {
                name: "shop.api".into(),
                secret_type: Some("COMMON".into()),
                description: Some(crate::controller::claim::description(
                    NS,
                    "api",
                    "uid-other",
                )),
                secret_string: Some(
                    secret_rotator_core::secret_value::SecretValue::from_str_value(
                        "a-value-of-someone-else",
                    ),
                ),
                ..CreateSecret::default()
            };
            h.store.create_secret("default", req).await.unwrap();
        }
        let action = h
            .reconcile()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let (status, reason) = h.ready();
        assert_eq!(
            (status.as_str(), reason.as_str()),
            case.ready,
            "{}",
            case.name
        );
        assert_eq!(h.fake.take_writes(), case.writes, "{}", case.name);
        assert_eq!(h.versions().await, case.versions, "{}", case.name);
        assert_eq!(h.event_reasons(), case.events, "{}", case.name);
        match case.then {
            Then::AwaitChange => assert_eq!(action, KubeAction::await_change(), "{}", case.name),
            Then::After(d) => assert_eq!(action, KubeAction::requeue(d), "{}", case.name),
            Then::Soon => assert_ne!(action, KubeAction::await_change(), "{}", case.name),
        }
        // No value of the store reaches the status.
        let status = h.status().to_string();
        for v in h.values().await {
            assert!(!status.contains(&v), "{}: a value in the status", case.name);
        }
    }
}

#[tokio::test]
async fn a_steady_resource_makes_no_request_and_no_store_change() {
    let h = Harness::new(COMMON, true);
    h.reconcile().await.unwrap();
    h.fake.take_requests();
    let action = h.reconcile().await.unwrap();
    assert_eq!(
        h.fake.take_requests(),
        Vec::<String>::new(),
        "the Secret comes from the operator's own apply, the status is unchanged"
    );
    assert_eq!(h.versions().await, 1);
    assert_ne!(action, KubeAction::await_change());
}

#[tokio::test]
async fn rotate_now_records_its_intent_then_rotates_once() {
    let mut h = Harness::new(COMMON, true);
    h.reconcile().await.unwrap();
    h.fake.take_requests();
    h.event_reasons();
    h.annotate(ANNOTATION_ROTATE_NOW, "first");
    h.reconcile().await.unwrap();
    assert_eq!(
        h.fake.take_writes(),
        [
            "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/api/status",
            "PATCH /api/v1/namespaces/shop/secrets/api",
            "PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/api/status",
        ],
        "the intent, the Secret, the status"
    );
    assert_eq!(h.versions().await, 2);
    assert_eq!(h.status()["lastRotateNow"], "first");
    assert!(h.status().get("pendingRotateNow").is_none());
    assert_eq!(h.status()["versionId"], "v2");
    assert_eq!(h.event_reasons(), ["Rotated"]);
    // The same annotation again: handled already.
    h.reconcile().await.unwrap();
    assert_eq!(h.fake.take_writes(), Vec::<String>::new());
    assert_eq!(h.versions().await, 2);
}

#[tokio::test]
async fn rollback_moves_back_once_and_counts_the_period_from_then() {
    let mut h = Harness::new(COMMON, true);
    h.reconcile().await.unwrap();
    h.annotate(ANNOTATION_ROTATE_NOW, "first");
    h.reconcile().await.unwrap();
    assert_eq!(h.current().await, "v2");
    h.event_reasons();
    h.annotate(ANNOTATION_ROLLBACK_TO, "v1");
    h.reconcile().await.unwrap();
    assert_eq!(h.current().await, "v1");
    let st = h.status();
    assert_eq!(st["lastRollback"]["result"], "Done", "{st}");
    assert_eq!(st["versionId"], "v1");
    assert_eq!(h.ready(), ("True".into(), "Synced".into()));
    let next: jiff::Timestamp = st["nextRotationTime"].as_str().unwrap().parse().unwrap();
    let in_days = next.duration_since(jiff::Timestamp::now()).as_hours() / 24;
    assert_eq!(
        in_days, 29,
        "30 days from the rollback, not from v1's creation: {next}"
    );
    let secret = h.fake.get(&format!("{SECRETS}/api")).unwrap();
    assert_eq!(
        secret["metadata"]["annotations"]["secretrotator.dev/version-id"],
        "v1"
    );
    assert_eq!(h.event_reasons(), ["RolledBack", "Synced"]);
    // Handled once.
    h.fake.take_writes();
    h.reconcile().await.unwrap();
    assert_eq!(h.fake.take_writes(), Vec::<String>::new());
    assert_eq!(h.versions().await, 2);
}

#[tokio::test]
async fn rollbacks_that_cannot_be_done_change_nothing_but_the_record() {
    let mut h = Harness::new(COMMON, true);
    h.reconcile().await.unwrap();
    h.event_reasons();
    for (request, says) in [
        ("latest", "is not a version id"),
        ("v1", "already SYSCURRENT"),
        ("v9", "does not hold version v9"),
    ] {
        h.annotate(ANNOTATION_ROLLBACK_TO, request);
        h.reconcile().await.unwrap();
        let st = h.status();
        assert_eq!(st["lastRollback"]["result"], "Refused", "{request}: {st}");
        let message = st["lastRollback"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{request}: {message}");
        assert_eq!(h.current().await, "v1");
        assert_eq!(h.event_reasons(), ["RollbackRefused"], "{request}");
    }
    assert_eq!(h.versions().await, 1);
}

#[tokio::test]
async fn a_status_write_the_apiserver_refuses_is_retried_as_a_kube_error() {
    let h = Harness::new(COMMON, true);
    h.fake.refuse_status(500);
    let err = h.reconcile().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Kube, "{err}");
    assert!(
        err.to_string().contains("writing the status of shop/api"),
        "{err}"
    );
    // The store secret and the Secret were written; the next attempt finds them and only writes the status.
    assert_eq!(h.versions().await, 1);
    h.fake.0.lock().unwrap().refuse_status = None;
    h.fake.take_writes();
    h.reconcile().await.unwrap();
    assert_eq!(
        h.fake.take_writes(),
        ["PATCH /apis/secretrotator.dev/v1alpha1/namespaces/shop/secretrotations/api/status"]
    );
    assert_eq!(
        h.versions().await,
        1,
        "no second value for the same resource"
    );
}

#[tokio::test]
async fn a_secret_the_apiserver_refuses_is_a_condition_looked_at_again_later() {
    let mut h = Harness::new(COMMON, true);
    h.fake.refuse_secrets(422);
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, KubeAction::requeue(Duration::from_secs(300)));
    assert_eq!(h.ready(), ("False".into(), "SecretRejected".into()));
    assert_eq!(h.event_reasons(), ["SecretRejected"]);
    let message = h.status()["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    for v in h.values().await {
        assert!(!message.contains(&v));
    }
}

#[tokio::test]
async fn a_rotate_now_right_after_a_change_waits_for_the_minimum_gap() {
    let mut h = Harness::with_gap(COMMON, true, Duration::from_secs(3600));
    h.reconcile().await.unwrap();
    h.event_reasons();
    h.annotate(ANNOTATION_ROTATE_NOW, "too-soon");
    let action = h.reconcile().await.unwrap();
    assert_eq!(h.versions().await, 1, "no rotation");
    let st = h.status();
    let rotating = st["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Rotating"))
        .cloned()
        .unwrap();
    assert_eq!(rotating["reason"], "RateLimited", "{st}");
    assert!(
        rotating["message"]
            .as_str()
            .unwrap()
            .contains("--min-rotation-period")
    );
    assert!(
        st.get("lastRotateNow").is_none(),
        "the request stays to be done"
    );
    assert_ne!(action, KubeAction::await_change());
    h.annotate(ANNOTATION_ROLLBACK_TO, "v1");
    h.reconcile().await.unwrap();
    assert!(
        h.status().get("lastRollback").is_none() || h.status()["lastRollback"]["result"] != "Done"
    );
}

/// A Secret made by someone else between the operator's look and its write is not taken over: created
/// meanwhile (the create meets AlreadyExists), or deleted and made again (the UID precondition fails).
#[tokio::test]
async fn a_secret_made_in_the_gap_is_not_taken_over() {
    let mut h = Harness::new(COMMON, true);
    h.reconcile().await.unwrap();
    h.annotate(ANNOTATION_ROTATE_NOW, "after-replace");
    // Someone deletes the synced Secret and makes their own of the same name; the operator's own record
    // of its write still shows the old one.
    let theirs = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api", "namespace": NS, "uid": "someone-elses"}, "data": {"k": "dGhlaXJz"}});
    h.fake.delete(&format!("{SECRETS}/api"));
    h.fake
        .0
        .lock()
        .unwrap()
        .objects
        .insert(format!("{SECRETS}/api"), theirs.clone());
    h.event_reasons();
    h.reconcile().await.unwrap();
    let secret = h.fake.get(&format!("{SECRETS}/api")).unwrap();
    assert_eq!(secret["metadata"]["uid"], "someone-elses");
    assert_eq!(secret["data"], theirs["data"], "their Secret is unchanged");
    assert_eq!(h.ready(), ("False".into(), "SecretNotOwned".into()));
    assert_eq!(h.event_reasons(), ["SecretNotOwned"]);
    assert_eq!(
        h.versions().await,
        2,
        "the store rotated; only the write of their Secret was refused"
    );
}

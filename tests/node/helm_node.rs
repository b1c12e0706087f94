//! The operator as its users run it: its own image on a real node (containerd, runc, kubelet), installed
//! with the real helm, talking to the apiserver with its ServiceAccount token; and the GitOps path
//! (`helm template` + `kubectl apply`, as Argo CD and Flux do).
//!
//! Needs root and `scripts/testenv install` (containerd, runc, the CNI plugins, kubelet and friends);
//! a missing piece fails with what to do. scripts/test starts one node for these tests
//! (`SECRET_ROTATOR_NODE_STATE`) and builds the image first (`SECRET_ROTATOR_IMAGE`).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::helm::chart;
use crate::support::node::{container_pid, load_image, node, node_logs};
use crate::support::operator::*;
use crate::support::{TestNamespace, client, install_crd, kubectl, kubectl_ok, repo_root};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

fn helm_ok(args: &[&str]) -> String {
    crate::support::helm::helm_ok(&node().kubeconfig, args)
}

fn kubectl_stdin(args: &[&str], input: &str) -> String {
    crate::support::helm::kubectl_stdin(&node().kubeconfig, args, input)
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&kubectl_ok(&a)).expect("kubectl printed JSON")
}

/// Waits for a Ready pod matching `selector` whose name is not in `not`; returns its name.
async fn wait_pod_ready(ns: &str, selector: &str, not: &[String], secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let pods = json(&["get", "pods", "-n", ns, "-l", selector]);
        for p in pods["items"].as_array().into_iter().flatten() {
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready && p["metadata"]["deletionTimestamp"].is_null() && !not.contains(&name) {
                return name;
            }
        }
        if Instant::now() > deadline {
            let describe = kubectl(&["describe", "pods", "-n", ns, "-l", selector]);
            panic!(
                "no Ready pod for {selector} in {ns} within {secs}s:\n{}\n{}",
                String::from_utf8_lossy(&describe.stdout),
                node_logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn pod_logs(ns: &str, pod: &str) -> String {
    kubectl_ok(&["logs", "-n", ns, pod])
}

/// The container's process as the node runs it: uid, capabilities, seccomp, no_new_privs, root mount.
fn process_facts(ns: &str, pod: &str) -> (String, String, String, String, String) {
    let p = json(&["get", "pod", "-n", ns, pod]);
    let id = p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .expect("a container id");
    let pid = container_pid(id);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mountinfo =
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("/proc/PID/mountinfo");
    let root_opts = mountinfo
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(4) == Some(&"/")).then(|| f.get(5).copied().unwrap_or_default().to_owned())
        })
        .unwrap_or_default();
    (
        field("Uid"),
        field("CapEff"),
        field("Seccomp"),
        field("NoNewPrivs"),
        root_opts,
    )
}

/// The key_id the operator logged when it opened the store (a public id of the master key).
fn opened_key_id(logs: &str) -> Option<String> {
    logs.lines()
        .filter(|l| l.contains("opened the embedded store"))
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["fields"]["key_id"]
                .as_str()
                .or_else(|| v["key_id"].as_str())
                .map(str::to_owned)
        })
}

fn restart_target_yaml(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: app\n        image: {image}\n        imagePullPolicy: Never\n        command: [/bin/sleep, \"3600\"]\n        securityContext: {{runAsUser: 65532, runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {{drop: [ALL]}}}}\n"
    )
}

#[tokio::test]
async fn helm_install_runs_the_operator_pod_end_to_end() {
    let started = Instant::now();
    let node = node();
    let image = load_image("operator");
    let busybox = load_image("busybox");
    let c = client().await;
    // The CRD first, so that the two tests here do not race to create it (helm skips an existing one).
    install_crd(&c).await;
    let rel_ns = TestNamespace::new(&c, "sr-system").await;
    let app_ns = TestNamespace::new(&c, "sr-shop").await;
    let ns = rel_ns.name.as_str();
    let release = "rotator";
    let selector = "app.kubernetes.io/instance=rotator";

    // The chart unchanged, with values a user sets; the image is the chart's default reference.
    helm_ok(&[
        "install",
        release,
        &chart(),
        "--namespace",
        ns,
        "--set",
        &format!(
            "watchNamespace={},logLevel=info,concurrency=2,leaderElection.leaseDurationSeconds=10,minRotationPeriod=1s",
            app_ns.name
        ),
    ]);
    let deploy = json(&["get", "deployment", "-n", ns, "rotator-secret-rotator"]);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default(),
        image,
        "the chart's default image is what scripts/image builds"
    );
    let pod1 = wait_pod_ready(ns, selector, &[], 240).await;
    eprintln!("operator pod {pod1} Ready after {:?}", started.elapsed());

    // As the node runs it: uid 65532, no capabilities, seccomp filter, no_new_privs, read-only root.
    let (uid, cap_eff, seccomp, nnp, root) = process_facts(ns, &pod1);
    assert!(uid.starts_with("65532 65532"), "Uid: {uid}");
    assert_eq!(cap_eff, "0000000000000000", "CapEff");
    assert_eq!(seccomp, "2", "Seccomp (2: filter, RuntimeDefault)");
    assert_eq!(nnp, "1", "NoNewPrivs");
    assert!(
        root.split(',').any(|o| o == "ro"),
        "root filesystem mount options: {root}"
    );

    // The master key Secret, created by the operator itself at its first start.
    let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
    let key_name = "rotator-secret-rotator-master-key";
    let key1 = secrets
        .get(key_name)
        .await
        .expect("the operator created the master key Secret")
        .data
        .expect("data")["master.key"]
        .0
        .clone();
    let logs1 = pod_logs(ns, &pod1);
    assert!(
        logs1.contains("created the master key Secret"),
        "first start creates the key:\n{logs1}"
    );
    let key_id = opened_key_id(&logs1).expect("the operator logged the store it opened");

    // The store on the PVC: a host directory of the node's default StorageClass.
    let pvc = json(&["get", "pvc", "-n", ns, "rotator-secret-rotator-store"]);
    assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
    let pv_name = pvc["spec"]["volumeName"].as_str().expect("a bound volume");
    let pv = json(&["get", "pv", pv_name]);
    let host_dir = pv["spec"]["hostPath"]["path"].as_str().expect("a hostPath");
    let store_file = std::path::Path::new(host_dir).join("store.redb");
    let meta = std::fs::metadata(&store_file).expect("the store file is on the PVC");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        65532,
        "written by uid 65532"
    );

    // In-cluster configuration with the ServiceAccount token: the apiserver's audit log names the
    // ServiceAccount, calling from the pod network.
    let audit = std::fs::read_to_string(node.state.join("audit.log")).expect("the audit log");
    let sa_user = format!("system:serviceaccount:{ns}:rotator-secret-rotator");
    let from_pod = audit.lines().any(|l| {
        l.contains(&format!("\"username\":\"{sa_user}\""))
            && l.contains("\"sourceIPs\":[\"10.244.0.")
    });
    assert!(
        from_pod,
        "no request as {sa_user} from the pod network in the audit log"
    );

    // The COMMON example as written, in the application namespace.
    let app = app_ns.name.as_str();
    let example = std::fs::read_to_string(repo_root().join("examples/common-api-key.yaml"))
        .expect("the example");
    kubectl_stdin(&["apply", "-n", app, "-f", "-"], &example);
    let sr = wait_ready(&c, app, "payments-api-key", "True", "Synced", 120).await;
    let status = sr.status.expect("status");
    assert_eq!(status.version_id.as_deref(), Some("v1"));
    let synced = get_secret(&c, app, "payments-api-key")
        .await
        .expect("the synced Secret");
    let value1 = secret_text(&synced, "api-key");
    assert_eq!(value1.len(), 40, "the example asks for 40 characters");

    // A restart target: a real Deployment of the busybox image; a rotation rolls its pods.
    kubectl_stdin(
        &["apply", "-n", app, "-f", "-"],
        &restart_target_yaml("payments-api", &busybox),
    );
    let app_pod1 = wait_pod_ready(app, "app=payments-api", &[], 120).await;
    let rs_before = json(&["get", "replicasets", "-n", app, "-l", "app=payments-api"]);
    assert_eq!(rs_before["items"].as_array().map(Vec::len), Some(1));
    kubectl_ok(&[
        "patch",
        "srot",
        "payments-api-key",
        "-n",
        app,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"restartTargets":[{"kind":"Deployment","name":"payments-api"}]}}"#,
    ]);
    annotate(
        &c,
        app,
        "payments-api-key",
        "secretrotator.dev/rotate-now",
        "1",
    )
    .await;
    let sr = wait_version(&c, app, "payments-api-key", "v2", 60).await;
    let rotated_at = sr
        .status
        .as_ref()
        .and_then(|s| s.last_rotation_time.clone())
        .expect("lastRotationTime");
    let app_pod2 = wait_pod_ready(
        app,
        "app=payments-api",
        std::slice::from_ref(&app_pod1),
        120,
    )
    .await;
    let rs_after = json(&["get", "replicasets", "-n", app, "-l", "app=payments-api"]);
    assert_eq!(
        rs_after["items"].as_array().map(Vec::len),
        Some(2),
        "a new ReplicaSet"
    );
    eventually(60, "the old restart target pod to go", || async {
        let pods = json(&["get", "pods", "-n", app, "-l", "app=payments-api"]);
        let names: Vec<String> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        (!names.contains(&app_pod1)).then_some(())
    })
    .await;
    let synced2 = get_secret(&c, app, "payments-api-key")
        .await
        .expect("synced");
    let value2 = secret_text(&synced2, "api-key");
    assert_ne!(value1, value2, "the rotation changed the value");
    eprintln!("restart target rolled: {app_pod1} -> {app_pod2}");

    // The operator pod deleted: the replacement opens the same store with the same key and rotates
    // nothing.
    kubectl_ok(&["delete", "pod", "-n", ns, &pod1, "--wait=true"]);
    let pod2 = wait_pod_ready(ns, selector, std::slice::from_ref(&pod1), 240).await;
    eventually(60, "the replacement to open the store", || async {
        opened_key_id(&pod_logs(ns, &pod2)).map(|_| ())
    })
    .await;
    let logs2 = pod_logs(ns, &pod2);
    assert_eq!(
        opened_key_id(&logs2).as_deref(),
        Some(key_id.as_str()),
        "same key"
    );
    assert!(!logs2.contains("created the master key Secret"), "{logs2}");
    // Let the replacement reconcile, then nothing may have rotated.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let sr = wait_ready(&c, app, "payments-api-key", "True", "Synced", 60).await;
    let s = sr.status.expect("status");
    assert_eq!(s.version_id.as_deref(), Some("v2"), "no extra rotation");
    assert_eq!(s.last_rotation_time, Some(rotated_at.clone()));
    assert_eq!(
        secret_text(
            &get_secret(&c, app, "payments-api-key")
                .await
                .expect("synced"),
            "api-key"
        ),
        value2
    );

    // helm upgrade with a changed value: a new operator pod, the same key and store.
    helm_ok(&[
        "upgrade",
        release,
        &chart(),
        "--namespace",
        ns,
        "--reuse-values",
        "--set",
        "concurrency=3",
    ]);
    let pod3 = wait_pod_ready(ns, selector, &[pod1.clone(), pod2.clone()], 240).await;
    let args = json(&["get", "pod", "-n", ns, &pod3])["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--concurrency=3"), "{args}");
    let key3 = secrets
        .get(key_name)
        .await
        .expect("key Secret")
        .data
        .expect("data")["master.key"]
        .0
        .clone();
    assert!(key1 == key3, "the master key changed on upgrade");
    annotate(
        &c,
        app,
        "payments-api-key",
        "secretrotator.dev/rotate-now",
        "2",
    )
    .await;
    wait_version(&c, app, "payments-api-key", "v3", 60).await;
    let logs3 = pod_logs(ns, &pod3);
    assert_eq!(opened_key_id(&logs3).as_deref(), Some(key_id.as_str()));

    // No secret value in any log.
    let value3 = secret_text(
        &get_secret(&c, app, "payments-api-key")
            .await
            .expect("synced"),
        "api-key",
    );
    let key_text = String::from_utf8(key1).expect("key text");
    for (pod, logs) in [(&pod1, &logs1), (&pod2, &logs2), (&pod3, &logs3)] {
        for v in [&value1, &value2, &value3, &key_text] {
            assert!(
                !logs.contains(v.trim()),
                "a secret value in the log of {pod}"
            );
        }
    }
    eprintln!("helm node test passed in {:?}", started.elapsed());
}

#[tokio::test]
async fn gitops_template_and_apply_twice_keep_the_key_and_the_store() {
    let started = Instant::now();
    node();
    load_image("operator");
    let c = client().await;
    install_crd(&c).await;
    let rel_ns = TestNamespace::new(&c, "sr-gitops").await;
    let app_ns = TestNamespace::new(&c, "sr-team").await;
    let ns = rel_ns.name.as_str();
    let app = app_ns.name.as_str();
    let selector = "app.kubernetes.io/instance=gitops";

    // As Argo CD renders it: helm template with the chart's default values (but watchNamespace, so that
    // two operators can share this cluster), then kubectl apply.
    let watch = format!("watchNamespace={app},minRotationPeriod=1s");
    let render = || {
        helm_ok(&[
            "template",
            "gitops",
            &chart(),
            "--namespace",
            ns,
            "--include-crds",
            "--set",
            &watch,
        ])
    };
    let first = render();
    assert!(
        !first.contains("master.key:"),
        "the chart renders no key: a render is the same every time"
    );
    kubectl_stdin(&["apply", "-f", "-"], &first);
    let pod1 = wait_pod_ready(ns, selector, &[], 240).await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
    let key_name = "gitops-secret-rotator-master-key";
    let key1 = secrets
        .get(key_name)
        .await
        .expect("the operator created the key Secret")
        .data
        .expect("data")["master.key"]
        .0
        .clone();
    apply_sr(
        &c,
        app,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: token\nspec:\n  rotation: {period: 30d}\n",
    )
    .await;
    wait_version(&c, app, "token", "v1", 120).await;

    // The next sync: rendered and applied again, then the operator restarts.
    let second = render();
    assert_eq!(
        first, second,
        "two renders of the same chart and values differ"
    );
    let applied = kubectl_stdin(&["apply", "-f", "-"], &second);
    assert!(
        !applied.contains("deployment.apps/gitops-secret-rotator configured"),
        "{applied}"
    );
    kubectl_ok(&["delete", "pod", "-n", ns, &pod1, "--wait=true"]);
    let pod2 = wait_pod_ready(ns, selector, std::slice::from_ref(&pod1), 240).await;
    let key2 = secrets
        .get(key_name)
        .await
        .expect("key")
        .data
        .expect("data")["master.key"]
        .0
        .clone();
    assert!(key1 == key2, "the master key changed across syncs");
    let logs2 = pod_logs(ns, &pod2);
    assert!(
        !logs2.contains("created the master key Secret"),
        "the restarted operator made a new key:\n{logs2}"
    );
    // The store is readable: the resource stays at v1, and a rotation reads and writes it.
    wait_ready(&c, app, "token", "True", "Synced", 60).await;
    annotate(&c, app, "token", "secretrotator.dev/rotate-now", "1").await;
    wait_version(&c, app, "token", "v2", 60).await;
    eprintln!("gitops node test passed in {:?}", started.elapsed());
}

/// `curl` against the in-cluster `serve` (by its pod's address on the node's bridge); returns the body.
fn csms_call(base: &str, token: &str, method: &str, path: &str, body: Option<&str>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-X", method])
        .arg("-H")
        .arg(format!("X-Auth-Token: {token}"))
        .args(["-H", "Content-Type: application/json"]);
    if let Some(b) = body {
        cmd.args(["-d", b]);
    }
    let out = cmd
        .arg(format!("{base}{path}"))
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {method} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lease_holder(ns: &str) -> String {
    let lease = json(&["get", "lease", "-n", ns, "secret-rotator-leader"]);
    lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn csms_backend_in_cluster_two_replicas_fail_over_with_one_rotation() {
    let started = Instant::now();
    node();
    let image = load_image("operator");
    let c = client().await;
    install_crd(&c).await;
    let rel_ns = TestNamespace::new(&c, "sr-csms").await;
    let app_ns = TestNamespace::new(&c, "sr-csms-app").await;
    let ns = rel_ns.name.as_str();
    let app = app_ns.name.as_str();
    let token = format!("tok-{:016x}", rand::random::<u64>());

    // `secret-rotator serve` as a Deployment of the same image, on a PVC of its own.
    let key = secret_rotator_store::embedded::crypto::MasterKey::generate()
        .expect("a key")
        .to_base64();
    kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "serve-files",
        "-n",
        ns,
        &format!("--from-literal=master.key={}", key.as_str()),
        &format!("--from-literal=auth.yaml=tokens:\n- token: {token}\n  projects: [p1]\n"),
    ]);
    kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "csms-credentials",
        "-n",
        ns,
        &format!("--from-literal=auth.yaml=token: {token}\n"),
        &format!("--from-literal=hmac.key={:032x}", rand::random::<u128>()),
    ]);
    let serve = format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: serve-store}}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: csms}}\nspec:\n  replicas: 1\n  strategy: {{type: Recreate}}\n  selector: {{matchLabels: {{app: csms}}}}\n  template:\n    metadata: {{labels: {{app: csms}}}}\n    spec:\n      securityContext: {{runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: {{type: RuntimeDefault}}}}\n      containers:\n      - name: serve\n        image: {image}\n        imagePullPolicy: IfNotPresent\n        args: [serve, --store-path=/data/store.redb, --master-key-file=/etc/serve/master.key, --auth-file=/etc/serve/auth.yaml, --listen=0.0.0.0:8443]\n        ports: [{{containerPort: 8443}}]\n        readinessProbe: {{tcpSocket: {{port: 8443}}, periodSeconds: 2}}\n        securityContext: {{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {{drop: [ALL]}}}}\n        volumeMounts: [{{name: data, mountPath: /data}}, {{name: files, mountPath: /etc/serve, readOnly: true}}]\n      volumes:\n      - {{name: data, persistentVolumeClaim: {{claimName: serve-store}}}}\n      - {{name: files, secret: {{secretName: serve-files, defaultMode: 0440}}}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: csms}}\nspec:\n  selector: {{app: csms}}\n  ports: [{{port: 8443, targetPort: 8443}}]\n"
    );
    kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &serve);
    let serve_pod = wait_pod_ready(ns, "app=csms", &[], 180).await;
    let ip = json(&["get", "pod", "-n", ns, &serve_pod])["status"]["podIP"]
        .as_str()
        .expect("a pod IP")
        .to_owned();
    let base = format!("http://{ip}:8443/v1/p1");
    let store_name = format!("{app}.api");
    let created = csms_call(
        &base,
        &token,
        "POST",
        "/secrets",
        Some(&format!(
            r#"{{"name": "{store_name}", "secret_string": "first"}}"#
        )),
    );
    assert!(created.contains(&store_name), "{created}");

    // The operator on the csms backend (by the Service's name), two replicas, a short lease.
    helm_ok(&[
        "install",
        "csms-op",
        &chart(),
        "--namespace",
        ns,
        "--set",
        &format!(
            "store.type=csms,store.csms.endpoint=http://csms.{ns}.svc:8443,store.csms.projectId=p1,store.csms.credentialsSecret=csms-credentials,replicaCount=2,leaderElection.leaseDurationSeconds=6,watchNamespace={app},minRotationPeriod=1s"
        ),
    ]);
    let selector = "app.kubernetes.io/instance=csms-op";
    let a = wait_pod_ready(ns, selector, &[], 240).await;
    let b = wait_pod_ready(ns, selector, std::slice::from_ref(&a), 240).await;
    apply_sr(
        &c,
        app,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: api\nspec:\n  rotation: {period: 30d}\n",
    )
    .await;
    let sr = wait_ready(&c, app, "api", "True", "Synced", 120).await;
    let v_before = sr.status.and_then(|s| s.version_id).expect("a version");
    let count = |body: &str| -> usize {
        let v: serde_json::Value = serde_json::from_str(body).expect("versions JSON");
        v["version_metadatas"].as_array().map_or(0, Vec::len)
    };
    let n_before = count(&csms_call(
        &base,
        &token,
        "GET",
        &format!("/secrets/{store_name}/versions"),
        None,
    ));

    // One rotation due (rotate-now), and the leader killed at once, without a chance to hand over.
    let holder = lease_holder(ns);
    let leader = [&a, &b]
        .into_iter()
        .find(|p| holder.starts_with(p.as_str()))
        .unwrap_or_else(|| panic!("the lease holder {holder} is neither {a} nor {b}"))
        .clone();
    let standby = if leader == a { b.clone() } else { a.clone() };
    annotate(&c, app, "api", "secretrotator.dev/rotate-now", "1").await;
    let killed = Instant::now();
    kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        ns,
        &leader,
        "--grace-period=0",
        "--force",
    ]);
    // The standby, or the ReplicaSet's replacement pod if it starts first: whichever acquires the lease.
    let (took_over, new_holder) = eventually(60, "another replica to take the lease", || async {
        let h = lease_holder(ns);
        (!h.is_empty() && !h.starts_with(leader.as_str())).then(|| (killed.elapsed(), h))
    })
    .await;
    eprintln!(
        "{new_holder} took the lease {took_over:?} after the leader {leader} was killed (standby: {standby})"
    );
    assert!(
        took_over <= Duration::from_secs(6 + 4),
        "the takeover took {took_over:?}, the lease lasts 6 s"
    );
    let sr = eventually(60, "one rotation", || async {
        let sr = get_sr(&c, app, "api").await;
        let st = sr.status.clone()?;
        (st.version_id != Some(v_before.clone()) && st.last_rotate_now.as_deref() == Some("1"))
            .then_some(sr)
    })
    .await;
    // Let everything settle (the replacement pod joins as standby), then count versions in the store.
    wait_pod_ready(ns, selector, &[leader.clone(), standby.clone()], 240).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let n_after = count(&csms_call(
        &base,
        &token,
        "GET",
        &format!("/secrets/{store_name}/versions"),
        None,
    ));
    assert_eq!(
        n_after,
        n_before + 1,
        "exactly one rotation for one rotate-now (status {:?})",
        sr.status.map(|s| s.version_id)
    );
    let new_pod = new_holder
        .rsplit_once('-')
        .map(|(pod, _)| pod.to_owned())
        .expect("identity <pod>-<suffix>");
    let logs = pod_logs(ns, &new_pod);
    assert!(logs.contains("became the leader"), "{logs}");
    eprintln!("csms node test passed in {:?}", started.elapsed());
}

/// Forwards TCP from `listen` (an address on the node's bridge) to `target` on loopback, for as long as
/// the test runs: the test PostgreSQL listens on loopback only, and pods reach the host on the bridge.
async fn forward(listen: &str, target: std::net::SocketAddr) -> u16 {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .expect("binding the forwarder on the bridge");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgresql_example_from_the_pod_network() {
    let started = Instant::now();
    node();
    load_image("operator");
    let c = client().await;
    install_crd(&c).await;
    let rel_ns = TestNamespace::new(&c, "sr-pg").await;
    let app_ns = TestNamespace::new(&c, "sr-pg-shop").await;
    let ns = rel_ns.name.as_str();
    let app = app_ns.name.as_str();

    // A test PostgreSQL (password authentication), reached from pods through a Service named as in the
    // example (orders-db.<namespace>.svc) whose endpoint is the bridge's gateway.
    let pg = crate::support::db::Postgres::start();
    let initial = format!("orders-initial-{:08x}", rand::random::<u32>());
    pg.admin_sql(&format!(
        "CREATE ROLE orders_app LOGIN PASSWORD '{initial}'"
    ))
    .await;
    pg.admin_sql("CREATE DATABASE orders OWNER orders_app")
        .await;
    let port = forward(
        "10.244.0.1:0",
        std::net::SocketAddr::from(([127, 0, 0, 1], pg.port)),
    )
    .await;
    kubectl_stdin(
        &["apply", "-n", app, "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: orders-db}}\nspec:\n  ports: [{{port: 5432, targetPort: {port}}}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: orders-db}}\nsubsets: [{{addresses: [{{ip: 10.244.0.1}}], ports: [{{port: {port}}}]}}]\n"
        ),
    );
    kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "orders-db-admin",
        "-n",
        app,
        "--from-literal=username=admin",
        &format!(
            "--from-literal=password={}",
            crate::support::db::ADMIN_PASSWORD
        ),
    ]);
    let busybox = load_image("busybox");
    kubectl_stdin(
        &["apply", "-n", app, "-f", "-"],
        &restart_target_yaml("orders-api", &busybox),
    );
    let api_pod1 = wait_pod_ready(app, "app=orders-api", &[], 120).await;

    helm_ok(&[
        "install",
        "pg-op",
        &chart(),
        "--namespace",
        ns,
        "--set",
        &format!("watchNamespace={app}"),
    ]);
    wait_pod_ready(ns, "app.kubernetes.io/instance=pg-op", &[], 240).await;

    // The example as written, but the host's and the server's namespace (the test's), TLS (the test server
    // has none) and a server name of the test's own (servers are cluster-scoped).
    let example = std::fs::read_to_string(repo_root().join("examples/postgresql-single-user.yaml"))
        .expect("the example")
        .replace(
            "host: orders-db.shop.svc",
            &format!("host: orders-db.{app}.svc"),
        )
        .replace("mode: require", "mode: disable")
        .replace("namespace: shop", &format!("namespace: {app}"))
        .replace("names: [shop]", &format!("names: [{app}]"))
        .replace("name: orders-pg", &format!("name: orders-pg-{app}"));
    kubectl_stdin(&["apply", "-n", app, "-f", "-"], &example);
    let sr = wait_ready(&c, app, "orders-db", "True", "Synced", 180).await;
    let version = sr.status.and_then(|s| s.version_id).expect("a version");
    let synced = get_secret(&c, app, "orders-db")
        .await
        .expect("the synced Secret");
    let password = secret_text(&synced, "password");
    assert!(
        pg.login("orders_app", &password).await,
        "the synced password logs in"
    );
    assert!(
        !pg.login("orders_app", &initial).await,
        "the initial password no longer logs in"
    );
    // The restart target's pods rolled.
    let api_pod2 =
        wait_pod_ready(app, "app=orders-api", std::slice::from_ref(&api_pod1), 120).await;
    let op_logs = kubectl_ok(&[
        "logs",
        "-n",
        ns,
        "-l",
        "app.kubernetes.io/instance=pg-op",
        "--tail=-1",
    ]);
    assert!(
        !op_logs.contains(&password),
        "a password in the operator's log"
    );
    eprintln!(
        "postgresql example at {version} through orders-db.{app}.svc; orders-api {api_pod1} -> {api_pod2}; {:?}",
        started.elapsed()
    );
}

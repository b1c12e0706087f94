//! The Helm chart on the local control plane, with the real helm and kubectl.

use crate::support::helm::chart;
use crate::support::operator::*;
use crate::support::{
    TestNamespace, client, client_for, control_plane, install_crd, kubectl, kubectl_ok,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

fn helm(args: &[&str]) -> std::process::Output {
    crate::support::helm::helm(&control_plane().kubeconfig, args)
}

fn helm_ok(args: &[&str]) -> String {
    crate::support::helm::helm_ok(&control_plane().kubeconfig, args)
}

fn kubectl_stdin(args: &[&str], input: &str) -> String {
    crate::support::helm::kubectl_stdin(&control_plane().kubeconfig, args, input)
}

#[test]
fn lint_is_strictly_clean() {
    let out = helm_ok(&["lint", "--strict", &chart()]);
    assert!(out.contains("0 chart(s) failed"), "{out}");
    let csms = helm_ok(&[
        "lint",
        "--strict",
        &chart(),
        "--set",
        "store.type=csms,store.csms.endpoint=https://kms.example.com,store.csms.projectId=p1,store.csms.credentialsSecret=creds",
    ]);
    assert!(csms.contains("0 chart(s) failed"), "{csms}");
    // The schema refuses nonsense.
    let bad = helm(&["lint", "--strict", &chart(), "--set", "store.type=vault"]);
    assert!(!bad.status.success());
}

#[test]
fn a_render_is_the_same_every_time_and_holds_no_key() {
    // GitOps tools render with `helm template` on every sync: a render must not change between syncs,
    // and must carry no master key (the operator creates that Secret once).
    let render = || helm_ok(&["template", "rel", &chart(), "--namespace", "ns1"]);
    let first = render();
    assert_eq!(first, render());
    assert!(!first.contains("master.key:"), "{first}");
    assert!(first.contains("--master-key-secret=rel-secret-rotator-master-key"));
    // The one extra permission it needs: get on that Secret, create in the release namespace.
    assert!(first.contains("resourceNames: [\"rel-secret-rotator-master-key\"]"));
}

#[tokio::test]
async fn template_is_accepted_by_the_apiserver_in_both_modes() {
    let c = client().await;
    install_crd(&c).await;
    let release_ns = TestNamespace::new(&c, "helm-tpl").await;
    let watched = TestNamespace::new(&c, "helm-watched").await;
    for extra in [vec![], vec!["--set".to_owned(), format!("watchNamespace={}", watched.name)], vec!["--set".to_owned(), "store.type=csms,store.csms.endpoint=https://kms.example.com,store.csms.projectId=p1,store.csms.credentialsSecret=creds,metrics.serviceMonitor.enabled=false".to_owned()], vec!["--set".to_owned(), "store.type=csms,store.csms.endpoint=https://kms.example.com,store.csms.projectId=p1,store.csms.credentialsSecret=creds,metrics.serviceMonitor.enabled=false,store.csms.workloadIdentity.enabled=true,store.csms.workloadIdentity.audience=sts.example.com".to_owned()]] {
        let chart = chart();
        let mut args = vec!["template", "rel", chart.as_str(), "--namespace", &release_ns.name];
        args.extend(extra.iter().map(String::as_str));
        let rendered = helm_ok(&args);
        if extra.iter().any(|e| e.contains("workloadIdentity.enabled=true")) {
            // The projected token, with its audience, where the auth file's workload_identity reads it.
            assert!(rendered.contains("serviceAccountToken:"), "{rendered}");
            assert!(rendered.contains("audience: \"sts.example.com\""), "{rendered}");
            assert!(rendered.contains("mountPath: /var/run/secrets/tokens/csms"), "{rendered}");
        } else {
            assert!(!rendered.contains("serviceAccountToken:"), "{rendered}");
        }
        let out = kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &rendered);
        assert!(out.contains("deployment.apps/rel-secret-rotator created (server dry run)"), "{out}");
        let single = extra.iter().any(|e| e.starts_with("watchNamespace"));
        if single {
            assert!(out.contains("role.rbac.authorization.k8s.io/rel-secret-rotator created"), "{out}");
            // No cluster-wide rule on Secrets or workloads: the one ClusterRole the operator is bound to is
            // for the cluster-scoped servers (and namespace labels).
            assert!(!out.contains("clusterrole.rbac.authorization.k8s.io/rel-secret-rotator created"), "{out}");
            // (Another test's release of the same name may have made them already: "configured".)
            let bindings: Vec<&str> = out
                .lines()
                .filter(|l| l.starts_with("clusterrolebinding"))
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            assert_eq!(bindings, ["clusterrolebinding.rbac.authorization.k8s.io/rel-secret-rotator-servers"], "{out}");
        } else {
            assert!(out.contains("clusterrole.rbac.authorization.k8s.io/rel-secret-rotator created"), "{out}");
        }
        // The personas: SecretRotations for `edit`, DatabaseServers for `admin`, nothing aggregated for
        // ClusterDatabaseServers (cluster administrators only).
        for role in ["rel-secret-rotator-edit", "rel-secret-rotator-admin", "rel-secret-rotator-view"] {
            assert!(out.contains(&format!("clusterrole.rbac.authorization.k8s.io/{role} ")), "{out}");
        }
        assert!(!rendered.contains("aggregate-to-cluster-admin"), "{rendered}");
    }
}

#[tokio::test]
async fn install_upgrade_keeps_the_master_key_and_uninstall_keeps_the_data() {
    // With the default values the operator creates the key Secret at its first start (tests/node/helm_node.rs
    // runs that on a node); here the user brings a key Secret of their own.
    let c = client().await;
    let ns = TestNamespace::new(&c, "helm-life").await;
    let name = format!("life{}", &ns.name[ns.name.len() - 6..]);
    let key_name = format!("{name}-own-key");
    let key_text = secret_rotator_store::embedded::crypto::MasterKey::generate()
        .unwrap()
        .to_base64();
    kubectl_ok(&[
        "create",
        "secret",
        "generic",
        &key_name,
        "-n",
        &ns.name,
        &format!("--from-literal=master.key={}", key_text.as_str()),
    ]);
    helm_ok(&[
        "install",
        &name,
        &chart(),
        "--namespace",
        &ns.name,
        "--set",
        &format!("store.embedded.existingMasterKeySecret={key_name}"),
    ]);
    let secrets: Api<Secret> = Api::namespaced(c.clone(), &ns.name);
    let key1 = secrets.get(&key_name).await.unwrap().data.unwrap()["master.key"]
        .0
        .clone();
    let volumes = kubectl_ok(&[
        "get",
        "deployment",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={.items[0].spec.template.spec.volumes}",
    ]);
    assert!(volumes.contains(&key_name), "{volumes}");
    let deploy = kubectl_ok(&[
        "get",
        "deployment",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={.items[0].spec.template.spec.containers[0].securityContext}",
    ]);
    assert!(
        deploy.contains("\"readOnlyRootFilesystem\":true") && deploy.contains("\"drop\":[\"ALL\"]"),
        "{deploy}"
    );
    helm_ok(&[
        "upgrade",
        &name,
        &chart(),
        "--namespace",
        &ns.name,
        "--reuse-values",
        "--set",
        "concurrency=8",
    ]);
    let key2 = secrets.get(&key_name).await.unwrap().data.unwrap()["master.key"]
        .0
        .clone();
    assert_eq!(key1, key2, "the master key changed on upgrade");
    let args = kubectl_ok(&[
        "get",
        "deployment",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={.items[0].spec.template.spec.containers[0].args}",
    ]);
    assert!(args.contains("--concurrency=8"), "{args}");
    helm_ok(&["uninstall", &name, "--namespace", &ns.name]);
    assert!(
        secrets.get_opt(&key_name).await.unwrap().is_some(),
        "the master key is kept on uninstall"
    );
    let pvc = kubectl(&[
        "get",
        "pvc",
        "-n",
        &ns.name,
        &format!("{name}-secret-rotator-store"),
    ]);
    assert!(pvc.status.success(), "the store's PVC is kept on uninstall");
    let dep = kubectl(&[
        "get",
        "deployment",
        "-n",
        &ns.name,
        &format!("{name}-secret-rotator"),
    ]);
    assert!(!dep.status.success(), "the Deployment is gone");
}

#[tokio::test]
async fn the_operator_with_the_charts_single_namespace_rbac() {
    let c = client().await;
    install_crd(&c).await;
    let release = TestNamespace::new(&c, "helm-rbac").await;
    let watched = TestNamespace::new(&c, "helm-team").await;
    let other = TestNamespace::new(&c, "helm-other").await;
    // A release name of this test's own: the chart's cluster-scoped objects are named after it.
    let rel = format!("r{}", &release.name[release.name.len() - 6..]);
    let rendered = helm_ok(&[
        "template",
        &rel,
        &chart(),
        "--namespace",
        &release.name,
        "--set",
        &format!("watchNamespace={}", watched.name),
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
    ]);
    kubectl_stdin(&["apply", "-f", "-"], &rendered);
    // A kubeconfig that impersonates the chart's ServiceAccount.
    let admin = std::fs::read_to_string(&control_plane().kubeconfig).unwrap();
    let token = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_owned();
    let server = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("sa.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: {server}, insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: {token}, as: 'system:serviceaccount:{}:{rel}-secret-rotator'}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n",
            release.name
        ),
    )
    .unwrap();

    // The operator works in the watched namespace with exactly these permissions.
    let files = OperatorFiles::new();
    let _op = Operator::start(
        &kc,
        &files,
        &watched.name,
        &[
            "--leader-election-namespace",
            &release.name,
            "--lease-duration-secs",
            "6",
        ],
        &[],
    );
    apply_sr(&c, &watched.name, "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: api\nspec:\n  rotation: {period: 30d}\n").await;
    wait_ready(&c, &watched.name, "api", "True", "Synced", 60).await;
    annotate(
        &c,
        &watched.name,
        "api",
        "secretrotator.dev/rotate-now",
        "1",
    )
    .await;
    wait_version(&c, &watched.name, "api", "v2", 30).await;
    assert!(get_secret(&c, &watched.name, "api").await.is_some());

    // The same identity is refused Secrets in another namespace.
    let sa = client_for(&kc).await;
    let err = Api::<Secret>::namespaced(sa.clone(), &other.name)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(e) if e.code == 403),
        "{err:?}"
    );
    let err = Api::<Secret>::namespaced(sa, &other.name)
        .get("anything")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(e) if e.code == 403),
        "{err:?}"
    );
}

/// The two personas in RBAC, on the real apiserver with its ClusterRole aggregation: a tenant with the
/// built-in `edit` role in its namespace may write SecretRotations but not DatabaseServers; the namespace's
/// `admin` may write DatabaseServers; neither may write ClusterDatabaseServers.
#[tokio::test]
async fn the_personas_are_aggregated_into_the_built_in_roles() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "helm-personas").await;
    let rel = format!("p{}", &ns.name[ns.name.len() - 6..]);
    let rendered = helm_ok(&["template", &rel, &chart(), "--namespace", &ns.name]);
    // Only the persona ClusterRoles of this render (the rest is the operator's own, not needed here).
    let personas: String = rendered
        .split("\n---")
        .filter(|doc| doc.contains("aggregate-to-"))
        .map(|doc| format!("---{doc}\n"))
        .collect();
    assert_eq!(
        personas.matches("kind: ClusterRole").count(),
        3,
        "{personas}"
    );
    kubectl_stdin(&["apply", "-f", "-"], &personas);
    for (user, role) in [("tenant", "edit"), ("ns-admin", "admin")] {
        kubectl_ok(&[
            "create",
            "rolebinding",
            &format!("{user}-{role}"),
            "-n",
            &ns.name,
            &format!("--clusterrole={role}"),
            &format!("--user={user}"),
        ]);
    }
    let can = |user: &str, verb: &str, resource: &str| {
        let out = kubectl(&[
            "auth", "can-i", verb, resource, "-n", &ns.name, "--as", user,
        ]);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    eventually(60, "the aggregation controller added the rules", || async {
        (can("tenant", "create", "secretrotations.secretrotator.dev")
            && can("ns-admin", "create", "databaseservers.secretrotator.dev"))
        .then_some(())
    })
    .await;
    assert!(can("tenant", "patch", "secretrotations.secretrotator.dev"));
    assert!(
        !can("tenant", "create", "databaseservers.secretrotator.dev"),
        "a tenant writes no server"
    );
    assert!(
        can("tenant", "get", "databaseservers.secretrotator.dev"),
        "but sees its namespace's servers"
    );
    assert!(!can(
        "tenant",
        "create",
        "clusterdatabaseservers.secretrotator.dev"
    ));
    assert!(!can(
        "ns-admin",
        "create",
        "clusterdatabaseservers.secretrotator.dev"
    ));
    kubectl_stdin(&["delete", "-f", "-"], &personas);
}

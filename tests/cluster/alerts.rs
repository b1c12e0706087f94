//! The chart's alerts and Grafana dashboard, as users install them: rendered by the real
//! `helm template`, the PrometheusRule's spec run through `promtool test rules` on synthetic series
//! (tests/alerts/*.test.yaml), the dashboard's queries checked by promtool, and every metric name in a rule
//! or a dashboard query looked up in /metrics of a running operator after a rotation.
//!
//! helm comes from `scripts/testenv install` (the cache), promtool from the Debian package `prometheus`
//! that the same command installs; a missing one fails the test with that advice.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::helm::chart;
use crate::support::operator::*;
use crate::support::{TestNamespace, client, control_plane, install_crd, repo_root, tool};
use serde_json::Value;

/// The values the default promtool test file is written for.
const DEFAULT_RULE_VALUES: &[&str] = &[
    "--set",
    "prometheusRule.enabled=true,metrics.serviceMonitor.enabled=true",
];

/// The alerts the chart defines.
const ALERTS: [&str; 5] = [
    "SecretRotatorRotationFailing",
    "SecretRotatorRotationOverdue",
    "SecretRotatorDown",
    "SecretRotatorNotLeading",
    "SecretRotatorSyncedSecretRejected",
];

fn helm_template_output(extra: &[&str]) -> Output {
    let tmp = std::env::temp_dir();
    let chart = chart();
    let mut args = vec!["template", "rel", chart.as_str(), "--namespace", "ops"];
    args.extend_from_slice(extra);
    Command::new(tool("helm"))
        .args(&args)
        // A render needs no cluster: no kubeconfig, so that nothing is contacted.
        .env_remove("KUBECONFIG")
        .env("HELM_CACHE_HOME", tmp.join("sr-helm-cache"))
        .env("HELM_CONFIG_HOME", tmp.join("sr-helm-config"))
        .env("HELM_DATA_HOME", tmp.join("sr-helm-data"))
        .output()
        .expect("running helm")
}

/// `helm template rel <chart> --namespace ops <extra>`; fails the test unless helm succeeds.
fn helm_template(extra: &[&str]) -> String {
    let out = helm_template_output(extra);
    assert!(
        out.status.success(),
        "helm template {} failed:\n{}",
        extra.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one manifest of `template` (a path under templates/) rendered with `extra`, as JSON.
fn render_one(template: &str, extra: &[&str]) -> Value {
    let mut args = extra.to_vec();
    args.extend_from_slice(&["--show-only", template]);
    let text = helm_template(&args);
    serde_saphyr::from_str(&text).unwrap_or_else(|e| {
        panic!("{template} does not render as one YAML document ({e}):\n{text}")
    })
}

/// The rendered PrometheusRule's spec: a Prometheus rule file.
fn rule_spec(extra: &[&str]) -> Value {
    let rule = render_one("templates/prometheusrule.yaml", extra);
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["metadata"]["namespace"], "ops");
    rule["spec"].clone()
}

/// The rendered dashboard ConfigMap and its dashboard.
fn dashboard(extra: &[&str]) -> (Value, Value) {
    let mut args = vec!["--set", "grafanaDashboard.enabled=true"];
    args.extend_from_slice(extra);
    let cm = render_one("templates/grafana-dashboard.yaml", &args);
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(
        cm["metadata"]["labels"]["grafana_dashboard"], "1",
        "the Grafana sidecar loads ConfigMaps with this label"
    );
    let data = cm["data"]
        .as_object()
        .expect("the ConfigMap has data")
        .clone();
    assert_eq!(data.len(), 1, "one dashboard: {:?}", data.keys());
    let (key, json) = data.into_iter().next().unwrap();
    assert!(key.ends_with(".json"), "{key}");
    let dash: Value = serde_json::from_str(json.as_str().expect("a string"))
        .expect("the dashboard is valid JSON");
    (cm, dash)
}

/// promtool from PATH, or a failure that says how to install it.
fn promtool() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
        .expect(
            "promtool is missing: run `scripts/testenv install` (scripts/test does it); it installs \
             the Debian package `prometheus`, which provides promtool",
        )
}

fn promtool_run(dir: &Path, args: &[&str]) -> Output {
    Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running promtool")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `promtool check rules` and `promtool test rules` on `spec` (as rules.json) with the test file `test`
/// from tests/alerts/. Returns the test run's output.
fn promtool_test(spec: &Value, test: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.json"),
        serde_json::to_string_pretty(spec).unwrap(),
    )
    .unwrap();
    let check = promtool_run(dir.path(), &["check", "rules", "rules.json"]);
    assert!(
        check.status.success(),
        "promtool check rules:\n{}",
        text(&check)
    );
    std::fs::copy(
        repo_root().join("tests/alerts").join(test),
        dir.path().join(test),
    )
    .unwrap();
    promtool_run(dir.path(), &["test", "rules", test])
}

fn alert_names(spec: &Value) -> BTreeSet<String> {
    rules(spec)
        .iter()
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

fn rules(spec: &Value) -> Vec<Value> {
    spec["groups"]
        .as_array()
        .expect("spec.groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("group rules").clone())
        .collect()
}

#[test]
fn alerts_and_dashboard_are_off_by_default() {
    let all = helm_template(&[]);
    assert!(!all.contains("PrometheusRule"), "{all}");
    assert!(!all.contains("grafana_dashboard"), "{all}");
    // On, but without the chart's ServiceMonitor nothing says which series are this release's.
    let out = helm_template_output(&["--set", "prometheusRule.enabled=true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("prometheusRule.selector"),
        "{}",
        text(&out)
    );
    // The schema refuses a grace without a unit, or in a unit the template does not convert.
    for grace in ["90", "1w", "1h30m"] {
        let out = helm_template_output(&[
            "--set",
            "prometheusRule.enabled=true,metrics.serviceMonitor.enabled=true",
            "--set-string",
            &format!("prometheusRule.rotationOverdue.grace={grace}"),
        ]);
        assert!(!out.status.success(), "grace {grace} was accepted");
    }
    // Everything on lints strictly clean.
    let lint = Command::new(tool("helm"))
        .args(["lint", "--strict", &chart(), "--set"])
        .arg("prometheusRule.enabled=true,metrics.serviceMonitor.enabled=true,grafanaDashboard.enabled=true")
        .env_remove("KUBECONFIG")
        .output()
        .expect("running helm lint");
    assert!(lint.status.success(), "{}", text(&lint));
}

#[test]
fn promtool_unit_tests_pass_on_the_rendered_rules() {
    let default = rule_spec(DEFAULT_RULE_VALUES);
    let custom_values = repo_root().join("tests/alerts/custom.values.yaml");
    let custom_values = custom_values.to_str().unwrap();
    let custom = rule_spec(&["-f", custom_values]);
    for spec in [&default, &custom] {
        assert_eq!(
            alert_names(spec),
            ALERTS.iter().map(|a| a.to_string()).collect(),
            "the chart's alerts"
        );
    }
    for (spec, test) in [
        (&default, "default.test.yaml"),
        (&custom, "custom.test.yaml"),
    ] {
        let out = promtool_test(spec, test);
        let printed = text(&out);
        assert!(
            out.status.success() && printed.contains("SUCCESS"),
            "promtool test rules {test}:\n{printed}"
        );
    }
    // Each test file fails on the other's rules (another selector, grace, for, severity): the tests
    // look at what the values render, not at a copy.
    for (spec, test) in [
        (&custom, "default.test.yaml"),
        (&default, "custom.test.yaml"),
    ] {
        let out = promtool_test(spec, test);
        assert!(
            !out.status.success() && text(&out).contains("FAILED"),
            "{test} passed on the other values' rules:\n{}",
            text(&out)
        );
    }
}

/// Every PromQL expression of the dashboard: panel targets (rows' panels included), then the query
/// variables' `label_values(<series>, <label>)` series.
fn dashboard_exprs(dash: &Value) -> (Vec<String>, Vec<String>) {
    fn panels<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            panels(&p["panels"], out);
        }
    }
    let mut all = Vec::new();
    panels(&dash["panels"], &mut all);
    let mut exprs = Vec::new();
    for p in all {
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            let e = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {} has a target without expr", p["title"]));
            exprs.push(e.to_owned());
        }
    }
    let mut variables = Vec::new();
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = match &v["query"] {
            Value::String(s) => s.clone(),
            other => other["query"].as_str().unwrap_or_default().to_owned(),
        };
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(...): {q}", v["name"]));
        let (series, _label) = inner
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("variable {}: label_values without a series", v["name"]));
        variables.push(series.trim().to_owned());
    }
    (exprs, variables)
}

/// Grafana's variables replaced by values PromQL accepts, for promtool.
fn substitute_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1d")
        .replace("$namespace", "ops")
        .replace("$job", "rel-secret-rotator-metrics")
}

#[test]
fn dashboard_queries_are_valid_promql() {
    let (_, dash) = dashboard(&[]);
    assert_eq!(dash["uid"], "secret-rotator");
    let (panel_exprs, variables) = dashboard_exprs(&dash);
    assert!(panel_exprs.len() >= 10, "{panel_exprs:?}");
    assert_eq!(variables.len(), 2, "$namespace and $job: {variables:?}");
    for e in &panel_exprs {
        // Only the dashboard's variables ($namespace, $job) and Grafana's interval variables.
        assert!(
            !substitute_variables(e).contains('$'),
            "an unknown variable in {e}"
        );
        assert!(
            e.contains("$job"),
            "a query not narrowed to the chosen job: {e}"
        );
    }
    // promtool parses each one as a recording rule.
    let rules: Vec<Value> = panel_exprs
        .iter()
        .chain(&variables)
        .enumerate()
        .map(|(i, e)| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": substitute_variables(e)}))
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.json"), file.to_string()).unwrap();
    let out = promtool_run(dir.path(), &["check", "rules", "dashboard.json"]);
    assert!(
        out.status.success(),
        "a dashboard query is not valid PromQL:\n{}",
        text(&out)
    );
    // Panel ids are unique (Grafana keys panels by id).
    let ids: Vec<_> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().expect("panel id"))
        .collect();
    assert_eq!(ids.len(), ids.iter().collect::<BTreeSet<_>>().len());
    // The namespace and labels are the values'.
    let (cm, _) = dashboard(&[
        "--set",
        "grafanaDashboard.namespace=monitoring,grafanaDashboard.labels.team=platform",
    ]);
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["labels"]["team"], "platform");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
}

/// The metric names a PromQL expression reads: identifiers that are neither functions, aggregation or
/// binary keywords, label names (in matchers or in by/without/on/ignoring/group_left/group_right lists),
/// nor inside strings, ranges or Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "atan2",
        // Aggregations, which may stand before `by (...)` instead of their parenthesis.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| -> usize {
        let mut j = from + 1;
        let mut quote: Option<char> = None;
        while j < chars.len() {
            let c = chars[j];
            match quote {
                Some(q) if c == '\\' && q != '`' => j += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
                None if c == close => return j + 1,
                None => {}
            }
            j += 1;
        }
        panic!("unbalanced {close} in {expr}");
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            // A string: skip to its closing quote (backslash escapes, except in a backtick string).
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                if chars[j] == '\\' && c != '`' {
                    j += 1;
                }
                j += 1;
            }
            i = j + 1;
        } else if c == '{' {
            i = skip_to(i, '}');
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c == '$' {
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration (5m, 1e3, 0x1f).
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) && call {
                i = skip_to(next, ')');
            } else if !call && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"sum by (job, namespace) (increase(secret_rotator_rotations_total{job="a",result=~"fail.*"}[15m])) > 0"#
        ),
        ["secret_rotator_rotations_total"]
    );
    assert_eq!(
        names(
            "histogram_quantile(0.95, sum without(instance) (rate(a_bucket{x=\"}\"}[$__rate_interval]))) / on (le) group_left(foo) b_total offset 5m"
        ),
        ["a_bucket", "b_total"]
    );
    assert_eq!(
        names(
            "(time() - max without (instance, pod) (x:y)) > 3600 and count(z) by (q) unless vector(1e3)"
        ),
        ["x:y", "z"]
    );
    assert_eq!(
        names(r#"absent(up{job="by(x)", a='it\'s'}) or other"#),
        ["other", "up"]
    );
    assert!(names("sum(rate(x[5m])) BY (le)").contains(&"x".to_owned()));
}

/// Metric names in a scrape: every sample's name, and the names each `# TYPE` family's samples have
/// (counter `_total`; histogram `_bucket`, `_sum`, `_count`; gauge and others the family name).
fn exported_names(scrape: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut samples = BTreeSet::new();
    let mut declared = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(family), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    declared.insert(format!("{family}_total"));
                }
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        declared.insert(format!("{family}{s}"));
                    }
                }
                _ => {
                    declared.insert(family.to_owned());
                }
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line
                .find(|c: char| c == '{' || c.is_whitespace())
                .unwrap_or(line.len());
            samples.insert(line[..end].to_owned());
        }
    }
    (samples, declared)
}

/// The family a sample name belongs to.
fn family(name: &str) -> &str {
    for s in ["_total", "_bucket", "_sum", "_count", "_created"] {
        if let Some(f) = name.strip_suffix(s) {
            return f;
        }
    }
    name
}

/// A kubeconfig for the user `alerts-operator`, impersonated with the admin token, bound in `ns` to the
/// chart's Role rules, except that of the SecretRotations' status it may patch only `api`'s.
fn restricted_kubeconfig(ns: &str) -> tempfile::NamedTempFile {
    let admin_kc = &control_plane().kubeconfig;
    let rbac = format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: alerts-operator, namespace: {ns}}}
rules:
  - {{apiGroups: [secretrotator.dev], resources: [secretrotations], verbs: [get, list, watch]}}
  - {{apiGroups: [secretrotator.dev], resources: [secretrotations/status], verbs: [patch], resourceNames: [api]}}
  - {{apiGroups: [""], resources: [secrets], verbs: [get, list, watch, create, patch]}}
  - {{apiGroups: [events.k8s.io], resources: [events], verbs: [create, patch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: alerts-operator, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: alerts-operator}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: alerts-operator}}]
"#
    );
    crate::support::helm::kubectl_stdin(admin_kc, &["apply", "-f", "-"], &rbac);
    let admin = std::fs::read_to_string(admin_kc).unwrap();
    let field = |key: &str| {
        admin
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in the admin kubeconfig"))
            .to_owned()
    };
    let (token, server) = (field("token: "), field("server: "));
    let kc = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        kc.path(),
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: {server}, insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: {token}, as: alerts-operator}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    kc
}

#[tokio::test]
async fn every_metric_in_the_rules_and_the_dashboard_is_exported_by_the_operator() {
    // What users install: the rules and the dashboard with everything on.
    let spec = rule_spec(DEFAULT_RULE_VALUES);
    let mut used: Vec<(String, String)> = Vec::new();
    for r in rules(&spec) {
        let e = r["expr"].as_str().expect("rule expr").to_owned();
        used.push((format!("alert {}", r["alert"].as_str().unwrap_or("?")), e));
    }
    let (_, dash) = dashboard(&[]);
    let (panel_exprs, variables) = dashboard_exprs(&dash);
    for e in panel_exprs.into_iter().chain(variables) {
        used.push(("dashboard".into(), e));
    }

    // A real operator after a rotation (the bootstrap) and a rotate-now, and with one reconcile error so
    // that the labelled error counter has a sample (prometheus-client prints no family without one): it
    // runs as a user whose Role is the chart's, except that it may write the status of `api` only, so
    // every reconcile of `stuck` fails on its status write (category kube).
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "alerts").await;
    // The apiserver takes the dashboard's ConfigMap as rendered (size, names, labels).
    let cm = helm_template(&[
        "--set",
        &format!(
            "grafanaDashboard.enabled=true,grafanaDashboard.namespace={}",
            ns.name
        ),
        "--show-only",
        "templates/grafana-dashboard.yaml",
    ]);
    let applied = crate::support::helm::kubectl_stdin(
        &control_plane().kubeconfig,
        &["apply", "-f", "-"],
        &cm,
    );
    assert!(
        applied.contains("configmap/rel-secret-rotator-dashboard created"),
        "{applied}"
    );
    let kubeconfig = restricted_kubeconfig(&ns.name);
    let files = OperatorFiles::new();
    let op = Operator::start(
        kubeconfig.path(),
        &files,
        &ns.name,
        &["--leader-election=false"],
        &[],
    );
    for name in ["api", "stuck"] {
        apply_sr(
            &c,
            &ns.name,
            &format!("apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  rotation: {{period: 30d}}\n"),
        )
        .await;
    }
    wait_ready(&c, &ns.name, "api", "True", "Synced", 60).await;
    annotate(
        &c,
        &ns.name,
        "api",
        "secretrotator.dev/rotate-now",
        "alerts",
    )
    .await;
    wait_version(&c, &ns.name, "api", "v2", 30).await;
    let scrape = eventually(
        30,
        "the rotate-now and a reconcile error counted in /metrics",
        || async {
            let m = op.metrics_text().await;
            (m.contains(
                "secret_rotator_rotations_total{result=\"success\",reason=\"rotate-now\"} 1",
            ) && m.contains("secret_rotator_reconcile_errors_total{category=\"kube\"}"))
            .then_some(m)
        },
    )
    .await;
    let (samples, declared) = exported_names(&scrape);
    assert!(
        samples.contains("secret_rotator_next_rotation_timestamp_seconds"),
        "the scrape has the per-resource gauge after a reconcile:\n{scrape}"
    );

    let mut missing = Vec::new();
    for (what, e) in &used {
        let names = metric_names(e);
        assert!(!names.is_empty(), "{what}: no metric in {e}");
        for n in names {
            if !samples.contains(&n) {
                missing.push(format!("{what}: {n} in {e}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metric names the operator does not export (scrape below):\n{}\n\n{scrape}",
        missing.join("\n")
    );
    // And the dashboard shows every family the operator exports.
    let dashboard_families: BTreeSet<String> = used
        .iter()
        .filter(|(w, _)| w == "dashboard")
        .flat_map(|(_, e)| metric_names(e))
        .map(|n| family(&n).to_owned())
        .collect();
    let exported_families: BTreeSet<String> =
        declared.iter().map(|n| family(n).to_owned()).collect();
    let without_panel: Vec<_> = exported_families.difference(&dashboard_families).collect();
    assert!(
        without_panel.is_empty(),
        "families the operator exports that no dashboard panel shows: {without_panel:?}"
    );
    drop(op);
}

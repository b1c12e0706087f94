//! `spec.restartTargets`: each a kind and either a name or a label selector, turned into the apiserver's
//! `labelSelector` syntax once, here.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::Collector;
use super::kube_names::{label_value, printable, qualified_name};
use super::spec::{Pick, Restarts};
use crate::api::RestartTarget;

/// The most workloads one selector may restart; more is refused, so a broad selector cannot roll a
/// namespace.
pub const MAX_SELECTOR_MATCHES: usize = 50;

/// The restart targets as the reconcile uses them; broken rules go to `c`.
pub(super) fn restart_targets(targets: &[RestartTarget], c: &mut Collector) -> Vec<Restarts> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let field = format!("spec.restartTargets[{i}]");
        let pick = match (&t.name, &t.selector) {
            (Some(name), None) => Pick::Name(name.clone()),
            (None, Some(sel)) => match selector(sel) {
                Ok(s) => Pick::Selector(s),
                Err(e) => {
                    c.push(&format!("{field}.selector"), e);
                    continue;
                }
            },
            (Some(_), Some(_)) => {
                c.push(&field, "name and selector are both set; set exactly one");
                continue;
            }
            (None, None) => {
                c.push(&field, "neither name nor selector is set; set exactly one");
                continue;
            }
        };
        let r = Restarts { kind: t.kind, pick };
        if !seen.insert(format!("{:?}/{:?}", r.kind, r.pick)) {
            let what = match &r.pick {
                Pick::Name(n) => printable(n),
                Pick::Selector(s) => format!("selector {}", printable(s)),
            };
            c.push(
                "spec.restartTargets",
                format!("{:?} {what} is listed twice", t.kind),
            );
            continue;
        }
        out.push(r);
    }
    out
}

/// A label selector in the apiserver's syntax (`a=b,c in (d,e),!f`); refused when empty (it would match
/// every workload) or malformed.
pub fn selector(sel: &LabelSelector) -> Result<String, String> {
    let mut parts = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        qualified_name(k).map_err(|e| format!("matchLabels key {}: {e}", printable(k)))?;
        label_value(v).map_err(|e| format!("matchLabels value of {}: {e}", printable(k)))?;
        parts.push(format!("{k}={v}"));
    }
    for e in sel.match_expressions.iter().flatten() {
        let k = &e.key;
        qualified_name(k).map_err(|err| format!("matchExpressions key {}: {err}", printable(k)))?;
        let values = e.values.clone().unwrap_or_default();
        for v in &values {
            label_value(v)
                .map_err(|err| format!("matchExpressions value of {}: {err}", printable(k)))?;
        }
        let list = || format!("({})", values.join(","));
        let part = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "matchExpressions {} {}: needs values",
                    printable(k),
                    e.operator
                ));
            }
            "In" => format!("{k} in {}", list()),
            "NotIn" => format!("{k} notin {}", list()),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!(
                    "matchExpressions {} {}: takes no values",
                    printable(k),
                    e.operator
                ));
            }
            "Exists" => k.clone(),
            "DoesNotExist" => format!("!{k}"),
            other => {
                return Err(format!(
                    "matchExpressions {}: operator {} is not In, NotIn, Exists or DoesNotExist",
                    printable(k),
                    printable(other)
                ));
            }
        };
        parts.push(part);
    }
    if parts.is_empty() {
        return Err("an empty selector would restart every workload of the kind; give matchLabels or matchExpressions".into());
    }
    Ok(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(yaml: &str) -> Result<String, String> {
        selector(&serde_saphyr::from_str::<LabelSelector>(yaml).unwrap())
    }

    #[test]
    fn selectors_in_the_apiservers_syntax() {
        assert_eq!(
            sel("matchLabels: {app: web, tier: front}").unwrap(),
            "app=web,tier=front"
        );
        assert_eq!(
            sel("matchExpressions: [{key: env, operator: In, values: [a, b]}, {key: canary, operator: DoesNotExist}, {key: team, operator: Exists}, {key: x, operator: NotIn, values: [y]}]").unwrap(),
            "env in (a,b),!canary,team,x notin (y)"
        );
        for bad in [
            "{}",
            "matchLabels: {}",
            "matchLabels: {'a b': c}",
            "matchLabels: {a: 'b,c'}",
            "matchExpressions: [{key: a, operator: In}]",
            "matchExpressions: [{key: a, operator: Exists, values: [b]}]",
            "matchExpressions: [{key: a, operator: Gt, values: ['1']}]",
        ] {
            assert!(sel(bad).is_err(), "{bad} was accepted: {:?}", sel(bad));
        }
    }
}

//! Core Kubernetes readiness: the k3s unit, nodes, the default service account, CRDs and
//! controller workloads.

use serde::Deserialize;

use super::{condition, items, qualified, short, single, Condition, Meta, ReadinessError, Verdict};

/// Most names listed in a summary; the rest are counted.
const MAX_NAMES: usize = 10;

fn name_list(names: &[String]) -> String {
    if names.len() <= MAX_NAMES {
        names.join(", ")
    } else {
        format!("{}, and {} more", names[..MAX_NAMES].join(", "), names.len() - MAX_NAMES)
    }
}

/// The output of `systemctl is-active UNIT` (one word). `active` is ready; everything else —
/// `activating` while k3s starts (its unit is `Type=notify`), `failed` between restarts
/// (`Restart=always`), `inactive` — is waiting, since systemd keeps restarting k3s.
pub fn systemd_unit(unit: &str, is_active_output: &str) -> Verdict {
    match is_active_output.trim() {
        "active" => Verdict::ready(format!("unit {unit} is active")),
        "" => Verdict::waiting(format!("unit {unit}: systemctl is-active printed nothing")),
        state => Verdict::waiting(format!("unit {unit} is {}", short(state))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    status: NodeStatus,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct NodeStatus {
    conditions: Vec<Condition>,
}

/// `kubectl get nodes -o json`: ready when at least `expected` nodes are registered and every
/// registered node has `Ready=True`. `expected` 0 is taken as 1 — a cluster without nodes is never
/// ready. `None` (no output) counts as no nodes.
pub fn nodes(json: Option<&str>, expected: usize) -> Result<Verdict, ReadinessError> {
    let nodes: Vec<Node> = items("node list", &["Node"], json)?;
    let expected = expected.max(1);
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for node in &nodes {
        match condition(&node.status.conditions, "Ready") {
            Some(c) if c.is_true() => ready.push(node.metadata.name.clone()),
            Some(c) => not_ready.push(format!("node {:?} {c}", node.metadata.name)),
            None => not_ready.push(format!("node {:?} has no Ready condition yet", node.metadata.name)),
        }
    }
    let registered = nodes.len();
    if registered >= expected && not_ready.is_empty() {
        return Ok(Verdict::ready(format!("{registered}/{expected} nodes Ready: {}", name_list(&ready))));
    }
    let mut seen = format!("{registered}/{expected} nodes registered");
    if !not_ready.is_empty() {
        seen.push_str(&format!(", {} not Ready: {}", not_ready.len(), not_ready.join("; ")));
    }
    if !ready.is_empty() {
        seen.push_str(&format!("; Ready: {}", name_list(&ready)));
    }
    Ok(Verdict::waiting(seen))
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    metadata: Meta,
}

/// `kubectl -n NAMESPACE get serviceaccount NAME -o json`: ready when it exists. The token
/// controller creates `default/default` only once the controller manager runs, and pods cannot be
/// created in a namespace before its default service account exists (k3sup `ready` checks this).
pub fn service_account(json: Option<&str>, namespace: &str, name: &str) -> Result<Verdict, ReadinessError> {
    let id = qualified(namespace, name);
    let Some(json) = json else {
        return Ok(Verdict::waiting(format!("serviceaccount {id} not found")));
    };
    let sa: Named = single(&format!("serviceaccount {id}"), "ServiceAccount", json)?;
    if sa.metadata.name != name || sa.metadata.namespace != namespace {
        return Err(ReadinessError::WrongObject {
            expected: format!("ServiceAccount {id}"),
            found: format!("ServiceAccount {}", sa.metadata.id()),
        });
    }
    Ok(Verdict::ready(format!("serviceaccount {id} exists")))
}

#[derive(Deserialize)]
struct Crd {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    status: NodeStatus,
}

/// `kubectl get crd NAME… -o json` plus the names that must be there: ready when each exists with
/// `Established=True` and `NamesAccepted=True`. Missing ones are named; so is a CRD being deleted.
pub fn crds(json: Option<&str>, required: &[&str]) -> Result<Verdict, ReadinessError> {
    let found: Vec<Crd> = items("CRD list", &["CustomResourceDefinition"], json)?;
    let mut missing = Vec::new();
    let mut pending = Vec::new();
    for name in required {
        let Some(crd) = found.iter().find(|c| c.metadata.name == *name) else {
            missing.push(name.to_string());
            continue;
        };
        let conditions = &crd.status.conditions;
        let mut why = Vec::new();
        if crd.metadata.deletion_timestamp.is_some() {
            why.push("being deleted".to_string());
        }
        for kind in ["NamesAccepted", "Established"] {
            match condition(conditions, kind) {
                Some(c) if c.is_true() => {}
                Some(c) => why.push(c.to_string()),
                None => why.push(format!("no {kind} condition yet")),
            }
        }
        if !why.is_empty() {
            pending.push(format!("{name} ({})", why.join(", ")));
        }
    }
    if missing.is_empty() && pending.is_empty() {
        return Ok(Verdict::ready(format!("{} CRDs Established: {}", required.len(), required.join(", "))));
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("CRDs not found: {}", missing.join(", ")));
    }
    if !pending.is_empty() {
        parts.push(format!("CRDs not yet Established: {}", pending.join("; ")));
    }
    Ok(Verdict::waiting(parts.join("; ")))
}

#[derive(Deserialize)]
struct Workload {
    kind: Option<String>,
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: WorkloadSpec,
    #[serde(default)]
    status: WorkloadStatus,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WorkloadSpec {
    replicas: Option<i64>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct WorkloadStatus {
    observed_generation: Option<i64>,
    updated_replicas: i64,
    ready_replicas: i64,
    available_replicas: i64,
    conditions: Vec<Condition>,
}

/// `kubectl -n NAMESPACE get deployment NAME… -o json` (or `get deployment,statefulset …`, since
/// Argo CD's application controller is a StatefulSet) plus the names that must be there. A
/// workload is ready when the controller has seen its latest spec (`status.observedGeneration >=
/// metadata.generation`), all desired replicas run the latest template (`updatedReplicas`) and are
/// available (`availableReplicas >= spec.replicas`, default 1), and — for a Deployment — its
/// `Available` condition is `True`. Requiring updated replicas matters on a re-run that upgrades a
/// controller: old pods would otherwise count as available.
pub fn deployments(json: Option<&str>, namespace: &str, required: &[&str]) -> Result<Verdict, ReadinessError> {
    let what = format!("workload list in {namespace}");
    let found: Vec<Workload> = items(&what, &["Deployment", "StatefulSet"], json)?;
    let mut ready = Vec::new();
    let mut waiting = Vec::new();
    for name in required {
        let Some(w) = found.iter().find(|w| w.metadata.name == *name) else {
            waiting.push(format!("deployment {namespace}/{name} not found"));
            continue;
        };
        let kind = w.kind.as_deref().unwrap_or("Deployment").to_ascii_lowercase();
        let desired = w.spec.replicas.unwrap_or(1);
        let s = &w.status;
        let counts = format!("{}/{desired} available", s.available_replicas);
        let mut why = Vec::new();
        match (w.metadata.generation, s.observed_generation) {
            (Some(generation), Some(observed)) if observed < generation => {
                why.push(format!("generation {generation} not yet observed (observedGeneration {observed})"))
            }
            (Some(_), None) => why.push("not yet observed by its controller".to_string()),
            _ => {}
        }
        if s.updated_replicas < desired {
            why.push(format!("{}/{desired} updated", s.updated_replicas));
        }
        if kind == "statefulset" && s.ready_replicas < desired {
            why.push(format!("{}/{desired} ready", s.ready_replicas));
        }
        if kind == "deployment" {
            match condition(&s.conditions, "Available") {
                Some(c) if c.is_true() => {}
                Some(c) => why.push(c.to_string()),
                None => why.push("no Available condition yet".to_string()),
            }
            // These keep the Deployment waiting and say why, but never end the wait as a failure:
            // past its progress deadline a Deployment still converges if the image or node shows
            // up, and ReplicaFailure (quota, admission) can clear.
            if let Some(c) = condition(&s.conditions, "Progressing").filter(|c| !c.is_true()) {
                why.push(c.to_string());
            }
            if let Some(c) = condition(&s.conditions, "ReplicaFailure").filter(|c| c.is_true()) {
                why.push(c.to_string());
            }
        }
        let id = format!("{kind} {namespace}/{name}");
        if s.available_replicas >= desired && why.is_empty() {
            ready.push(format!("{name} {}/{desired}", s.available_replicas));
        } else if why.is_empty() {
            waiting.push(format!("{id}: {counts}"));
        } else {
            waiting.push(format!("{id}: {counts} ({})", why.join(", ")));
        }
    }
    if waiting.is_empty() {
        return Ok(Verdict::ready(format!(
            "{}/{} available in {namespace}: {}",
            ready.len(),
            required.len(),
            ready.join(", ")
        )));
    }
    Ok(Verdict::waiting(waiting.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_states() {
        assert_eq!(systemd_unit("k3s", "active\n"), Verdict::ready("unit k3s is active"));
        assert_eq!(systemd_unit("k3s", "activating\n"), Verdict::waiting("unit k3s is activating"));
        assert_eq!(systemd_unit("k3s", "failed"), Verdict::waiting("unit k3s is failed"));
        assert!(systemd_unit("k3s", "").message().contains("printed nothing"));
    }

    #[test]
    fn a_node_without_conditions_is_not_ready() {
        let json = r#"{"kind":"List","apiVersion":"v1","items":[{"kind":"Node","metadata":{"name":"srv-1"}}]}"#;
        let v = nodes(Some(json), 1).unwrap();
        assert_eq!(v, Verdict::waiting("1/1 nodes registered, 1 not Ready: node \"srv-1\" has no Ready condition yet"));
    }

    #[test]
    fn no_output_means_no_nodes_and_zero_expected_means_one() {
        assert_eq!(nodes(None, 0).unwrap(), Verdict::waiting("0/1 nodes registered"));
    }

    #[test]
    fn service_account_of_another_name_is_an_error() {
        let json = r#"{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"builder","namespace":"default"}}"#;
        let err = service_account(Some(json), "default", "default").unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected ServiceAccount default/default, got ServiceAccount default/builder: the command read another object"
        );
    }

    #[test]
    fn a_deployment_with_zero_replicas_is_ready_once_observed() {
        let json = r#"{"kind":"Deployment","metadata":{"name":"x","namespace":"ns","generation":2},
            "spec":{"replicas":0},"status":{"observedGeneration":2,
            "conditions":[{"type":"Available","status":"True"}]}}"#;
        assert_eq!(deployments(Some(json), "ns", &["x"]).unwrap(), Verdict::ready("1/1 available in ns: x 0/0"));
    }

    #[test]
    fn an_upgrading_deployment_waits_for_updated_replicas() {
        let json = r#"{"kind":"Deployment","metadata":{"name":"x","namespace":"ns","generation":3},
            "spec":{"replicas":1},"status":{"observedGeneration":3,"availableReplicas":1,"updatedReplicas":0,
            "conditions":[{"type":"Available","status":"True"}]}}"#;
        assert_eq!(
            deployments(Some(json), "ns", &["x"]).unwrap(),
            Verdict::waiting("deployment ns/x: 1/1 available (0/1 updated)")
        );
    }

    #[test]
    fn a_statefulset_is_judged_by_its_replica_counts() {
        let json = r#"{"kind":"StatefulSet","metadata":{"name":"argocd-application-controller","namespace":"argocd","generation":1},
            "spec":{"replicas":1},"status":{"observedGeneration":1,"replicas":1,"readyReplicas":0,
            "availableReplicas":0,"updatedReplicas":1}}"#;
        let v = deployments(Some(json), "argocd", &["argocd-application-controller"]).unwrap();
        assert_eq!(v, Verdict::waiting("statefulset argocd/argocd-application-controller: 0/1 available (0/1 ready)"));
    }
}

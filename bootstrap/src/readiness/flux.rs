//! Flux objects: the root `Kustomization` (`kustomize.toolkit.fluxcd.io/v1`) and its
//! `GitRepository` (`source.toolkit.fluxcd.io/v1`).
//!
//! Both follow kstatus: `Ready` says whether the last reconciliation of the current generation
//! succeeded, `Reconciling` that one is under way, `Stalled` that the controller gave up until the
//! spec changes. Revisions read `<ref>@sha1:<commit>` (Flux ≥ 2.0; older controllers wrote
//! `<branch>/<commit>`).

use serde::Deserialize;

use super::{condition, pinned, qualified, single, Condition, Meta, ReadinessError, Verdict};

#[derive(Deserialize)]
struct FluxObject {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: FluxSpec,
    #[serde(default)]
    status: FluxStatus,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct FluxSpec {
    suspend: bool,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FluxStatus {
    observed_generation: Option<i64>,
    conditions: Vec<Condition>,
    last_applied_revision: String,
    last_attempted_revision: String,
    artifact: Option<Artifact>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Artifact {
    revision: String,
}

/// The commit id in a Flux revision: `main@sha1:abc…` → `abc…`, `sha256:…` digests likewise,
/// legacy `main/abc…` → `abc…`. `None` when there is no commit id in it.
pub fn revision_commit(revision: &str) -> Option<&str> {
    let tail = match revision.rsplit_once(':') {
        Some((_, tail)) => tail,
        None => revision.rsplit_once('/').map_or(revision, |(_, tail)| tail),
    };
    super::is_commit_sha(tail).then_some(tail)
}

/// The verdict shared by both kinds; `revision` is the field that says what is live
/// (`lastAppliedRevision`, `artifact.revision`), `attempted` the one being tried, if any.
fn verdict(
    kind: &str,
    object: &FluxObject,
    revision: &str,
    attempted: &str,
    expected_revision: Option<&str>,
) -> Verdict {
    let id = object.metadata.id();
    if object.spec.suspend {
        return Verdict::failed(format!(
            "{kind} {id} is suspended (spec.suspend: true): Flux will not reconcile it until it is resumed \
             (flux resume {} {} -n {})",
            kind.to_ascii_lowercase(),
            object.metadata.name,
            object.metadata.namespace
        ));
    }
    let conditions = &object.status.conditions;
    let at = if revision.is_empty() { String::new() } else { format!(" at revision {revision}") };
    if let Some(stalled) = condition(conditions, "Stalled").filter(|c| c.is_true()) {
        return Verdict::failed(format!("{kind} {id}: {stalled}{at}; Flux does not retry until the spec changes"));
    }
    let ready = condition(conditions, "Ready");
    let generation = object.metadata.generation;
    // The object-level observedGeneration, else the one on Ready: both say which spec the
    // condition describes, and a Ready=True left from the previous spec must not count.
    let observed = object.status.observed_generation.or(ready.and_then(|c| c.observed_generation));
    let stale = match (generation, observed) {
        (Some(generation), Some(observed)) if observed < generation => {
            Some(format!("generation {generation} not yet observed (observedGeneration {observed})"))
        }
        (Some(generation), None) => Some(format!("generation {generation} not yet observed")),
        _ => None,
    };
    let sha = pinned(expected_revision);
    let at_expected = sha.is_none_or(|sha| revision_commit(revision).is_some_and(|c| c.eq_ignore_ascii_case(sha)));

    match ready {
        Some(c) if c.is_true() && stale.is_none() && at_expected => {
            return Verdict::ready(format!("{kind} {id}: {c}{at}"));
        }
        _ => {}
    }
    let mut seen = match ready {
        Some(c) => format!("{kind} {id}: {c}{at}"),
        None => format!("{kind} {id}: no Ready condition yet{at}"),
    };
    if let Some(stale) = stale {
        seen.push_str(&format!("; {stale}"));
    }
    if let Some(sha) = sha.filter(|_| !at_expected) {
        seen.push_str(&format!("; expected commit {sha}"));
    }
    if !attempted.is_empty() && attempted != revision {
        seen.push_str(&format!("; attempted revision {attempted}"));
    }
    // Ready=Unknown usually repeats the Reconciling message; say it once.
    let same_message = |c: &Condition| ready.is_some_and(|r| r.message == c.message);
    if let Some(c) = condition(conditions, "Reconciling").filter(|c| c.is_true() && !same_message(c)) {
        seen.push_str(&format!("; {c}"));
    }
    Verdict::waiting(seen)
}

fn parse(kind: &str, json: &str, namespace: &str, name: &str) -> Result<FluxObject, ReadinessError> {
    let id = qualified(namespace, name);
    let object: FluxObject = single(&format!("{kind} {id}"), kind, json)?;
    if object.metadata.name != name || object.metadata.namespace != namespace {
        return Err(ReadinessError::WrongObject {
            expected: format!("{kind} {id}"),
            found: format!("{kind} {}", object.metadata.id()),
        });
    }
    Ok(object)
}

/// `kubectl -n NAMESPACE get kustomization NAME -o json` (`None` when not found). Ready when
/// `Ready=True` for the current generation and, when `expected_revision` is a full commit SHA,
/// `status.lastAppliedRevision` names that commit (a branch or tag is only reported). Failed when
/// suspended or `Stalled=True`; every `Ready=False` reason is retried by the controller, so it
/// waits, showing the reason, the message and the applied and attempted revisions.
pub fn kustomization(
    json: Option<&str>,
    namespace: &str,
    name: &str,
    expected_revision: Option<&str>,
) -> Result<Verdict, ReadinessError> {
    let Some(json) = json else {
        return Ok(Verdict::waiting(format!("Kustomization {} not found", qualified(namespace, name))));
    };
    let k = parse("Kustomization", json, namespace, name)?;
    Ok(verdict(
        "Kustomization",
        &k,
        &k.status.last_applied_revision,
        &k.status.last_attempted_revision,
        expected_revision,
    ))
}

/// `kubectl -n NAMESPACE get gitrepository NAME -o json` (`None` when not found). Ready when
/// `Ready=True` for the current generation (and at `expected_revision` when that is a full commit
/// SHA); `status.artifact.revision` is reported. Failed when suspended or `Stalled=True`.
pub fn git_repository(
    json: Option<&str>,
    namespace: &str,
    name: &str,
    expected_revision: Option<&str>,
) -> Result<Verdict, ReadinessError> {
    let Some(json) = json else {
        return Ok(Verdict::waiting(format!("GitRepository {} not found", qualified(namespace, name))));
    };
    let repo = parse("GitRepository", json, namespace, name)?;
    let revision = repo.status.artifact.as_ref().map(|a| a.revision.as_str()).unwrap_or_default();
    Ok(verdict("GitRepository", &repo, revision, "", expected_revision))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "8b1a9953c4611296a827abf8c47804d7e6c49c6b";

    #[test]
    fn commit_ids_in_flux_revisions() {
        assert_eq!(revision_commit(&format!("main@sha1:{SHA}")), Some(SHA));
        assert_eq!(revision_commit(&format!("refs/heads/main@sha1:{SHA}")), Some(SHA));
        assert_eq!(revision_commit(&format!("sha1:{SHA}")), Some(SHA));
        assert_eq!(revision_commit(&format!("main/{SHA}")), Some(SHA));
        assert_eq!(revision_commit(SHA), Some(SHA));
        assert_eq!(revision_commit("v1.2.0@sha1:abc"), None);
        assert_eq!(revision_commit("main"), None);
        assert_eq!(revision_commit(""), None);
    }

    #[test]
    fn ready_true_for_an_older_generation_waits() {
        let json = format!(
            r#"{{"kind":"Kustomization","metadata":{{"name":"apps","namespace":"flux-system","generation":3}},
            "spec":{{}},"status":{{"observedGeneration":2,"lastAppliedRevision":"main@sha1:{SHA}",
            "conditions":[{{"type":"Ready","status":"True","reason":"ReconciliationSucceeded","message":"Applied revision: main@sha1:{SHA}"}}]}}}}"#
        );
        let v = kustomization(Some(&json), "flux-system", "apps", None).unwrap();
        assert_eq!(
            v,
            Verdict::waiting(format!(
                "Kustomization flux-system/apps: Ready=True (ReconciliationSucceeded: Applied revision: main@sha1:{SHA}) \
                 at revision main@sha1:{SHA}; generation 3 not yet observed (observedGeneration 2)"
            ))
        );
    }

    #[test]
    fn a_git_repository_without_status_waits() {
        let json = r#"{"kind":"GitRepository","metadata":{"name":"flux-system","namespace":"flux-system","generation":1},
            "spec":{"url":"ssh://git@git.example.com/org/gitops.git","interval":"1m0s"}}"#;
        let v = git_repository(Some(json), "flux-system", "flux-system", None).unwrap();
        assert_eq!(
            v,
            Verdict::waiting(
                "GitRepository flux-system/flux-system: no Ready condition yet; generation 1 not yet observed"
            )
        );
    }
}

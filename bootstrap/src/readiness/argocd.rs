//! The root Argo CD `Application` (`argoproj.io/v1alpha1`): Synced and Healthy, at the expected
//! commit when one is pinned.

use serde::Deserialize;
use serde_json::Value;

use super::{pinned, qualified, short, single, Meta, ReadinessError, Verdict};

#[derive(Deserialize)]
struct Application {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: AppSpec,
    status: Option<AppStatus>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct AppSpec {
    sync_policy: Option<SyncPolicy>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct SyncPolicy {
    automated: Option<Value>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct AppStatus {
    sync: SyncStatus,
    health: Health,
    operation_state: Option<OperationState>,
    conditions: Vec<AppCondition>,
    resources: Vec<ResourceStatus>,
    // `appTree` in Argo CD 3: per-resource health is no longer written to `resources[].health`.
    resource_health_source: String,
}

/// An entry of `status.resources`: one object the Application manages.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ResourceStatus {
    kind: String,
    namespace: String,
    name: String,
    health: Option<Health>,
}

/// Most unhealthy resources named in a verdict.
const MAX_RESOURCES: usize = 5;

#[derive(Default, Deserialize)]
#[serde(default)]
struct SyncStatus {
    status: String,
    revision: String,
    revisions: Vec<String>,
}

impl SyncStatus {
    /// The revision compared against: `revision`, or for multi-source applications `revisions`.
    fn revision(&self) -> String {
        if self.revision.is_empty() {
            self.revisions.join(",")
        } else {
            self.revision.clone()
        }
    }

    fn has(&self, sha: &str) -> bool {
        self.revision.eq_ignore_ascii_case(sha) || self.revisions.iter().any(|r| r.eq_ignore_ascii_case(sha))
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Health {
    status: String,
    message: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OperationState {
    phase: String,
    message: String,
    retry_count: i64,
    operation: Operation,
    sync_result: Option<SyncResult>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Operation {
    sync: Option<SyncOperation>,
    retry: Option<Retry>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct SyncOperation {
    revision: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Retry {
    limit: Option<i64>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct SyncResult {
    revision: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct AppCondition {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

impl OperationState {
    /// The revision the operation synced (or tried to).
    fn revision(&self) -> &str {
        match (&self.sync_result, &self.operation.sync) {
            (Some(result), _) if !result.revision.is_empty() => &result.revision,
            (_, Some(sync)) => &sync.revision,
            _ => "",
        }
    }

    fn finished_badly(&self) -> bool {
        self.phase == "Failed" || self.phase == "Error"
    }

    /// `sync Failed at revision abc after 5 retries: message`.
    fn describe(&self) -> String {
        let mut out = format!("sync operation {}", self.phase);
        if !self.revision().is_empty() {
            out.push_str(&format!(" at revision {}", self.revision()));
        }
        if self.retry_count > 0 {
            let limit = self.operation.retry.as_ref().and_then(|r| r.limit);
            match limit {
                Some(limit) if limit > 0 => out.push_str(&format!(" (retry {}/{limit})", self.retry_count)),
                _ => out.push_str(&format!(" (retry {})", self.retry_count)),
            }
        }
        if !self.message.is_empty() {
            out.push_str(&format!(": {}", short(&self.message)));
        }
        out
    }
}

/// `kubectl -n NAMESPACE get application NAME -o json` (`None` when not found). Ready when
/// `status.sync.status` is `Synced` and `status.health.status` is `Healthy` — and, when
/// `expected_revision` is a full commit SHA, `status.sync.revision` is that commit. A branch, tag
/// or `HEAD` cannot be compared with the resolved SHA Argo CD reports, so it is only reported.
///
/// Failed when the last sync operation ended `Failed`/`Error` against the revision wanted (the
/// pinned SHA, else the one Argo CD now compares with): Argo CD holds the phase at `Running` while
/// retries remain, and automated sync does not retry a failed revision. The wait text includes
/// the operation message and every `status.conditions[]` entry (`ComparisonError`, `SyncError`,
/// `InvalidSpecError`, …), and says when automated sync is off, as nothing then syncs on its own.
pub fn application(
    json: Option<&str>,
    namespace: &str,
    name: &str,
    expected_revision: Option<&str>,
) -> Result<Verdict, ReadinessError> {
    let id = qualified(namespace, name);
    let Some(json) = json else {
        return Ok(Verdict::waiting(format!("Application {id} not found")));
    };
    let app: Application = single(&format!("Application {id}"), "Application", json)?;
    if app.metadata.name != name || app.metadata.namespace != namespace {
        return Err(ReadinessError::WrongObject {
            expected: format!("Application {id}"),
            found: format!("Application {}", app.metadata.id()),
        });
    }
    let Some(status) = app.status else {
        return Ok(Verdict::waiting(format!(
            "Application {id}: no status yet (the application controller has not reconciled it)"
        )));
    };
    let sha = pinned(expected_revision);
    let or_unknown = |s: &str| if s.is_empty() { "Unknown".to_string() } else { s.to_string() };
    let revision = status.sync.revision();
    let mut seen = format!(
        "Application {id}: sync {}, health {}",
        or_unknown(&status.sync.status),
        or_unknown(&status.health.status)
    );
    if !status.health.message.is_empty() {
        seen.push_str(&format!(" ({})", short(&status.health.message)));
    }
    if !revision.is_empty() {
        seen.push_str(&format!(" at revision {revision}"));
    }
    let at_expected = sha.is_none_or(|sha| status.sync.has(sha));

    if status.sync.status == "Synced" && status.health.status == "Healthy" && at_expected {
        return Ok(Verdict::ready(seen));
    }
    if let Some(sha) = sha.filter(|_| !at_expected) {
        seen.push_str(&format!(", expected {sha}"));
    } else if let Some(wanted) = expected_revision.filter(|_| sha.is_none()) {
        seen.push_str(&format!(" (targetRevision {wanted})"));
    }
    if let Some(op) = &status.operation_state {
        seen.push_str(&format!("; {}", op.describe()));
    }
    for c in &status.conditions {
        seen.push_str(&format!("; {}: {}", c.kind, short(&c.message)));
    }
    // The Application's health is the worst of its resources': name those, so a Degraded app says
    // which Deployment is stuck instead of sending the user to the Argo CD UI.
    let unhealthy: Vec<String> = status
        .resources
        .iter()
        .filter_map(|r| {
            let health = r.health.as_ref().filter(|h| !h.status.is_empty() && h.status != "Healthy")?;
            let mut out = format!("{} {} {}", r.kind, qualified(&r.namespace, &r.name), health.status);
            if !health.message.is_empty() {
                out.push_str(&format!(" ({})", short(&health.message)));
            }
            Some(out)
        })
        .collect();
    if unhealthy.is_empty()
        && !matches!(status.health.status.as_str(), "Healthy" | "")
        && status.resource_health_source == "appTree"
    {
        seen.push_str(&format!(
            "; Argo CD 3 keeps per-resource health out of the Application's status \
             (resourceHealthSource: appTree): `argocd app get {id}` or the UI names the unhealthy resources"
        ));
    }
    if !unhealthy.is_empty() {
        let more = unhealthy.len().saturating_sub(MAX_RESOURCES);
        seen.push_str(&format!("; not healthy: {}", unhealthy[..unhealthy.len() - more].join(", ")));
        if more > 0 {
            seen.push_str(&format!(" and {more} more"));
        }
    }
    let automated = app
        .spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.automated.as_ref())
        .is_some_and(|a| !a.is_null() && a.get("enabled") != Some(&Value::Bool(false)));
    if !automated && status.sync.status != "Synced" {
        seen.push_str("; automated sync is off, so nothing syncs until someone runs a sync");
    }

    if let Some(op) = status.operation_state.as_ref().filter(|op| op.finished_badly()) {
        let wanted = sha.map(str::to_string).unwrap_or_else(|| status.sync.revision.clone());
        let op_revision = op.revision();
        if wanted.is_empty() || op_revision.is_empty() || op_revision.eq_ignore_ascii_case(&wanted) {
            return Ok(Verdict::failed(format!(
                "{seen}; Argo CD does not retry a failed sync of the same revision: fix the cause and push a new \
                 commit or sync again"
            )));
        }
    }
    Ok(Verdict::waiting(seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "5f2c0a1e9b8d7c6f5e4d3c2b1a0f9e8d7c6b5a49";

    fn app(status: &str) -> String {
        format!(
            r#"{{"apiVersion":"argoproj.io/v1alpha1","kind":"Application",
            "metadata":{{"name":"root","namespace":"argocd"}},
            "spec":{{"syncPolicy":{{"automated":{{"prune":true}}}}}},"status":{status}}}"#
        )
    }

    #[test]
    fn a_fresh_application_without_status_waits() {
        let json = r#"{"kind":"Application","metadata":{"name":"root","namespace":"argocd"},"spec":{}}"#;
        let v = application(Some(json), "argocd", "root", None).unwrap();
        assert!(matches!(&v, Verdict::Waiting { last_seen } if last_seen.contains("no status yet")), "{v}");
    }

    #[test]
    fn synced_and_healthy_at_another_commit_waits_for_the_pinned_one() {
        let other = "0000000000000000000000000000000000000001";
        let json =
            app(&format!(r#"{{"sync":{{"status":"Synced","revision":"{other}"}},"health":{{"status":"Healthy"}}}}"#));
        let v = application(Some(&json), "argocd", "root", Some(SHA)).unwrap();
        assert_eq!(
            v,
            Verdict::waiting(format!(
                "Application argocd/root: sync Synced, health Healthy at revision {other}, expected {SHA}"
            ))
        );
        let v = application(Some(&json), "argocd", "root", Some(&other.to_uppercase())).unwrap();
        assert!(v.is_ready(), "{v}");
    }

    #[test]
    fn a_failed_sync_of_an_older_revision_still_waits() {
        let json = app(&format!(
            r#"{{"sync":{{"status":"OutOfSync","revision":"{SHA}"}},"health":{{"status":"Healthy"}},
            "operationState":{{"phase":"Failed","message":"boom","startedAt":"2026-01-01T00:00:00Z",
            "operation":{{"sync":{{"revision":"1111111111111111111111111111111111111111"}}}},
            "syncResult":{{"revision":"1111111111111111111111111111111111111111"}}}}}}"#
        ));
        let v = application(Some(&json), "argocd", "root", None).unwrap();
        assert!(matches!(&v, Verdict::Waiting { last_seen } if last_seen.contains("sync operation Failed")), "{v}");
    }

    #[test]
    fn argo_cd_3_says_where_per_resource_health_is() {
        let json = app(r#"{"sync":{"status":"Synced"},"health":{"status":"Degraded"},"resourceHealthSource":"appTree",
            "resources":[{"kind":"Deployment","namespace":"web","name":"api"}]}"#);
        let v = application(Some(&json), "argocd", "root", None).unwrap();
        assert!(v.message().contains("`argocd app get argocd/root`"), "{v}");
        // Argo CD 2 (or persisted health): the resources themselves are named.
        let json = app(r#"{"sync":{"status":"Synced"},"health":{"status":"Degraded"},
            "resources":[{"kind":"Deployment","namespace":"web","name":"api","health":{"status":"Degraded"}}]}"#);
        let v = application(Some(&json), "argocd", "root", None).unwrap();
        assert!(v.message().contains("not healthy: Deployment web/api Degraded"), "{v}");
        assert!(!v.message().contains("argocd app get"), "{v}");
    }

    #[test]
    fn automated_sync_disabled_is_reported() {
        let json = r#"{"kind":"Application","metadata":{"name":"root","namespace":"argocd"},
            "spec":{"syncPolicy":{"automated":{"enabled":false}}},
            "status":{"sync":{"status":"OutOfSync"},"health":{"status":"Missing"}}}"#;
        let v = application(Some(json), "argocd", "root", Some("main")).unwrap();
        assert_eq!(
            v.message(),
            "Application argocd/root: sync OutOfSync, health Missing (targetRevision main); automated sync is off, \
             so nothing syncs until someone runs a sync"
        );
    }
}

//! Readiness of the bootstrap's stages, read from `k3s kubectl get … -o json` output, and the
//! wait loop that polls until a stage is ready.
//!
//! Everything here is pure: callers run the command (over SSH) and hand over its standard output,
//! or `None` when kubectl said `Error from server (NotFound)`. Each parser turns one document into
//! a [`Verdict`] whose text says exactly what was observed, because the complaint users have about
//! GitOps bootstraps is waits that time out with nothing but "context deadline exceeded" (Flux
//! provider #527, #609, #696; flux2#4172): the last thing seen is what tells them which Secret,
//! CRD or commit is wrong.
//!
//! * [`kube`]: nodes, the default service account, CRDs, Deployments/StatefulSets, the k3s unit;
//! * [`argocd`]: the root Argo CD `Application`;
//! * [`flux`]: the Flux `Kustomization` and `GitRepository`;
//! * [`wait`]: [`Stage`]-labelled polling with a deadline ([`wait_until`]).
//!
//! # When a verdict is `Failed`
//!
//! `Failed` ends a wait at once, so it is kept for states that the controllers will not leave on
//! their own; everything else is `Waiting`, and the timeout then reports the last state seen:
//! * Flux `spec.suspend: true`: the controller skips the object until someone resumes it;
//! * Flux `Stalled=True`: by the kstatus convention Flux follows, the controller gave up until the
//!   spec changes (invalid URL, invalid expression);
//! * an Argo CD sync operation whose phase is `Failed` or `Error` against the revision the wait
//!   wants: Argo CD keeps the phase `Running` while it still retries, and automated sync "will not
//!   reattempt a sync if the previous sync attempt against the same commit-SHA and parameters had
//!   failed" (argo-cd docs/user-guide/auto_sync.md).
//!
//! Deliberately *not* `Failed`: Flux `Ready=False` of any reason (`ArtifactFailed`,
//! `DependencyNotReady`, `ReconciliationFailed` — e.g. a dry-run refused because a CRD is not
//! installed yet — and `BuildFailed` are all retried every `retryInterval`, and a push fixes a
//! broken build), Argo CD `Degraded` health without a failed operation (pods crash-loop while a
//! dependency starts), `ComparisonError` (the repo server is often still starting), a Deployment
//! past its progress deadline (the image may still arrive), a CRD whose names are not accepted.

pub mod argocd;
pub mod flux;
pub mod kube;
pub mod wait;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

pub use wait::{format_duration, wait_until, ProbeError, Reconciler, Retryable, Stage, WaitError};

/// What one look at a stage found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The stage is done.
    Ready {
        /// What was found, e.g. `3/3 nodes Ready: srv-1, srv-2, agent-1`.
        summary: String,
    },
    /// Not yet; worth looking again.
    Waiting {
        /// What was observed, precise enough to act on if the wait times out, e.g.
        /// `node "srv-1" Ready=False (KubeletNotReady: container runtime network not ready)`.
        last_seen: String,
    },
    /// A state the controllers will not leave on their own (see the module docs); waiting longer
    /// cannot help.
    Failed {
        /// What was observed and why it is final.
        reason: String,
    },
}

impl Verdict {
    /// `Ready` with this summary.
    pub fn ready(summary: impl Into<String>) -> Self {
        Verdict::Ready { summary: summary.into() }
    }

    /// `Waiting` with this observation.
    pub fn waiting(last_seen: impl Into<String>) -> Self {
        Verdict::Waiting { last_seen: last_seen.into() }
    }

    /// `Failed` with this reason.
    pub fn failed(reason: impl Into<String>) -> Self {
        Verdict::Failed { reason: reason.into() }
    }

    /// Whether this is `Ready`.
    pub fn is_ready(&self) -> bool {
        matches!(self, Verdict::Ready { .. })
    }

    /// The summary, observation or reason, whichever this verdict carries.
    pub fn message(&self) -> &str {
        match self {
            Verdict::Ready { summary } => summary,
            Verdict::Waiting { last_seen } => last_seen,
            Verdict::Failed { reason } => reason,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Ready { summary } => write!(f, "ready: {summary}"),
            Verdict::Waiting { last_seen } => write!(f, "waiting: {last_seen}"),
            Verdict::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// kubectl output that cannot be judged. Not retryable: the same command prints the same kind of
/// document, so the caller has a bug (wrong command, wrong object) or kubectl printed something
/// other than JSON.
#[derive(Debug, thiserror::Error)]
pub enum ReadinessError {
    /// The output is not JSON.
    #[error("{what}: kubectl output is not JSON ({source}); output starts with {excerpt:?}")]
    InvalidJson {
        /// What was being read, e.g. `node list`.
        what: String,
        /// The first characters of the output.
        excerpt: String,
        /// The JSON parser's complaint.
        source: serde_json::Error,
    },
    /// The document is JSON but of another kind.
    #[error("{what}: expected {expected}, got {found}")]
    WrongKind {
        /// What was being read.
        what: String,
        /// The kind(s) accepted.
        expected: String,
        /// The `kind` found (or a description when there is none).
        found: String,
    },
    /// The document is of the right kind but a field has the wrong type.
    #[error("{what}: unexpected document shape ({source})")]
    Malformed {
        /// What was being read.
        what: String,
        /// The deserializer's complaint, naming the field.
        source: serde_json::Error,
    },
    /// The document is another object than the one asked about.
    #[error("expected {expected}, got {found}: the command read another object")]
    WrongObject {
        /// `Kind namespace/name` asked about.
        expected: String,
        /// `Kind namespace/name` found.
        found: String,
    },
}

/// `metadata` fields the parsers use.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Meta {
    name: String,
    namespace: String,
    generation: Option<i64>,
    deletion_timestamp: Option<String>,
}

impl Meta {
    /// `namespace/name`, or `name` for cluster-scoped objects.
    fn id(&self) -> String {
        qualified(&self.namespace, &self.name)
    }
}

/// A standard status condition (`metav1.Condition` and the older per-kind condition types share
/// these fields).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
    reason: String,
    message: String,
    observed_generation: Option<i64>,
}

impl Condition {
    fn is_true(&self) -> bool {
        self.status == "True"
    }
}

impl fmt::Display for Condition {
    /// `Ready=False (Reason: message)`, leaving out what is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.status.is_empty() { "Unknown" } else { &self.status };
        write!(f, "{}={}", self.kind, status)?;
        match (self.reason.is_empty(), self.message.is_empty()) {
            (true, true) => Ok(()),
            (false, true) => write!(f, " ({})", self.reason),
            (true, false) => write!(f, " ({})", short(&self.message)),
            (false, false) => write!(f, " ({}: {})", self.reason, short(&self.message)),
        }
    }
}

fn condition<'a>(conditions: &'a [Condition], kind: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.kind == kind)
}

fn qualified(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

/// Longest message kept in a verdict: Flux and Argo CD put whole kubectl/kustomize error dumps in
/// `message`, and a verdict is logged on every change and shown in a Terraform diagnostic.
const MAX_MESSAGE: usize = 300;

/// `message` on one line (whitespace runs collapsed) and at most [`MAX_MESSAGE`] characters.
fn short(message: &str) -> String {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_MESSAGE {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(MAX_MESSAGE).collect();
        cut.push('…');
        cut
    }
}

fn parse_json(what: &str, text: &str) -> Result<Value, ReadinessError> {
    serde_json::from_str(text).map_err(|source| ReadinessError::InvalidJson {
        what: what.to_string(),
        excerpt: text.chars().take(80).collect(),
        source,
    })
}

fn kind_of(doc: &Value) -> String {
    match doc.get("kind").and_then(Value::as_str) {
        Some(kind) => format!("kind {kind}"),
        None => "a document without kind".to_string(),
    }
}

fn decode<T: DeserializeOwned>(what: &str, doc: Value) -> Result<T, ReadinessError> {
    serde_json::from_value(doc).map_err(|source| ReadinessError::Malformed { what: what.to_string(), source })
}

/// One object of `kind`.
fn single<T: DeserializeOwned>(what: &str, kind: &str, text: &str) -> Result<T, ReadinessError> {
    let doc = parse_json(what, text)?;
    if doc.get("kind").and_then(Value::as_str) != Some(kind) {
        return Err(ReadinessError::WrongKind {
            what: what.to_string(),
            expected: format!("a {kind}"),
            found: kind_of(&doc),
        });
    }
    decode(what, doc)
}

/// The items of a `kubectl get KIND … -o json` answer. kubectl prints a `List` when it got several
/// names or none, but the bare object when exactly one name was asked for and found; when some
/// names are missing it prints the found ones and exits 1, and when all are missing stdout may be
/// empty — so `None` and blank output are an empty list.
fn items<T: DeserializeOwned>(what: &str, kinds: &[&str], text: Option<&str>) -> Result<Vec<T>, ReadinessError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let doc = parse_json(what, text)?;
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let expected = || format!("a List of {} or one of them", kinds.join("/"));
    let docs = if kind == "List" || kinds.iter().any(|k| kind == format!("{k}List")) {
        match doc.get("items") {
            Some(Value::Array(items)) => items.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(_) => {
                return Err(ReadinessError::WrongKind {
                    what: what.to_string(),
                    expected: expected(),
                    found: "a List whose items is not an array".to_string(),
                })
            }
        }
    } else if kinds.contains(&kind) {
        vec![doc]
    } else {
        return Err(ReadinessError::WrongKind { what: what.to_string(), expected: expected(), found: kind_of(&doc) });
    };
    let mut out = Vec::with_capacity(docs.len());
    for item in docs {
        let item_kind = item.get("kind").and_then(Value::as_str).unwrap_or_default();
        // Items of a typed list (NodeList) carry no kind; a `List` from `kubectl get` does.
        if !item_kind.is_empty() && !kinds.contains(&item_kind) {
            return Err(ReadinessError::WrongKind {
                what: what.to_string(),
                expected: expected(),
                found: format!("an item of kind {item_kind}"),
            });
        }
        out.push(decode(what, item)?);
    }
    Ok(out)
}

/// Whether `s` is a full Git commit id (40 hex digits, SHA-1; 64 for SHA-256 repositories).
pub fn is_commit_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The expected revision, when it pins a commit (a branch, tag or `HEAD` is only reported).
fn pinned(expected_revision: Option<&str>) -> Option<&str> {
    expected_revision.filter(|r| is_commit_sha(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_display_leaves_out_empty_parts() {
        let mut c = Condition { kind: "Ready".into(), status: "False".into(), ..Default::default() };
        assert_eq!(c.to_string(), "Ready=False");
        c.reason = "KubeletNotReady".into();
        assert_eq!(c.to_string(), "Ready=False (KubeletNotReady)");
        c.message = "container runtime\nnetwork   not ready".into();
        assert_eq!(c.to_string(), "Ready=False (KubeletNotReady: container runtime network not ready)");
        c.status.clear();
        assert!(c.to_string().starts_with("Ready=Unknown"));
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE + 10);
        let s = short(&long);
        assert_eq!(s.chars().count(), MAX_MESSAGE + 1);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn commit_shas_are_40_or_64_hex_digits() {
        assert!(is_commit_sha("0123456789abcdef0123456789abcdef01234567"));
        assert!(is_commit_sha(&"A".repeat(64)));
        assert!(!is_commit_sha("main"));
        assert!(!is_commit_sha("0123456"));
        assert!(!is_commit_sha("g123456789abcdef0123456789abcdef01234567"));
    }

    #[test]
    fn items_accepts_a_list_a_typed_list_a_single_object_or_nothing() {
        #[derive(Debug, Deserialize)]
        struct Item {
            metadata: Meta,
        }
        let names = |v: Vec<Item>| v.into_iter().map(|i| i.metadata.name).collect::<Vec<_>>();
        let list = r#"{"kind":"List","items":[{"kind":"Node","metadata":{"name":"a"}}]}"#;
        assert_eq!(names(items("nodes", &["Node"], Some(list)).unwrap()), ["a"]);
        let typed = r#"{"kind":"NodeList","items":[{"metadata":{"name":"b"}}]}"#;
        assert_eq!(names(items("nodes", &["Node"], Some(typed)).unwrap()), ["b"]);
        let one = r#"{"kind":"Node","metadata":{"name":"c"}}"#;
        assert_eq!(names(items("nodes", &["Node"], Some(one)).unwrap()), ["c"]);
        assert!(items::<Item>("nodes", &["Node"], None).unwrap().is_empty());
        assert!(items::<Item>("nodes", &["Node"], Some(" \n")).unwrap().is_empty());
        let err = items::<Item>("nodes", &["Node"], Some(r#"{"kind":"Pod"}"#)).unwrap_err();
        assert!(err.to_string().contains("expected a List of Node or one of them, got kind Pod"), "{err}");
        let err = items::<Item>("nodes", &["Node"], Some("Error from server")).unwrap_err();
        assert!(matches!(err, ReadinessError::InvalidJson { .. }));
        assert!(err.to_string().contains("\"Error from server\""), "{err}");
    }
}

//! Integration tests of `kvm_bootstrap::readiness`: recorded `kubectl get -o json` documents
//! (tests/fixtures/readiness) judged by each parser, the Argo CD and Flux fixtures checked against
//! the real CRD schemas (so they are shapes the API server accepts), and the wait loop.

use kvm_testkit::crd_schema;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kvm_bootstrap::readiness::argocd::application;
use kvm_bootstrap::readiness::flux::{git_repository, kustomization};
use kvm_bootstrap::readiness::kube::{crds, deployments, nodes, service_account};
use kvm_bootstrap::readiness::{wait_until, ProbeError, ReadinessError, Reconciler, Stage, Verdict, WaitError};
use serde_json::Value;

const SHA: &str = "3f8a2c1d9e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39";
const OLD: &str = "9c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9";

fn fixture(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/readiness/");
    std::fs::read_to_string(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn waiting(v: Verdict) -> String {
    match v {
        Verdict::Waiting { last_seen } => last_seen,
        other => panic!("expected Waiting, got {other:?}"),
    }
}

fn ready(v: Verdict) -> String {
    match v {
        Verdict::Ready { summary } => summary,
        other => panic!("expected Ready, got {other:?}"),
    }
}

fn failed(v: Verdict) -> String {
    match v {
        Verdict::Failed { reason } => reason,
        other => panic!("expected Failed, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures against the CRDs

/// Fields the schema does not declare (where it lists `properties` and does not preserve unknown
/// fields): the API server would prune them, so a fixture using one is not what kubectl returns.
fn undeclared(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    match (value, schema.get("properties").and_then(Value::as_object)) {
        (Value::Object(obj), Some(props)) => {
            let open = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            for (k, v) in obj {
                match props.get(k) {
                    Some(sub) => undeclared(sub, v, &format!("{path}.{k}"), out),
                    None if open => {}
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(items), _) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    undeclared(item, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn check_fixtures(crd: &str, api_version: &str, files: &[&str]) {
    let schema = crd_schema::crd_json_schema(crd, api_version);
    let validator = jsonschema::validator_for(&schema).expect("CRD schema compiles");
    for file in files {
        let doc: Value = serde_json::from_str(&fixture(file)).unwrap();
        assert_eq!(doc["apiVersion"], api_version, "{file}");
        assert!(doc["status"].is_object(), "{file} has a status");
        let errors: Vec<String> =
            validator.iter_errors(&doc).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
        let mut extra = Vec::new();
        undeclared(&schema, &doc, "", &mut extra);
        assert!(extra.is_empty(), "{file}: fields {crd} does not declare: {extra:?}");
        // The checker really looks at status: a wrong type there is refused.
        let mut broken = doc.clone();
        broken["status"]["conditions"] = Value::String("Ready".into());
        assert!(!validator.is_valid(&broken), "{file}: a broken status passed");
    }
}

#[test]
fn application_fixtures_validate_against_the_crd() {
    check_fixtures(
        "argoproj.io_applications.yaml",
        "argoproj.io/v1alpha1",
        &[
            "application-synced-healthy.json",
            "application-progressing.json",
            "application-degraded-failed.json",
            "application-out-of-sync.json",
            "application-comparison-error.json",
        ],
    );
}

#[test]
fn flux_fixtures_validate_against_the_crds() {
    check_fixtures(
        "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
        "kustomize.toolkit.fluxcd.io/v1",
        &[
            "kustomization-ready.json",
            "kustomization-progressing.json",
            "kustomization-failed.json",
            "kustomization-suspended.json",
        ],
    );
    check_fixtures(
        "source.toolkit.fluxcd.io_gitrepositories.yaml",
        "source.toolkit.fluxcd.io/v1",
        &["gitrepository-ready.json", "gitrepository-failing.json"],
    );
}

// ---------------------------------------------------------------------------------------------
// Core Kubernetes

#[test]
fn nodes_all_ready() {
    let summary = ready(nodes(Some(&fixture("nodes-all-ready.json")), 2).unwrap());
    assert_eq!(summary, "2/2 nodes Ready: srv-1, agent-1");
}

#[test]
fn nodes_one_not_ready_says_which_and_why() {
    let seen = waiting(nodes(Some(&fixture("nodes-one-not-ready.json")), 2).unwrap());
    assert_eq!(
        seen,
        "2/2 nodes registered, 1 not Ready: node \"agent-1\" Ready=False (KubeletNotReady: container runtime network \
         not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin \
         not initialized); Ready: srv-1"
    );
}

#[test]
fn nodes_fewer_than_expected() {
    let seen = waiting(nodes(Some(&fixture("nodes-fewer-than-expected.json")), 2).unwrap());
    assert_eq!(seen, "1/2 nodes registered; Ready: srv-1");
    // More registered than expected is fine: agents may join beyond the minimum.
    assert!(nodes(Some(&fixture("nodes-all-ready.json")), 1).unwrap().is_ready());
}

#[test]
fn service_account_exists_or_not() {
    let summary = ready(service_account(Some(&fixture("serviceaccount-default.json")), "default", "default").unwrap());
    assert_eq!(summary, "serviceaccount default/default exists");
    assert_eq!(
        waiting(service_account(None, "default", "default").unwrap()),
        "serviceaccount default/default not found"
    );
    let err = service_account(Some(&fixture("nodes-all-ready.json")), "default", "default").unwrap_err();
    assert!(matches!(err, ReadinessError::WrongKind { .. }));
    assert_eq!(err.to_string(), "serviceaccount default/default: expected a ServiceAccount, got kind List");
}

const ARGO_CRDS: [&str; 3] = ["applications.argoproj.io", "applicationsets.argoproj.io", "appprojects.argoproj.io"];

#[test]
fn crds_established() {
    let summary = ready(crds(Some(&fixture("crds-established.json")), &ARGO_CRDS).unwrap());
    assert_eq!(
        summary,
        "3 CRDs Established: applications.argoproj.io, applicationsets.argoproj.io, appprojects.argoproj.io"
    );
}

#[test]
fn crds_one_missing_is_named() {
    // Argo CD ≥ 3.3's ApplicationSet CRD is refused by client-side apply (too long an annotation):
    // the other CRDs are there and only this one is missing.
    let seen = waiting(crds(Some(&fixture("crds-one-missing.json")), &ARGO_CRDS).unwrap());
    assert_eq!(seen, "CRDs not found: applicationsets.argoproj.io");
    let seen = waiting(crds(None, &["sealedsecrets.bitnami.com"]).unwrap());
    assert_eq!(seen, "CRDs not found: sealedsecrets.bitnami.com");
}

#[test]
fn crd_not_yet_established() {
    let seen = waiting(crds(Some(&fixture("crd-not-established.json")), &["sealedsecrets.bitnami.com"]).unwrap());
    assert_eq!(
        seen,
        "CRDs not yet Established: sealedsecrets.bitnami.com (Established=False (Installing: the initial names have \
         been accepted))"
    );
}

#[test]
fn deployments_and_statefulset_available() {
    let required = ["argocd-server", "argocd-repo-server", "argocd-redis", "argocd-application-controller"];
    let summary = ready(deployments(Some(&fixture("deployments-available.json")), "argocd", &required).unwrap());
    assert_eq!(
        summary,
        "4/4 available in argocd: argocd-server 1/1, argocd-repo-server 1/1, argocd-redis 1/1, \
         argocd-application-controller 1/1"
    );
}

#[test]
fn deployment_zero_of_one() {
    // One name asked for: kubectl prints the bare Deployment, not a List.
    let json = fixture("deployment-unavailable.json");
    let seen = waiting(deployments(Some(&json), "kube-system", &["sealed-secrets-controller"]).unwrap());
    assert_eq!(
        seen,
        "deployment kube-system/sealed-secrets-controller: 0/1 available (Available=False \
         (MinimumReplicasUnavailable: Deployment does not have minimum availability.))"
    );
}

#[test]
fn deployment_missing_is_named() {
    let required = ["source-controller", "kustomize-controller", "helm-controller", "notification-controller"];
    let seen = waiting(deployments(Some(&fixture("deployments-missing-one.json")), "flux-system", &required).unwrap());
    assert_eq!(seen, "deployment flux-system/helm-controller not found");
}

// ---------------------------------------------------------------------------------------------
// Argo CD

fn app(file: &str, expected: Option<&str>) -> Verdict {
    application(Some(&fixture(file)), "argocd", "root", expected).unwrap()
}

#[test]
fn application_synced_and_healthy() {
    let summary = ready(app("application-synced-healthy.json", Some(SHA)));
    assert_eq!(summary, format!("Application argocd/root: sync Synced, health Healthy at revision {SHA}"));
    // A branch cannot be compared with the resolved commit: reported, not required.
    assert!(app("application-synced-healthy.json", Some("main")).is_ready());
    assert!(app("application-synced-healthy.json", None).is_ready());
    // Pinned to another commit: not there yet.
    let seen = waiting(app("application-synced-healthy.json", Some(OLD)));
    assert_eq!(
        seen,
        format!(
            "Application argocd/root: sync Synced, health Healthy at revision {SHA}, expected {OLD}; sync operation \
             Succeeded at revision {SHA}: successfully synced (all tasks run)"
        )
    );
}

#[test]
fn application_progressing() {
    let seen = waiting(app("application-progressing.json", Some("main")));
    assert_eq!(
        seen,
        format!(
            "Application argocd/root: sync Synced, health Progressing at revision {SHA} (targetRevision main); sync \
             operation Running at revision {SHA}: waiting for healthy state of argoproj.io/Application/podinfo; not healthy: Application argocd/podinfo Progressing"
        )
    );
}

#[test]
fn application_out_of_sync() {
    let seen = waiting(app("application-out-of-sync.json", None));
    assert_eq!(
        seen,
        format!(
            "Application argocd/root: sync OutOfSync, health Missing at revision {SHA}; not healthy: Application \
             argocd/podinfo Missing"
        )
    );
}

#[test]
fn application_degraded_after_a_failed_sync_fails_at_once() {
    let reason = failed(app("application-degraded-failed.json", Some(SHA)));
    assert!(reason.starts_with(&format!("Application argocd/root: sync OutOfSync, health Degraded at revision {SHA}")));
    assert!(
        reason.contains(&format!("sync operation Failed at revision {SHA} (retry 5/5): one or more objects failed"))
    );
    assert!(reason.contains(&format!("; SyncError: Failed sync attempt to {SHA}: one or more objects")), "{reason}");
    assert!(reason.contains("the server could not find the requested resource"), "{reason}");
    assert!(
        reason.contains(
            "; not healthy: SealedSecret apps/db-credentials Missing, Deployment apps/db Degraded (Deployment \"db\" \
             exceeded its progress deadline)"
        ),
        "{reason}"
    );
    assert!(reason.ends_with(
        "does not retry a failed sync of the same revision: fix the cause and push a new commit or sync again"
    ));
    assert!(matches!(app("application-degraded-failed.json", None), Verdict::Failed { .. }));
    // Waiting for a newer commit: automated sync will try that one, so it is not final.
    let seen = waiting(app("application-degraded-failed.json", Some(OLD)));
    assert!(seen.contains("sync operation Failed"), "{seen}");
}

#[test]
fn application_comparison_error_is_reported() {
    let seen = waiting(app("application-comparison-error.json", None));
    assert!(seen.starts_with("Application argocd/root: sync Unknown, health Healthy; ComparisonError: "), "{seen}");
    assert!(seen.contains("SSH agent requested but SSH_AUTH_SOCK not-specified"), "{seen}");
}

#[test]
fn application_missing() {
    let seen = waiting(application(None, "argocd", "root", Some(SHA)).unwrap());
    assert_eq!(seen, "Application argocd/root not found");
}

#[test]
fn application_parser_refuses_other_documents() {
    let err = application(Some(&fixture("kustomization-ready.json")), "argocd", "root", None).unwrap_err();
    assert_eq!(err.to_string(), "Application argocd/root: expected a Application, got kind Kustomization");
    let err = application(Some("Error from server (Forbidden): applications.argoproj.io"), "argocd", "root", None)
        .unwrap_err();
    assert!(matches!(err, ReadinessError::InvalidJson { .. }));
    assert!(err.to_string().starts_with("Application argocd/root: kubectl output is not JSON"), "{err}");
    let err = application(Some(&fixture("application-out-of-sync.json")), "argocd", "apps", None).unwrap_err();
    assert!(matches!(err, ReadinessError::WrongObject { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Flux

fn ks(file: &str, expected: Option<&str>) -> Verdict {
    kustomization(Some(&fixture(file)), "flux-system", "flux-system", expected).unwrap()
}

#[test]
fn kustomization_ready() {
    let summary = ready(ks("kustomization-ready.json", Some(SHA)));
    assert_eq!(
        summary,
        format!(
            "Kustomization flux-system/flux-system: Ready=True (ReconciliationSucceeded: Applied revision: \
             main@sha1:{SHA}) at revision main@sha1:{SHA}"
        )
    );
    let seen = waiting(ks("kustomization-ready.json", Some(OLD)));
    assert!(seen.ends_with(&format!("; expected commit {OLD}")), "{seen}");
}

#[test]
fn kustomization_progressing() {
    let seen = waiting(ks("kustomization-progressing.json", None));
    assert_eq!(
        seen,
        format!(
            "Kustomization flux-system/flux-system: Ready=Unknown (Progressing: Reconciliation in progress) at \
             revision main@sha1:{OLD}; generation 2 not yet observed (observedGeneration 1)"
        )
    );
}

#[test]
fn kustomization_failed_waits_and_says_why() {
    // A dry-run refused for a CRD that is not installed yet (flux2#4172) is retried by Flux.
    let seen = waiting(ks("kustomization-failed.json", Some(SHA)));
    assert_eq!(
        seen,
        format!(
            "Kustomization flux-system/flux-system: Ready=False (ReconciliationFailed: SealedSecret/apps/db-credentials \
             dry-run failed: no matches for kind \"SealedSecret\" in version \"bitnami.com/v1alpha1\") at revision \
             main@sha1:{OLD}; expected commit {SHA}; attempted revision main@sha1:{SHA}"
        )
    );
}

#[test]
fn kustomization_suspended_fails() {
    let reason = failed(ks("kustomization-suspended.json", None));
    assert_eq!(
        reason,
        "Kustomization flux-system/flux-system is suspended (spec.suspend: true): Flux will not reconcile it until \
         it is resumed (flux resume kustomization flux-system -n flux-system)"
    );
}

#[test]
fn kustomization_stalled_fails() {
    let mut doc: Value = serde_json::from_str(&fixture("kustomization-failed.json")).unwrap();
    doc["status"]["conditions"].as_array_mut().unwrap().push(serde_json::json!({
        "type": "Stalled", "status": "True", "reason": "InvalidCELExpression",
        "message": "failed to parse healthCheckExprs", "lastTransitionTime": "2026-03-02T10:42:30Z"}));
    let reason = failed(kustomization(Some(&doc.to_string()), "flux-system", "flux-system", None).unwrap());
    assert_eq!(
        reason,
        format!(
            "Kustomization flux-system/flux-system: Stalled=True (InvalidCELExpression: failed to parse \
             healthCheckExprs) at revision main@sha1:{OLD}; Flux does not retry until the spec changes"
        )
    );
}

#[test]
fn kustomization_missing() {
    let seen = waiting(kustomization(None, "flux-system", "flux-system", None).unwrap());
    assert_eq!(seen, "Kustomization flux-system/flux-system not found");
}

#[test]
fn git_repository_ready_and_failing() {
    let repo = |file: &str, expected| git_repository(Some(&fixture(file)), "flux-system", "flux-system", expected);
    let summary = ready(repo("gitrepository-ready.json", Some(SHA)).unwrap());
    assert_eq!(
        summary,
        format!(
            "GitRepository flux-system/flux-system: Ready=True (Succeeded: stored artifact for revision \
             'main@sha1:{SHA}') at revision main@sha1:{SHA}"
        )
    );
    let seen = waiting(repo("gitrepository-failing.json", None).unwrap());
    assert_eq!(
        seen,
        "GitRepository flux-system/flux-system: Ready=False (GitOperationFailed: failed to checkout and determine \
         revision: unable to clone 'ssh://git@git.example.com/org/gitops.git': ssh: handshake failed: knownhosts: \
         key is unknown); Reconciling=True (ProgressingWithRetry: reconciliation in progress)"
    );
    let seen = waiting(git_repository(None, "flux-system", "flux-system", None).unwrap());
    assert_eq!(seen, "GitRepository flux-system/flux-system not found");
}

// ---------------------------------------------------------------------------------------------
// The wait loop

const MS: Duration = Duration::from_millis(1);

#[test]
fn wait_returns_the_summary_after_some_polls() {
    let mut polls = 0;
    let summary = wait_until(Stage::Nodes, 2000 * MS, MS, || {
        polls += 1;
        Ok::<_, ReadinessError>(if polls < 4 {
            Verdict::waiting(format!("{}/3 nodes registered", polls))
        } else {
            Verdict::ready("3/3 nodes Ready")
        })
    })
    .unwrap();
    assert_eq!(summary, "3/3 nodes Ready");
    assert_eq!(polls, 4);
}

#[test]
fn wait_stops_at_once_on_failed() {
    let mut polls = 0;
    let start = Instant::now();
    let err = wait_until(Stage::RootSync(Reconciler::Flux), Duration::from_secs(10), 50 * MS, || {
        polls += 1;
        Ok::<_, ReadinessError>(Verdict::failed("Kustomization flux-system/flux-system is suspended"))
    })
    .unwrap_err();
    assert_eq!(polls, 1);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(matches!(err, WaitError::Failed { stage: Stage::RootSync(Reconciler::Flux), .. }));
    assert_eq!(err.to_string(), "root Kustomization sync failed: Kustomization flux-system/flux-system is suspended");
}

#[test]
fn wait_timeout_names_the_stage_and_the_last_thing_seen() {
    let json = fixture("application-out-of-sync.json");
    let start = Instant::now();
    let err = wait_until(Stage::RootSync(Reconciler::ArgoCd), 30 * MS, 5 * MS, || {
        application(Some(&json), "argocd", "root", None)
    })
    .unwrap_err();
    let waited = start.elapsed();
    assert!(waited >= 30 * MS && waited < Duration::from_secs(2), "{waited:?}");
    let WaitError::Timeout { stage, waited, ref last_seen } = err else { panic!("{err:?}") };
    assert_eq!(stage, Stage::RootSync(Reconciler::ArgoCd));
    assert!(waited >= 30 * MS);
    assert!(
        last_seen.starts_with(&format!("Application argocd/root: sync OutOfSync, health Missing at revision {SHA}"))
    );
    let message = err.to_string();
    assert!(message.starts_with("timed out after 3"), "{message}");
    assert!(
        message.contains(&format!(
            "ms waiting for root Application to be Synced and Healthy; last seen: Application argocd/root: sync \
             OutOfSync, health Missing at revision {SHA}"
        )),
        "{message}"
    );
}

#[test]
fn wait_timeout_keeps_the_latest_observation() {
    let mut polls = 0;
    let err = wait_until(Stage::SealedSecretsController, 40 * MS, 2 * MS, || {
        polls += 1;
        let available = if polls < 3 { 0 } else { 1 };
        Ok::<_, ReadinessError>(Verdict::waiting(format!(
            "deployment kube-system/sealed-secrets-controller: {available}/2 available"
        )))
    })
    .unwrap_err();
    assert!(polls >= 3, "{polls}");
    let WaitError::Timeout { last_seen, .. } = &err else { panic!("{err:?}") };
    assert_eq!(last_seen, "deployment kube-system/sealed-secrets-controller: 1/2 available");
    assert!(err
        .to_string()
        .contains("waiting for the Sealed Secrets controller to be available; last seen: deployment"));
}

#[test]
fn wait_retries_transient_probe_errors_and_stops_on_permanent_ones() {
    let mut polls = 0;
    let summary = wait_until(Stage::K3sService, 2000 * MS, MS, || {
        polls += 1;
        match polls {
            1 | 2 => Err(ProbeError::Transient("connection to the server 127.0.0.1:6443 was refused")),
            _ => Ok(Verdict::ready("unit k3s is active")),
        }
    })
    .unwrap();
    assert_eq!((summary.as_str(), polls), ("unit k3s is active", 3));

    // A transient error that never clears is the last thing seen at the timeout.
    let err =
        wait_until(Stage::K3sService, 10 * MS, MS, || Err::<Verdict, _>(ProbeError::Transient("refused"))).unwrap_err();
    assert!(err.to_string().ends_with("last seen: readiness check failed (retrying): refused"), "{err}");

    let mut polls = 0;
    let err = wait_until(Stage::ServiceAccount, 2000 * MS, MS, || {
        polls += 1;
        service_account(Some("not json"), "default", "default")
    })
    .unwrap_err();
    assert_eq!(polls, 1);
    assert!(matches!(
        err,
        WaitError::Probe { stage: Stage::ServiceAccount, source: ReadinessError::InvalidJson { .. } }
    ));
    assert!(err.to_string().starts_with("default service account: checking readiness failed: serviceaccount"));
}

/// Everything the crate logs in this test binary. One global subscriber, installed before the
/// first event: a scoped one can miss events whose call site another test thread registered first.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber =
            tracing_subscriber::fmt().with_ansi(false).with_writer(move || SharedWriter(writer.clone())).finish();
        tracing::subscriber::set_global_default(subscriber).expect("only this test installs a subscriber");
        buf
    })
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn wait_logs_each_change_once_not_every_poll() {
    let logs = logs();
    let mut polls = 0;
    wait_until(Stage::ReconcilerCrds(Reconciler::ArgoCd), 2000 * MS, MS, || {
        polls += 1;
        Ok::<_, ReadinessError>(match polls {
            1..=4 => Verdict::waiting("log-marker-7f3: CRDs not found: applicationsets.argoproj.io"),
            5..=8 => Verdict::waiting("log-marker-7f3: CRDs not yet Established: applicationsets.argoproj.io"),
            _ => Verdict::ready("log-marker-7f3: 3 CRDs Established"),
        })
    })
    .unwrap();
    assert_eq!(polls, 9);
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("log-marker-7f3")).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].contains("waiting for the Argo CD CRDs to be Established: log-marker-7f3: CRDs not found"));
    assert!(lines[1].contains("log-marker-7f3: CRDs not yet Established"));
    assert!(lines[2].contains("Argo CD CRDs ready: log-marker-7f3: 3 CRDs Established"), "{}", lines[2]);
    assert!(lines.iter().all(|l| l.contains(" INFO ")), "{lines:#?}");
}

//! `kvm_gitops_cluster`: k3s, the Sealed Secrets keys and controller, and a reconciler pulling
//! from Git, bootstrapped over SSH by the `kvm-bootstrap` engine.
//!
//! The engine is synchronous (libssh2) and idempotent: create and update both run the whole
//! install, which changes only what differs. Read asks every node whether k3s is active and the
//! first server whether the root is in sync; a cluster found unhealthy marks `healthy = false`,
//! which [`GitopsCluster::modify_plan`] turns into an update, i.e. a re-bootstrap.

mod model;
mod schema;
mod snapshots;
mod source;
mod spec;

pub use schema::cluster_name;

use async_trait::async_trait;
use kvm_bootstrap::engine::{ClusterStatus, Engine, EngineError, Report};
use kvm_bootstrap::k3s::config::server_url;
use kvm_bootstrap::k3s::pki::ClusterPki;
use tf_cty::Value;

use super::{Context, Failure, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Field, Model};
use crate::schema::Schema;
use model::{ClusterModel, ClusterPlan};
use spec::{Cluster, Operation};

/// The `kvm_gitops_cluster` resource type.
pub struct GitopsCluster {
    schema: Schema,
}

impl GitopsCluster {
    /// The resource type with its schema.
    pub fn new() -> Self {
        GitopsCluster { schema: schema::schema() }
    }
}

impl Default for GitopsCluster {
    fn default() -> Self {
        Self::new()
    }
}

/// What a change to means a re-bootstrap (`None` for a value that is no object).
fn settings(value: &Value) -> Option<ClusterPlan> {
    ClusterPlan::from_value(value).ok().map(|p| p.settings())
}

/// `api_server_url`, `cluster_ca_certificate` and `kubeconfig` as far as the plan knows them: each
/// unknown until the PKI and the API address are both known.
fn access(c: &ClusterPlan) -> Result<[Field<String>; 3], Diagnostic> {
    let url = spec::api_address(c).map(|address| server_url(&address));
    let pki = c.pki.known().map(|text| spec::pki(text)).transpose()?;
    access_of(pki.as_ref(), url)
}

/// The three access attributes from a PKI and a server URL, where known.
fn access_of(pki: Option<&ClusterPki>, url: Option<String>) -> Result<[Field<String>; 3], Diagnostic> {
    let known = |v: Option<String>| v.map_or(Field::Unknown, Field::Known);
    let ca = known(pki.map(|p| p.server_ca_pem().to_string()));
    let kubeconfig = match (pki, &url) {
        (Some(pki), Some(url)) => {
            Some(pki.kubeconfig(url).map_err(|e| Diagnostic::error("Cannot build the kubeconfig", e.to_string()))?)
        }
        _ => None,
    };
    Ok([known(url), ca, known(kubeconfig)])
}

fn engine_error(e: EngineError) -> Diagnostic {
    Diagnostic::error(
        "Cluster bootstrap failed",
        format!(
            "{e}\n\nThe cluster is saved as tainted, so the next apply replaces it: k3s is uninstalled from \
             every node and bootstrapped afresh with the same CA and keys. To resume instead (every step is \
             idempotent and keeps what is done), fix the cause, run `terraform untaint` on it and apply again."
        ),
    )
}

/// Runs `f` on a blocking thread, unless Terraform asks the provider to stop first.
async fn blocking<T: Send + 'static>(
    ctx: &Context,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Diagnostic> {
    let task = tokio::task::spawn_blocking(f);
    tokio::select! {
        joined = task => joined.map_err(|e| Diagnostic::error("Internal error", format!("{what}: {e}"))),
        _ = ctx.cancel.cancelled() => Err(Diagnostic::error(
            "Interrupted",
            format!(
                "{what} was interrupted. The cluster is saved as tainted; `terraform untaint` it and apply again \
                 to finish it, or apply as is to replace it."
            ),
        )),
    }
}

impl GitopsCluster {
    /// Runs the whole install for `planned` and returns the new state; a failure carries the
    /// planned state with `healthy = false`, so Terraform keeps tracking (tainted) whatever the
    /// install did on the nodes.
    async fn install(&self, ctx: &Context, planned: &Value, op: Operation) -> Outcome<Value> {
        let mut state = ClusterModel::from_value(planned)?;
        let name = state.name.clone();
        state.id = Field::Known(name.clone());
        let cluster = spec::of(&state, op)?;
        // The PKI as the spec parsed it, and the API address by the engine's own rule.
        [state.api_server_url, state.cluster_ca_certificate, state.kubeconfig] =
            access_of(Some(&cluster.secrets.pki), Some(cluster.spec.server_url()))?;
        let partial = |mut s: ClusterModel| {
            s.healthy = Field::Known(false);
            s.sync_status = Field::Known("bootstrap did not finish".into());
            s.to_value()
        };
        tracing::info!(cluster = %name, servers = cluster.spec.servers.len(), agents = cluster.spec.agents.len(), "bootstrapping cluster");
        let result = blocking(ctx, "the bootstrap", move || {
            let Cluster { spec, secrets } = cluster;
            Engine::new(&spec, &secrets).and_then(|e| e.install())
        })
        .await;
        match result {
            Ok(Ok(report)) => {
                log_report(&report);
                state.healthy = Field::Known(true);
                state.sync_status = Field::Known(report.sync.as_deref().unwrap_or("no repository configured").into());
                Ok(state.to_value())
            }
            Ok(Err(e)) => Err(Failure { diagnostics: engine_error(e).into(), partial_state: Some(partial(state)) }),
            Err(d) => Err(Failure { diagnostics: d.into(), partial_state: Some(partial(state)) }),
        }
    }
}

fn log_report(report: &Report) {
    for step in &report.steps {
        tracing::info!(step = step.step, node = %step.node, changed = step.changed, seconds = step.elapsed.as_secs_f64(), "bootstrap step done");
    }
}

/// What a status means for the state: `None` when every node answers and none shows a trace of
/// the bootstrap (the machines were rebuilt or k3s uninstalled: plan a new bootstrap), else
/// `healthy` and the reconciler's report. A half-done bootstrap stays in the state.
fn judge(status: &ClusterStatus) -> Option<(bool, Option<String>)> {
    if status.nodes.iter().all(|n| n.k3s_active == Some(false) && !n.bootstrapped) {
        return None;
    }
    for node in &status.nodes {
        match (&node.k3s_active, &node.error) {
            (None, Some(e)) => tracing::warn!(node = %node.node, error = %e, "node not reachable"),
            (Some(false), _) => tracing::warn!(node = %node.node, "k3s is not active"),
            _ => {}
        }
    }
    Some((status.bootstrap_intact(), status.root.as_ref().map(|v| v.message().to_string())))
}

#[async_trait]
impl Resource for GitopsCluster {
    fn type_name(&self) -> &'static str {
        "kvm_gitops_cluster"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        match snapshots::check_config(config).and_then(|()| spec::from_value(config, Operation::Create)) {
            Err(d) => d.into(),
            Ok(_) => Diagnostics::new(),
        }
    }

    async fn modify_plan(&self, _ctx: &Context, prior: &Value, _config: &Value, planned: &mut Value) -> Diagnostics {
        if planned.is_null() {
            return Diagnostics::new();
        }
        if let Err(d) = spec::from_value(planned, Operation::Create) {
            return d.into();
        }
        let mut plan = match ClusterPlan::from_value(planned) {
            Ok(plan) => plan,
            Err(d) => return d.into(),
        };
        // No prior object: the cluster is being created.
        let prior_plan = ClusterPlan::from_value(prior).ok();
        if prior_plan.is_none() {
            if let Err(d) = snapshots::check_restore_on_create(&plan) {
                return d.into();
            }
        }
        if let Field::Known(name) = &plan.name {
            plan.id = Field::Known(name.clone());
        }
        match access(&plan) {
            Ok(fields) => [plan.api_server_url, plan.cluster_ca_certificate, plan.kubeconfig] = fields,
            Err(d) => return d.into(),
        }
        // A new cluster, a changed setting or a cluster found unhealthy: the apply runs the
        // bootstrap, whose outcome is known only then. Otherwise nothing changes.
        match prior_plan {
            Some(prior) if prior.settings() == plan.settings() && prior.healthy == Field::Known(true) => {
                plan.healthy = prior.healthy;
                plan.sync_status = prior.sync_status;
            }
            _ => {
                plan.healthy = Field::Unknown;
                plan.sync_status = Field::Unknown;
            }
        }
        *planned = plan.to_value();
        Diagnostics::new()
    }

    fn replace_when(&self, prior: &Value, planned: &Value) -> Vec<tf_cty::Path> {
        // A running cluster cannot change its CAs or token: a new one means a new cluster. An
        // imported cluster (no PKI in its state yet) adopts the configured one in place.
        let (Ok(before), Ok(after)) = (ClusterPlan::from_value(prior), ClusterPlan::from_value(planned)) else {
            return Vec::new();
        };
        [("pki", &before.pki, &after.pki), ("token", &before.token, &after.token)]
            .into_iter()
            .filter(|(_, before, after)| !before.is_null() && before != after)
            .map(|(name, _, _)| tf_cty::Path::attr(name))
            .collect()
    }

    async fn create(&self, ctx: &Context, planned: &Value) -> Outcome<Value> {
        self.install(ctx, planned, Operation::Create).await
    }

    async fn read(&self, ctx: &Context, current: &Value) -> Outcome<Option<Value>> {
        // An imported cluster has only its name until the configuration is applied.
        let Ok(Some(cluster)) = spec::from_value(current, Operation::Create) else { return Ok(Some(current.clone())) };
        let status = blocking(ctx, "reading the cluster", move || {
            let Cluster { spec, secrets } = cluster;
            Engine::new(&spec, &secrets).map(|e| e.status())
        })
        .await?
        .map_err(engine_error)?;
        let Some((healthy, sync)) = judge(&status) else {
            tracing::warn!("k3s is not active on any node: the cluster is gone and will be bootstrapped again");
            return Ok(None);
        };
        let mut state = ClusterModel::from_value(current)?;
        state.healthy = Field::Known(healthy);
        if let Some(sync) = sync {
            state.sync_status = Field::Known(sync);
        }
        Ok(Some(state.to_value()))
    }

    async fn update(&self, ctx: &Context, prior: &Value, planned: &Value) -> Outcome<Value> {
        let before = ClusterModel::from_value(prior)?;
        if settings(prior) == settings(planned) && before.healthy == Field::Known(true) {
            // Only local settings (timeouts, keep_on_destroy) changed.
            let mut state = ClusterModel::from_value(planned)?;
            (state.healthy, state.sync_status) = (before.healthy, before.sync_status);
            return Ok(state.to_value());
        }
        self.install(ctx, planned, Operation::Update).await
    }

    async fn delete(&self, ctx: &Context, prior: &Value) -> Outcome<()> {
        let state = ClusterModel::from_value(prior)?;
        let name = state.name.clone();
        if state.keep_on_destroy == Some(true) {
            tracing::warn!(cluster = %name, "keep_on_destroy: k3s stays installed on the nodes");
            return Ok(());
        }
        let cluster = match spec::of(&state, Operation::Delete) {
            Ok(c) => c,
            // An import that was never applied knows no nodes: nothing to uninstall.
            Err(_) => return Ok(()),
        };
        tracing::info!(cluster = %name, "uninstalling k3s from every node");
        let report = blocking(ctx, "the uninstall", move || {
            let Cluster { spec, secrets } = cluster;
            Engine::new(&spec, &secrets).and_then(|e| e.uninstall())
        })
        .await?
        .map_err(|e| {
            Diagnostic::error(
                "Uninstall failed",
                format!(
                    "{e}\n\nFix the cause and destroy again. If the machines are gone for good there is nothing \
                     to uninstall: `terraform state rm` the cluster."
                ),
            )
        })?;
        log_report(&report);
        Ok(())
    }

    async fn import(&self, _ctx: &Context, id: &str) -> Outcome<Value> {
        if id.is_empty() {
            return Err(Diagnostic::error("Cannot import cluster", "The import ID is the cluster name.").into());
        }
        // Only the name: the next apply adopts the cluster with the configuration's nodes, PKI
        // (import the existing CAs with kvm_cluster_pki) and keys, changing only what differs.
        let state = ClusterModel {
            id: Field::Known(id.to_string()),
            name: id.to_string(),
            keep_on_destroy: Some(false),
            healthy: Field::Known(false),
            ..Default::default()
        };
        Ok(state.to_value())
    }
}

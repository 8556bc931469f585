//! `kvm_gitops_cluster`: k3s, the Sealed Secrets keys and controller, and a reconciler pulling
//! from Git, bootstrapped over SSH by the `kvm-bootstrap` engine.
//!
//! The engine is synchronous (libssh2) and idempotent: create and update both run the whole
//! install, which changes only what differs. Read asks every node whether k3s is active and the
//! first server whether the root is in sync; a cluster found unhealthy marks `healthy = false`,
//! which [`GitopsCluster::modify_plan`] turns into an update, i.e. a re-bootstrap.

mod schema;
mod spec;

pub use schema::cluster_name;

use async_trait::async_trait;
use kvm_bootstrap::engine::{ClusterStatus, Engine, EngineError, Report};
use kvm_bootstrap::k3s::config::server_url;
use tf_cty::Value;

use super::{set_attr, Attrs, Context, Failure, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::schema::Schema;
use schema::COMPUTED;
use spec::{Cluster, Operation};

/// Settings whose change needs no re-bootstrap.
const LOCAL_ONLY: &[&str] = &["keep_on_destroy", "timeouts"];

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

/// The configuration part of a state: what a change to means a re-bootstrap.
fn settings(value: &Value) -> Value {
    match value {
        Value::Object(attrs) => Value::Object(
            attrs
                .iter()
                .filter(|(k, _)| !COMPUTED.contains(&k.as_str()) && !LOCAL_ONLY.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Fills `kubeconfig`, `api_server_url` and `cluster_ca_certificate` from the PKI and the API
/// address when both are known, else marks them unknown.
fn fill_access(value: &mut Value) -> Result<(), Diagnostic> {
    let url = spec::api_address(value).map(|address| server_url(&address));
    set_attr(value, "api_server_url", url.clone().map_or(Value::Unknown, Value::string));
    let pki = match value.get_attr("pki").and_then(Value::as_str) {
        Some(text) => Some(spec::pki(text)?),
        None => None,
    };
    set_attr(
        value,
        "cluster_ca_certificate",
        pki.as_ref().map_or(Value::Unknown, |p| Value::string(p.server_ca_pem())),
    );
    let kubeconfig = match (pki, url) {
        (Some(pki), Some(url)) => Value::string(
            pki.kubeconfig(&url).map_err(|e| Diagnostic::error("Cannot build the kubeconfig", e.to_string()))?,
        ),
        _ => Value::Unknown,
    };
    set_attr(value, "kubeconfig", kubeconfig);
    Ok(())
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
        let mut state = planned.clone();
        let name = Attrs::of(planned)?.str("name")?.to_string();
        set_attr(&mut state, "id", Value::string(&name));
        fill_access(&mut state)?;
        let partial = |mut s: Value| {
            set_attr(&mut s, "healthy", Value::Bool(false));
            set_attr(&mut s, "sync_status", Value::string("bootstrap did not finish"));
            s
        };
        let cluster = match spec::from_value(planned, op) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Err(
                    Diagnostic::error("Internal error", "the planned cluster has unknown values at apply").into()
                )
            }
            Err(d) => return Err(d.into()),
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
                set_attr(&mut state, "healthy", Value::Bool(true));
                set_attr(
                    &mut state,
                    "sync_status",
                    Value::string(report.sync.as_deref().unwrap_or("no repository configured")),
                );
                Ok(state)
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
        match spec::check_config(config).and_then(|()| spec::from_value(config, Operation::Create)) {
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
        if prior.is_null() {
            if let Err(d) = spec::check_restore_on_create(planned) {
                return d.into();
            }
        }
        if let Some(name) = planned.get_attr("name").and_then(Value::as_str).map(str::to_string) {
            set_attr(planned, "id", Value::string(name));
        }
        if let Err(d) = fill_access(planned) {
            return d.into();
        }
        // A new cluster, a changed setting or a cluster found unhealthy: the apply runs the
        // bootstrap, whose outcome is known only then. Otherwise nothing changes.
        let rebootstrap = prior.is_null()
            || settings(prior) != settings(planned)
            || prior.get_attr("healthy").and_then(Value::as_bool) != Some(true);
        for name in ["healthy", "sync_status"] {
            let value = if rebootstrap { Value::Unknown } else { prior.get_attr(name).cloned().unwrap_or(Value::Null) };
            set_attr(planned, name, value);
        }
        Diagnostics::new()
    }

    fn replace_when(&self, prior: &Value, planned: &Value) -> Vec<tf_cty::Path> {
        // A running cluster cannot change its CAs or token: a new one means a new cluster. An
        // imported cluster (no PKI in its state yet) adopts the configured one in place.
        ["pki", "token"]
            .into_iter()
            .filter(|name| {
                let before = prior.get_attr(name).unwrap_or(&Value::Null);
                !before.is_null() && Some(before) != planned.get_attr(name)
            })
            .map(tf_cty::Path::attr)
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
        let mut state = current.clone();
        set_attr(&mut state, "healthy", Value::Bool(healthy));
        if let Some(sync) = sync {
            set_attr(&mut state, "sync_status", Value::string(sync));
        }
        Ok(Some(state))
    }

    async fn update(&self, ctx: &Context, prior: &Value, planned: &Value) -> Outcome<Value> {
        if settings(prior) == settings(planned) && prior.get_attr("healthy").and_then(Value::as_bool) == Some(true) {
            // Only local settings (timeouts, keep_on_destroy) changed.
            let mut state = planned.clone();
            for name in ["healthy", "sync_status"] {
                set_attr(&mut state, name, prior.get_attr(name).cloned().unwrap_or(Value::Null));
            }
            return Ok(state);
        }
        self.install(ctx, planned, Operation::Update).await
    }

    async fn delete(&self, ctx: &Context, prior: &Value) -> Outcome<()> {
        let a = Attrs::of(prior)?;
        let name = a.opt_str("name").unwrap_or("?").to_string();
        if a.opt_bool("keep_on_destroy") == Some(true) {
            tracing::warn!(cluster = %name, "keep_on_destroy: k3s stays installed on the nodes");
            return Ok(());
        }
        let cluster = match spec::from_value(prior, Operation::Delete) {
            Ok(Some(c)) => c,
            // An import that was never applied knows no nodes: nothing to uninstall.
            _ => return Ok(()),
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
        let mut state = super::empty_object(&self.schema.block);
        set_attr(&mut state, "id", Value::string(id));
        set_attr(&mut state, "name", Value::string(id));
        set_attr(&mut state, "keep_on_destroy", Value::Bool(false));
        set_attr(&mut state, "healthy", Value::Bool(false));
        Ok(state)
    }
}

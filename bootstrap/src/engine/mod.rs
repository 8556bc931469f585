//! The bootstrap engine: from machines reachable over SSH to a k3s cluster that pulls its
//! desired state from Git, with the Sealed Secrets keys it had before.
//!
//! [`Engine::install`] is a list of idempotent steps, each checking before it acts, so a second
//! run changes nothing and a failure names the step (and, for waits, the stage and what it last
//! saw):
//!
//! 1. connect to every node (retrying while guests boot; host keys pinned);
//! 2. per node, servers first: place token, config.yaml (with its 0600 S3 credentials drop-in when
//!    snapshots go to S3) and (first server) the cluster CAs, then install k3s, then make sure the
//!    service runs with exactly that configuration; with `restore_snapshot`, a first server
//!    without a datastore is installed without starting, restored from the snapshot (k3s'
//!    cluster reset) and only then started, so the reconciler starts on the restored objects;
//! 3. on the first server, through `k3s kubectl`: wait for all nodes Ready and the default
//!    service account; apply the sealing key Secrets; install the Sealed Secrets controller with
//!    key renewal off and wait for it; install the reconciler and wait for its CRDs and
//!    controllers; apply the repository credentials and root objects and wait until the
//!    reconciler reports them in sync.
//!
//! Agents are set up in parallel once the servers are up. The engine is blocking (SSH is);
//! async callers run it on a blocking thread.

mod cluster;
mod kubectl;
mod node;
mod spec;

use std::time::{Duration, Instant};

pub use cluster::CheckFailure;
pub use kubectl::FIELD_MANAGER;
pub use node::STATE_DIR;
pub use spec::*;

use crate::k3s::config::{InstallPlan, Role};
use crate::k3s::FilePlacement;
use crate::manifests::{Manifest, Object};
use crate::readiness::{ProbeError, Verdict, WaitError};
use crate::ssh::{ConnectOptions, Session, SshError, Sudo};
use kubectl::Kubectl;

/// Why the engine stopped. Every variant says which step or stage, and on which node.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The spec is unusable (found before connecting).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// An SSH operation failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// A step on a node failed.
    #[error("{step} on {node}: {source}")]
    Step {
        /// The step.
        step: &'static str,
        /// The node's name or address.
        node: String,
        /// Why.
        source: Box<EngineError>,
    },
    /// A wait ended without the stage becoming ready.
    #[error(transparent)]
    Wait(Box<WaitError<ProbeError<CheckFailure>>>),
    /// The PKI could not produce files or a kubeconfig.
    #[error(transparent)]
    Pki(#[from] crate::k3s::pki::PkiError),
    /// The k3s settings were refused.
    #[error(transparent)]
    Config(#[from] crate::k3s::config::ConfigError),
    /// An install manifest could not be made to start offline.
    #[error(transparent)]
    Offline(#[from] crate::manifests::offline::OfflineError),
}

impl EngineError {
    fn at(self, step: &'static str, node: &str) -> EngineError {
        EngineError::Step { step, node: node.to_string(), source: Box::new(self) }
    }
}

/// One step's outcome, for logs, the CLI's table and Terraform's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// Step name (`files`, `install`, `service`, `sealing keys`, ...).
    pub step: &'static str,
    /// Node name or address (`cluster` for cluster-wide steps).
    pub node: String,
    /// Whether it changed anything.
    pub changed: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// Everything [`Engine::install`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Steps in the order they ran (agents' steps interleave in completion order).
    pub steps: Vec<StepReport>,
    /// What the reconciler reported when it was in sync (includes the revision), if a
    /// repository was configured.
    pub sync: Option<String>,
}

impl Report {
    /// Whether any step changed anything.
    pub fn changed(&self) -> bool {
        self.steps.iter().any(|s| s.changed)
    }
}

/// What [`Engine::install_with`] reports while it works, for progress output.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A step is starting: `connect` (which has no [`StepReport`] of its own) or any step that
    /// later appears in the [`Report`].
    Started {
        /// Step name, as in [`StepReport::step`].
        step: &'static str,
        /// Node name or address, or `cluster`.
        node: &'a str,
    },
    /// A step ended successfully; the same report is in the final [`Report`].
    Finished(&'a StepReport),
}

/// The observed state of a cluster, for Terraform's Read and `kvm-gitops status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// Per node (servers then agents): reachable, and k3s service active.
    pub nodes: Vec<NodeStatus>,
    /// Kubernetes' own view of the nodes (every expected node registered and `Ready`), seen
    /// through the first server; `None` when the first server could not be asked.
    pub kube_nodes: Option<Verdict>,
    /// The root Application's / Kustomization's verdict, when the first server answers and a
    /// repository is configured.
    pub root: Option<Verdict>,
    /// Whether the root Application / Kustomization exists (`None` when unknown: no repository,
    /// or the first server did not answer). Its absence means the reconciler's bootstrap is gone.
    pub root_present: Option<bool>,
}

/// One node's observed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// Node name or address.
    pub node: String,
    /// `None` when it could not be reached, else whether k3s is active.
    pub k3s_active: Option<bool>,
    /// Whether the engine has been here: its state directory exists (a bootstrap that failed
    /// half-way leaves it; an uninstall removes it).
    pub bootstrapped: bool,
    /// Why it could not be reached.
    pub error: Option<String>,
}

impl ClusterStatus {
    /// Every node reachable with k3s active and `Ready` in Kubernetes, and the root objects in
    /// sync (when configured).
    pub fn healthy(&self) -> bool {
        self.nodes.iter().all(|n| n.k3s_active == Some(true))
            && self.kube_nodes.as_ref().is_some_and(Verdict::is_ready)
            && self.root.as_ref().is_none_or(Verdict::is_ready)
    }

    /// What the bootstrap is responsible for is in place: every node's k3s active and the root
    /// object present. Whether the applications from Git are healthy is the repository's
    /// business, not a reason to bootstrap again.
    pub fn bootstrap_intact(&self) -> bool {
        self.nodes.iter().all(|n| n.k3s_active == Some(true)) && self.root_present != Some(false)
    }
}

/// The progress callback threaded through the install steps.
type Observer<'o> = &'o (dyn Fn(Progress<'_>) + Sync);

/// Runs the bootstrap for one cluster.
pub struct Engine<'a> {
    spec: &'a ClusterSpec,
    secrets: &'a ClusterSecrets,
}

impl<'a> Engine<'a> {
    /// Checks the spec (no connection yet).
    pub fn new(spec: &'a ClusterSpec, secrets: &'a ClusterSecrets) -> Result<Engine<'a>, EngineError> {
        spec.validate(secrets)?;
        Ok(Engine { spec, secrets })
    }

    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            deadline: self.spec.timeouts.connect,
            op_timeout: self.spec.timeouts.command,
            sudo: Sudo::Auto,
        }
    }

    fn connect(&self, node: &NodeSpec, observe: Observer<'_>) -> Result<Session, EngineError> {
        observe(Progress::Started { step: "connect", node: &node.display_name() });
        let mut session = Session::connect(&node.ssh, &self.connect_options())
            .map_err(|e| EngineError::from(e).at("connect", &node.display_name()))?;
        session.add_secret(self.secrets.token.expose());
        if let Some(secret) =
            self.spec.k3s.etcd_snapshots.as_ref().and_then(|s| s.s3.as_ref()).and_then(|s3| s3.secret_key.as_deref())
        {
            session.add_secret(secret);
        }
        Ok(session)
    }

    /// The install plan and extra files of node `index` (servers first); `skip_start` installs
    /// without starting (a restore runs in between).
    fn node_plan(&self, index: usize, skip_start: bool) -> Result<(InstallPlan, Vec<FilePlacement>), EngineError> {
        let config = self.spec.node_config(index)?.render()?;
        let plan = InstallPlan::new(&config, &self.secrets.token, &self.spec.k3s.install, skip_start)?;
        let extra = if index == 0 {
            let data_dir = self.spec.k3s.data_dir.as_deref().unwrap_or(crate::k3s::config::DEFAULT_DATA_DIR);
            self.secrets.pki.files_for(data_dir)?
        } else {
            Vec::new()
        };
        Ok((plan, extra))
    }

    /// Places the files k3s reads at its first start on every node (token, config.yaml, the CAs
    /// on the first server) without installing anything. [`Engine::install`] does this too; on
    /// its own it prepares nodes whose k3s is installed later (and lets tests check the files).
    pub fn place_files(&self) -> Result<Report, EngineError> {
        let mut report = Report::default();
        for (index, node) in self.spec.nodes().enumerate() {
            let session = self.connect(node, &|_| {})?;
            let (plan, extra) = self.node_plan(index, false)?;
            let start = Instant::now();
            let placed = node::place_files(&session, &plan, &extra)
                .map_err(|e| EngineError::from(e).at("files", &node.display_name()))?;
            report.steps.push(StepReport {
                step: "files",
                node: node.display_name(),
                changed: placed.files || placed.artifacts,
                elapsed: start.elapsed(),
            });
        }
        Ok(report)
    }

    /// Brings the cluster to the spec: k3s on every node, then the sealing keys, the Sealed
    /// Secrets controller, the reconciler and the root objects, each waiting for the previous.
    pub fn install(&self) -> Result<Report, EngineError> {
        self.install_with(&|_| {})
    }

    /// [`Engine::install`], telling `observe` when each step starts and ends (agents' steps
    /// come from several threads at once, hence `Sync`).
    pub fn install_with(&self, observe: &(dyn Fn(Progress<'_>) + Sync)) -> Result<Report, EngineError> {
        let mut report = Report::default();
        let nodes: Vec<&NodeSpec> = self.spec.nodes().collect();
        let servers = self.spec.servers.len();

        // Servers one after another: the first starts the cluster, the others join it.
        let mut first: Option<Session> = None;
        for (index, node) in nodes.iter().enumerate().take(servers) {
            let session = self.connect(node, observe)?;
            self.setup_node(index, &session, &mut report.steps, observe)?;
            if index == 0 {
                first = Some(session);
            }
        }
        // Agents in parallel: each only needs the first server up.
        let agent_results: Vec<Result<Vec<StepReport>, EngineError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (servers..nodes.len())
                .map(|index| {
                    let node = nodes[index];
                    scope.spawn(move || {
                        let session = self.connect(node, observe)?;
                        let mut steps = Vec::new();
                        self.setup_node(index, &session, &mut steps, observe)?;
                        Ok(steps)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(SshError::InvalidArgument("an agent thread panicked".into()).into()))
                })
                .collect()
        });
        for result in agent_results {
            report.steps.extend(result?);
        }

        let first = first.ok_or(SpecError::NoServer)?;
        let k = Kubectl::new(&first);
        let t = self.spec.timeouts;
        cluster::prepare_manifest_dir(&first)?;
        self.cluster_step(&mut report, observe, "cluster ready", || {
            cluster::wait_cluster(&k, nodes.len(), t.cluster).map(|()| false)
        })?;
        // Air-gapped nodes have their images imported, and no registry to pull from.
        let offline = matches!(self.spec.k3s.install, crate::k3s::config::InstallMode::Airgap { .. });
        let keys = self.spec.sealing_key_objects(self.secrets)?;
        self.cluster_step(&mut report, observe, "sealing keys", || cluster::apply_sealing_keys(&k, &keys))?;
        self.cluster_step(&mut report, observe, "sealed secrets controller", || {
            cluster::install_sealed_secrets(&k, &self.spec.sealed_secrets.manifest, offline, t.controllers)
        })?;
        let objects = match &self.spec.repository {
            Some(_) => self.spec.root_objects(self.secrets)?,
            None => Vec::new(),
        };
        // Root objects that upstream's install also defines: carried into the install as patches.
        let overrides: Vec<&Object> = objects
            .iter()
            .filter(|o| {
                o.kind() == "ConfigMap" && o.metadata().name() == crate::manifests::argocd::KNOWN_HOSTS_CONFIG_MAP
            })
            .collect();
        self.cluster_step(&mut report, observe, "reconciler", || {
            cluster::install_reconciler(&k, &self.spec.reconciler, &overrides, offline, t.controllers)
        })?;
        if let Some(repo) = &self.spec.repository {
            let mut summary = String::new();
            self.cluster_step(&mut report, observe, "root sync", || {
                let (changed, s) =
                    cluster::apply_root(&k, self.spec.reconciler.kind, &repo.name, &repo.revision, &objects, t.sync)?;
                summary = s;
                Ok(changed)
            })?;
            report.sync = Some(summary);
        }
        Ok(report)
    }

    fn setup_node(
        &self,
        index: usize,
        session: &Session,
        steps: &mut Vec<StepReport>,
        observe: Observer<'_>,
    ) -> Result<(), EngineError> {
        let node = self.spec.nodes().nth(index).ok_or(SpecError::NoServer)?;
        let name = node.display_name();
        let data_dir = self.spec.k3s.data_dir.as_deref().unwrap_or(crate::k3s::config::DEFAULT_DATA_DIR);
        // Only a first server that has never had a datastore is restored: resetting a running
        // cluster to an old snapshot would throw away everything since.
        let restore = match (&self.spec.k3s.restore_snapshot, index) {
            (Some(snapshot), 0) => {
                let fresh =
                    !node::has_datastore(session, data_dir).map_err(|e| EngineError::from(e).at("restore", &name))?;
                fresh.then_some(snapshot.as_str())
            }
            _ => None,
        };
        let (plan, extra) = self.node_plan(index, restore.is_some())?;
        // Runs one step: tells the observer, times it, names the step and node in its error.
        let mut step = |step: &'static str, run: &mut dyn FnMut() -> Result<bool, SshError>| {
            observe(Progress::Started { step, node: &name });
            let start = Instant::now();
            let changed = run().map_err(|e| EngineError::from(e).at(step, &name))?;
            let report = StepReport { step, node: name.clone(), changed, elapsed: start.elapsed() };
            observe(Progress::Finished(&report));
            steps.push(report);
            Ok::<bool, EngineError>(changed)
        };

        let mut placed = node::Placed::default();
        step("files", &mut || {
            placed = node::place_files(session, &plan, &extra)?;
            Ok(placed.files || placed.artifacts)
        })?;
        let mut installed = node::Installed::Nothing;
        step("install", &mut || {
            installed = node::install(session, &plan, &self.spec.k3s.install, placed)?;
            Ok(installed != node::Installed::Nothing)
        })?;
        if let Some(snapshot) = restore {
            let command = plan.restore_command(snapshot)?;
            step("restore", &mut || node::restore(session, &command, snapshot))?;
        }
        let digest = node::start_digest(&plan, &extra);
        step("service", &mut || node::ensure_running(session, plan.role, &digest, installed))?;
        Ok(())
    }

    fn cluster_step(
        &self,
        report: &mut Report,
        observe: Observer<'_>,
        step: &'static str,
        run: impl FnOnce() -> Result<bool, EngineError>,
    ) -> Result<(), EngineError> {
        observe(Progress::Started { step, node: "cluster" });
        let start = Instant::now();
        tracing::info!(step, "cluster step");
        let changed = run().map_err(|e| e.at(step, "cluster"))?;
        let step = StepReport { step, node: "cluster".into(), changed, elapsed: start.elapsed() };
        observe(Progress::Finished(&step));
        report.steps.push(step);
        Ok(())
    }

    /// Looks at every node and, through the first server, at the root objects. Unreachable nodes
    /// are reported, not errors: a cluster that is gone is a state to show, not a failure.
    pub fn status(&self) -> ClusterStatus {
        let quick = ConnectOptions { deadline: Duration::from_secs(5), ..self.connect_options() };
        let mut nodes = Vec::new();
        let mut root = None;
        let mut root_present = None;
        let mut kube_nodes = None;
        let expected = self.spec.nodes().count();
        for (index, node) in self.spec.nodes().enumerate() {
            let role = if index < self.spec.servers.len() { Role::Server } else { Role::Agent };
            let session = match Session::connect(&node.ssh, &quick) {
                Ok(s) => s,
                Err(e) => {
                    nodes.push(NodeStatus {
                        node: node.display_name(),
                        k3s_active: None,
                        bootstrapped: false,
                        error: Some(e.to_string()),
                    });
                    continue;
                }
            };
            let active = node::service_active(&session, role);
            if index == 0 && matches!(active, Ok(true)) {
                kube_nodes = Some(match cluster::nodes_verdict(&Kubectl::new(&session), expected) {
                    Ok(v) => v,
                    Err(e) => Verdict::waiting(e.to_string()),
                });
                if let Some(repo) = &self.spec.repository {
                    match cluster::root_state(
                        &Kubectl::new(&session),
                        self.spec.reconciler.kind,
                        &repo.name,
                        &repo.revision,
                    ) {
                        Ok((present, verdict)) => {
                            root_present = Some(present);
                            root = Some(verdict);
                        }
                        Err(e) => root = Some(Verdict::waiting(e.to_string())),
                    }
                }
            }
            let bootstrapped = node::bootstrapped(&session).unwrap_or(true);
            nodes.push(match active {
                Ok(a) => NodeStatus { node: node.display_name(), k3s_active: Some(a), bootstrapped, error: None },
                Err(e) => {
                    NodeStatus { node: node.display_name(), k3s_active: None, bootstrapped, error: Some(e.to_string()) }
                }
            });
        }
        ClusterStatus { nodes, kube_nodes, root, root_present }
    }

    /// Uninstalls k3s from every node (agents first) and removes the engine's files. Nodes that
    /// cannot be reached are an error: nothing can be known about them.
    pub fn uninstall(&self) -> Result<Report, EngineError> {
        let mut report = Report::default();
        let nodes: Vec<(usize, &NodeSpec)> = self.spec.nodes().enumerate().collect();
        for &(index, node) in nodes.iter().rev() {
            let role = if index < self.spec.servers.len() { Role::Server } else { Role::Agent };
            let session = self.connect(node, &|_| {})?;
            let start = Instant::now();
            let data_dir = self.spec.k3s.data_dir.as_deref().unwrap_or(crate::k3s::config::DEFAULT_DATA_DIR);
            let changed = node::uninstall(&session, role, data_dir)
                .map_err(|e| EngineError::from(e).at("uninstall", &node.display_name()))?;
            report.steps.push(StepReport {
                step: "uninstall",
                node: node.display_name(),
                changed,
                elapsed: start.elapsed(),
            });
        }
        Ok(report)
    }
}

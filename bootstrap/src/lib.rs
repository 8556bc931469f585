//! GitOps bootstrap engine for the KVM Terraform provider.
//!
//! * [`sealing`]: Bitnami Sealed Secrets compatible sealing keys, certificates and sealing;
//! * [`hostkey`]: SSH host keys generated for instances, so connections pin them;
//! * [`ssh`]: the SSH client that checks those pins and runs the bootstrap on an instance;
//! * [`k3s`]: k3s node config.yaml, install plans (online / air-gap) and the pre-generated cluster PKI;
//! * [`manifests`]: typed Kubernetes objects (Secrets, Argo CD, Flux) the bootstrap applies, as YAML;
//! * [`readiness`]: verdicts on `kubectl get -o json` output (nodes, CRDs, controllers, the root
//!   Application or Kustomization) and the staged wait loop with timeouts that say what was last seen;
//! * [`engine`]: the bootstrap itself over SSH (nodes, k3s install, keys, controllers, the
//!   reconciler and its root, the staged waits), used by the CLI and the provider;
//! * [`drill`]: the disaster-recovery drill (destroy and recreate a deployment, keys must survive);
//! * [`cli`]: the `kvm-gitops` command line (`install`, `status`, `uninstall`, `seal`, `drill`).

#![warn(missing_docs)]

pub mod cli;
pub mod drill;
pub mod engine;
pub mod hostkey;
pub mod k3s;
pub mod manifests;
pub mod readiness;
pub mod sealing;
mod shell;
pub mod ssh;
mod timefmt;
mod yaml;

//! GitOps bootstrap engine for the KVM Terraform provider: everything that reaches a machine.
//!
//! * [`hostkey`]: SSH host keys generated for instances, so connections pin them;
//! * [`ssh`]: the SSH client that checks those pins and runs the bootstrap on an instance;
//! * [`k3s`]: k3s node config.yaml, install plans (online / air-gap), the pre-generated cluster PKI
//!   and the state directory that holds it;
//! * [`manifests`]: typed Kubernetes objects (Secrets, Argo CD, Flux) the bootstrap applies, as YAML;
//! * [`readiness`]: verdicts on `kubectl get -o json` output (nodes, CRDs, controllers, the root
//!   Application or Kustomization) and the staged wait loop with timeouts that say what was last seen;
//! * [`engine`]: the bootstrap itself over SSH (nodes, k3s install, keys, controllers, the
//!   reconciler and its root, the staged waits), used by the `kvm-gitops` CLI and the provider.
//!
//! Sealing keys and sealing are the pure `kvm-sealing` crate; the command line and the drill are
//! the `kvm-gitops` crate, which depends on this one and never the other way.

#![warn(missing_docs)]

pub mod engine;
pub mod hostkey;
pub mod k3s;
pub mod manifests;
pub mod readiness;
mod shell;
pub mod ssh;

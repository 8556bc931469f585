//! The `kvm-gitops` command line and the disaster-recovery drill, as a library the binary and the
//! tests share.
//!
//! * [`cli`]: `install`, `status`, `uninstall` (the `kvm-bootstrap` engine from a config file and a
//!   state directory), `seal`, `reseal`, `verify` (`kvm-sealing`), `drill`;
//! * [`drill`]: destroy and recreate a Terraform deployment and prove the sealing keys, the PKI
//!   and every SealedSecret in Git survived (runs Terraform as a child process).

#![warn(missing_docs)]

pub mod cli;
pub mod drill;

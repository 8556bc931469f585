//! GitOps bootstrap engine for the KVM Terraform provider.
//!
//! * [`sealing`]: Bitnami Sealed Secrets compatible sealing keys, certificates and sealing.

#![warn(missing_docs)]

pub mod sealing;

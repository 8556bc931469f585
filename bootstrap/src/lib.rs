//! GitOps bootstrap engine for the KVM Terraform provider.
//!
//! * [`sealing`]: Bitnami Sealed Secrets compatible sealing keys, certificates and sealing;
//! * [`hostkey`]: SSH host keys generated for instances, so connections pin them.

#![warn(missing_docs)]

pub mod hostkey;
pub mod sealing;

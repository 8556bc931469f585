//! Test support shared by the test binaries of `kvm-sealing`, `kvm-bootstrap` and `kvm-gitops`
//! (a dev-dependency only): the repository's test data, real CRDs as JSON Schema, and the
//! independent Python Sealed Secrets checker.

#![warn(missing_docs)]

pub mod crd_schema;
pub mod python_checker;
pub mod testdata;

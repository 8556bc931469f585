//! Integration tests of `kvm_bootstrap::sealing` against the shared Sealed Secrets test vectors,
//! the SealedSecret CRD and an independent implementation (Python `cryptography`).

mod common;
mod crd;
#[path = "../support/crd_schema.rs"]
mod crd_schema;
mod keys;
mod python;
#[path = "../support/python_checker.rs"]
mod python_checker;
#[path = "../support/testdata.rs"]
mod testdata;
mod vectors;

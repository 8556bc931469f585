//! Integration tests of `kvm_sealing` against the shared Sealed Secrets test vectors,
//! the SealedSecret CRD and an independent implementation (Python `cryptography`).

mod common;
mod crd;
use kvm_testkit::crd_schema;
mod keys;
mod python;
use kvm_testkit::python_checker;
use kvm_testkit::testdata;
mod vectors;

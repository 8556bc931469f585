//! Integration tests of `kvm_bootstrap::sealing` against the shared Sealed Secrets test vectors,
//! the SealedSecret CRD and an independent implementation (Python `cryptography`).

mod common;
mod crd;
mod keys;
mod python;
mod vectors;

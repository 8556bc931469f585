//! Integration tests of `kvm_bootstrap::manifests`: every object against its CRD's
//! openAPIV3Schema (or the core/v1 shape), YAML read-back, the sealing key Secret, multi-document
//! streams, and Debug output without secret material.

mod common;
mod corev1;
mod crd;
use kvm_testkit::crd_schema;
mod kubectl;
mod stream;
use kvm_testkit::testdata;

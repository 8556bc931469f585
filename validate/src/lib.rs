//! The checks on names and addresses that the provider, the bootstrap engine and the
//! `kvm-gitops` CLI share, each rule written once with one test table.
//!
//! * DNS: [`dns_name`] (RFC 1123 host and domain names, any case: TLS SANs, hostnames, join
//!   addresses), [`dns_label`] (one lowercase label: cluster names);
//! * Kubernetes: [`k8s_name`] (object names, `IsDNS1123Subdomain`), [`k8s_namespace`]
//!   (`IsDNS1123Label`), [`k8s_qualified_name`] (label and annotation keys), [`k8s_label_value`],
//!   [`k8s_data_key`] (Secret and ConfigMap keys);
//! * [`mac_address`]: a NIC's MAC address, unicast, lowercase as libvirt writes it;
//! * [`ipv4_address`], [`ipv4_subnet`] ([`Ipv4Net`]): addresses and subnets in CIDR form;
//! * etcd snapshots: [`cron_schedule`] (k3s' `etcd-snapshot-schedule-cron`), [`s3_bucket_name`],
//!   [`s3_endpoint`] (`HOST[:PORT]` as k3s' `etcd-s3-endpoint` takes it);
//! * [`units`]: sizes (`20GiB`) and durations (`1h30m`), parsed and written back;
//! * [`pem`]: the one PEM block of a given kind in a text, and DER written back as PEM.
//!
//! Every name and address check returns [`Invalid`], whose message names the value, the kind of name expected and
//! what is wrong; callers add where the value came from.

#![warn(missing_docs)]

mod mac;
mod names;
mod net;
pub mod pem;
mod snapshots;
pub mod units;

pub use mac::mac_address;
pub use names::{dns_label, dns_name, k8s_data_key, k8s_label_value, k8s_name, k8s_namespace, k8s_qualified_name};
pub use net::{host_port, ipv4_address, ipv4_subnet, ipv6_address, ipv6_subnet, Ipv4Net, Ipv6Net};
pub use snapshots::{cron_schedule, s3_bucket_name, s3_endpoint};

/// A value that is not the kind of name or address expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}: {problem}")]
pub struct Invalid {
    /// The value as given.
    pub value: String,
    /// What it should have been, e.g. "Kubernetes name".
    pub kind: &'static str,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with an [`Invalid`] value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Empty where a value is needed.
    #[error("it must not be empty")]
    Empty,
    /// Longer than allowed (the whole, or one dot-separated part).
    #[error("{what} is {len} characters long, at most {max} are allowed")]
    TooLong {
        /// "it", or which part.
        what: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside the allowed set, or one that may not stand first or last.
    #[error("{0}")]
    Characters(&'static str),
    /// Anything else, said in full.
    #[error("{0}")]
    Other(String),
}

pub(crate) fn invalid(value: &str, kind: &'static str, problem: Problem) -> Invalid {
    Invalid { value: value.to_string(), kind, problem }
}

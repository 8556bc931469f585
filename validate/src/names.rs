//! DNS and Kubernetes names. The Kubernetes rules are those of `k8s.io/apimachinery`'s
//! validation package, which the API server applies: a name the provider accepts is one the
//! cluster accepts, and the other way round.

use crate::{invalid, Invalid, Problem};

const DNS_NAME: &str = "DNS name";
const K8S_NAME: &str = "Kubernetes name";
const K8S_NAMESPACE: &str = "Kubernetes namespace";
const DNS_LABEL: &str = "DNS label";
const K8S_KEY: &str = "Kubernetes label or annotation key";
const K8S_LABEL_VALUE: &str = "Kubernetes label value";
const K8S_DATA_KEY: &str = "Secret data key";

fn too_long(value: &str, kind: &'static str, what: &str, len: usize, max: usize) -> Invalid {
    invalid(value, kind, Problem::TooLong { what: what.to_string(), len, max })
}

/// An RFC 1123 host or domain name in any case: at most 253 characters; dot-separated labels of
/// 1 to 63 letters, digits and `-`, not starting or ending with `-`. Hostnames, TLS subject
/// alternative names, addresses to join.
pub fn dns_name(s: &str) -> Result<(), Invalid> {
    if s.is_empty() {
        return Err(invalid(s, DNS_NAME, Problem::Empty));
    }
    if s.len() > 253 {
        return Err(too_long(s, DNS_NAME, "it", s.len(), 253));
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(invalid(
                s,
                DNS_NAME,
                Problem::Characters("it has an empty label (two dots, or a dot at an end)"),
            ));
        }
        if label.len() > 63 {
            return Err(too_long(s, DNS_NAME, &format!("label {label:?}"), label.len(), 63));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid(s, DNS_NAME, Problem::Characters("labels may contain only letters, digits and '-'")));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid(s, DNS_NAME, Problem::Characters("labels must not start or end with '-'")));
        }
    }
    Ok(())
}

// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, without a length limit.
fn is_lower_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && alnum(b[0]) && alnum(b[b.len() - 1]) && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// A Kubernetes object name (`IsDNS1123Subdomain`): at most 253 characters of lowercase letters,
/// digits, `-` and `.`, every dot-separated part starting and ending with a letter or digit.
/// Secrets, SealedSecrets, nodes, addons.
pub fn k8s_name(s: &str) -> Result<(), Invalid> {
    subdomain(s, K8S_NAME)
}

fn subdomain(s: &str, kind: &'static str) -> Result<(), Invalid> {
    if s.is_empty() {
        return Err(invalid(s, kind, Problem::Empty));
    }
    if s.len() > 253 {
        return Err(too_long(s, kind, "it", s.len(), 253));
    }
    if !s.split('.').all(is_lower_label) {
        return Err(invalid(
            s,
            kind,
            Problem::Characters(
                "it must consist of lowercase alphanumeric characters ('a'-'z', '0'-'9'), '-' or '.', each \
                 dot-separated part starting and ending with an alphanumeric character (an RFC 1123 subdomain, \
                 e.g. \"db-credentials\" or \"tls.example.com\")",
            ),
        ));
    }
    Ok(())
}

/// A Kubernetes namespace (`IsDNS1123Label`): 1 to 63 lowercase letters, digits and `-`,
/// starting and ending with a letter or digit.
pub fn k8s_namespace(s: &str) -> Result<(), Invalid> {
    label(s, K8S_NAMESPACE)
}

/// A lowercase RFC 1123 label, the rule of [`k8s_namespace`] for other names that must fit
/// where a namespace would: cluster names (certificate subjects, kubeconfig contexts).
pub fn dns_label(s: &str) -> Result<(), Invalid> {
    label(s, DNS_LABEL)
}

fn label(s: &str, kind: &'static str) -> Result<(), Invalid> {
    if s.is_empty() {
        return Err(invalid(s, kind, Problem::Empty));
    }
    if s.len() > 63 {
        return Err(too_long(s, kind, "it", s.len(), 63));
    }
    if !is_lower_label(s) {
        return Err(invalid(
            s,
            kind,
            Problem::Characters(
                "it must consist of lowercase alphanumeric characters ('a'-'z', '0'-'9') or '-', start and end \
                 with an alphanumeric character (an RFC 1123 label, e.g. \"payments\")",
            ),
        ));
    }
    Ok(())
}

// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63: a label value, or a key's name part.
fn label_part(value: &str, s: &str, kind: &'static str, what: &str) -> Result<(), Invalid> {
    if s.len() > 63 {
        return Err(too_long(value, kind, what, s.len(), 63));
    }
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    if !b.iter().all(|&c| alnum(c) || matches!(c, b'-' | b'_' | b'.')) {
        return Err(invalid(value, kind, Problem::Characters("it may contain only letters, digits, '-', '_' and '.'")));
    }
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err(invalid(value, kind, Problem::Characters("it must start and end with a letter or digit")));
    }
    Ok(())
}

/// A label or annotation key (`IsQualifiedName`): `[prefix/]name`, the prefix a Kubernetes name
/// (DNS subdomain), the name 1 to 63 letters, digits, `-`, `_` and `.`, starting and ending with
/// a letter or digit.
pub fn k8s_qualified_name(key: &str) -> Result<(), Invalid> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        subdomain(prefix, "DNS subdomain").map_err(|e| {
            invalid(key, K8S_KEY, Problem::Other(format!("the prefix before '/' must be a DNS subdomain: {e}")))
        })?;
    }
    if name.is_empty() {
        return Err(invalid(key, K8S_KEY, Problem::Other("the name part (after any '/') must not be empty".into())));
    }
    label_part(key, name, K8S_KEY, "the name part")
}

/// A label value: empty, or 1 to 63 letters, digits, `-`, `_` and `.`, starting and ending with a
/// letter or digit.
pub fn k8s_label_value(s: &str) -> Result<(), Invalid> {
    if s.is_empty() {
        return Ok(());
    }
    label_part(s, s, K8S_LABEL_VALUE, "it")
}

/// A Secret or ConfigMap data key (`IsConfigMapKey`): 1 to 253 letters, digits, `-`, `_` and
/// `.`, and not `.` or `..`.
pub fn k8s_data_key(s: &str) -> Result<(), Invalid> {
    let ok_chars = s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if s.is_empty() || s.len() > 253 || !ok_chars || s == "." || s == ".." {
        return Err(invalid(
            s,
            K8S_DATA_KEY,
            Problem::Characters(
                "it must consist of alphanumeric characters, '-', '_' or '.', be 1 to 253 characters long and not \
                 be \".\" or \"..\"",
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&str) -> Result<(), Invalid>;

    // (check, value, accepted)
    const TABLE: &[(&str, Check, &str, bool)] = &[
        ("dns", dns_name, "web-1", true),
        ("dns", dns_name, "Web-1.Example.COM", true),
        ("dns", dns_name, "a", true),
        ("dns", dns_name, "1.2.3.4", true),
        ("dns", dns_name, "", false),
        ("dns", dns_name, "-web", false),
        ("dns", dns_name, "web-", false),
        ("dns", dns_name, "web_1", false),
        ("dns", dns_name, "a..b", false),
        ("dns", dns_name, "a.", false),
        ("name", k8s_name, "db-credentials", true),
        ("name", k8s_name, "tls.example.com", true),
        ("name", k8s_name, "0", true),
        ("name", k8s_name, "Db", false),
        ("name", k8s_name, "db_credentials", false),
        ("name", k8s_name, "a..b", false),
        ("name", k8s_name, ".a", false),
        ("name", k8s_name, "a-", false),
        ("name", k8s_name, "", false),
        ("namespace", k8s_namespace, "payments", true),
        ("namespace", k8s_namespace, "kube-system", true),
        ("namespace", k8s_namespace, "Payments", false),
        ("namespace", k8s_namespace, "a.b", false),
        ("namespace", k8s_namespace, "-a", false),
        ("namespace", k8s_namespace, "", false),
        ("label", dns_label, "prod-eu-1", true),
        ("label", dns_label, "Prod", false),
        ("label", dns_label, "prod.eu", false),
        ("key", k8s_qualified_name, "app", true),
        ("key", k8s_qualified_name, "app.kubernetes.io/name", true),
        ("key", k8s_qualified_name, "node-role.kubernetes.io/control-plane", true),
        ("key", k8s_qualified_name, "A_b.c", true),
        ("key", k8s_qualified_name, "Example.com/x", false),
        ("key", k8s_qualified_name, "example.com/", false),
        ("key", k8s_qualified_name, "/x", false),
        ("key", k8s_qualified_name, "_x", false),
        ("key", k8s_qualified_name, "a/b/c", false),
        ("value", k8s_label_value, "", true),
        ("value", k8s_label_value, "v1.2_3-x", true),
        ("value", k8s_label_value, "-v", false),
        ("value", k8s_label_value, "a b", false),
        ("data key", k8s_data_key, "tls.crt", true),
        ("data key", k8s_data_key, "DB_PASSWORD", true),
        ("data key", k8s_data_key, ".", false),
        ("data key", k8s_data_key, "..", false),
        ("data key", k8s_data_key, "a/b", false),
        ("data key", k8s_data_key, "", false),
    ];

    #[test]
    fn the_table() {
        for (which, check, value, accepted) in TABLE {
            assert_eq!(check(value).is_ok(), *accepted, "{which} {value:?}: {:?}", check(value));
        }
    }

    #[test]
    fn limits_are_exact() {
        let label63 = "a".repeat(63);
        assert!(dns_name(&label63).is_ok());
        assert!(dns_name(&"a".repeat(64)).is_err());
        let long = [label63.as_str(); 4].join("."); // 255
        assert!(dns_name(&long).is_err());
        assert!(dns_name(&long[..253]).is_ok());
        // Kubernetes names have no limit per part, only on the whole.
        assert!(k8s_name(&"a".repeat(253)).is_ok());
        assert!(k8s_name(&"a".repeat(254)).is_err());
        assert!(k8s_namespace(&label63).is_ok());
        assert!(k8s_namespace(&"a".repeat(64)).is_err());
        assert!(k8s_label_value(&label63).is_ok());
        assert!(k8s_label_value(&"a".repeat(64)).is_err());
        assert!(k8s_qualified_name(&format!("example.com/{label63}")).is_ok());
        assert!(k8s_data_key(&"a".repeat(253)).is_ok());
        assert!(k8s_data_key(&"a".repeat(254)).is_err());
    }

    #[test]
    fn messages_name_the_value_and_the_kind() {
        let e = k8s_name("db_credentials").unwrap_err().to_string();
        assert!(e.starts_with("\"db_credentials\" is not a valid Kubernetes name: "), "{e}");
        let e = k8s_namespace(&"a".repeat(64)).unwrap_err().to_string();
        assert!(e.ends_with("it is 64 characters long, at most 63 are allowed"), "{e}");
        let e = dns_name("a_b.example").unwrap_err().to_string();
        assert!(e.contains("only letters, digits and '-'"), "{e}");
    }
}

//! Client-certificate authentication (for CI): certificates from the configured client CA
//! sign users in; another CA's, expired ones and ones naming no user get 401 and an audit
//! record; and the real Terraform `http` backend (1.5+) signs in with one.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A client certificate for `name` (CN and DNS SAN); `expired` puts its validity in the past.
    fn client(&self, name: &str, expired: bool) -> (String, String) {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A TLS server whose client CA is `client_ca`, with the test users plus `ci` (certificate
/// only, name `ci-runner`) and `ops` (password or certificate `ops-laptop`).
fn server(client_ca: &Ca) -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let tls = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), tls.cert.pem()).unwrap();
    write_private(&dir.path().join("key.pem"), tls.signing_key.serialize_pem());
    std::fs::write(dir.path().join("client-ca.pem"), client_ca.pem()).unwrap();
    let ops_hash = kvm_state_server::auth::hash_password("ops-pw-Jj21").unwrap();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n\
         [tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\nclient_ca_file = \"client-ca.pem\"\n\
         [audit]\nfile = \"audit.jsonl\"\n\
         [[user]]\nname = \"ci\"\ncertificate = \"ci-runner\"\nauth = [\"certificate\"]\n\
         grants = [{{ prefix = \"*\", role = \"write\" }}]\n\
         [[user]]\nname = \"ops\"\npassword_hash = \"{ops_hash}\"\ncertificate = \"ops-laptop\"\n\
         grants = [{{ prefix = \"*\", role = \"read\" }}]\n"
    );
    let server = Server::start(dir.path(), &config);
    assert_eq!(server.scheme, "https");
    (dir, server, tls.cert.pem())
}

#[test]
fn certificates_sign_users_in_and_bad_ones_are_refused_and_audited() {
    let ca = Ca::new("kvm test client CA");
    let other = Ca::new("kvm test client CA"); // same name, other key
    let (_dir, server, server_ca) = server(&ca);
    let ci = ca.client("ci-runner", false);
    let req = |client: Option<&(String, String)>, basic: Option<(&str, &str)>| {
        tls_request(server.addr, &server_ca, client, basic, "GET", "/locks/team/app", "")
    };

    let (status, body) = req(Some(&ci), None);
    assert_eq!(status, 200, "ci signs in with its certificate: {body}");
    let (status, body) =
        tls_request(server.addr, &server_ca, Some(&ci), None, "LOCK", "/states/team/app", &lock_info("c1", "ci"));
    assert_eq!(status, 200, "ci may write: {body}");

    // (what, client certificate, Basic credentials, expected error text or "" for success)
    type Case<'a> = (&'a str, Option<(String, String)>, Option<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 6] = [
        ("another CA", Some(other.client("ci-runner", false)), None, "refused"),
        ("expired", Some(ca.client("ci-runner", true)), None, "refused"),
        ("names no user", Some(ca.client("nobody", false)), None, "names no user"),
        ("password-only method refused for ci", None, Some(("ci", "anything")), "invalid user name or password"),
        (
            "certificate of one user, password of another",
            Some(ci.clone()),
            Some(("writer", password("writer"))),
            "Authorization header",
        ),
        ("ops certificate", Some(ca.client("ops-laptop", false)), None, ""),
    ];
    for (what, client, basic, expect) in &cases {
        let (status, body) = req(client.as_ref(), *basic);
        if expect.is_empty() {
            assert_eq!(status, 200, "{what}: {body}");
        } else {
            assert_eq!(status, 401, "{what}: {body}");
            assert!(body.contains(expect), "{what}: {body}");
        }
    }
    // ops may also use its password; writer (password only) is unaffected.
    assert_eq!(req(None, Some(("ops", "ops-pw-Jj21"))).0, 200);
    assert_eq!(req(None, Some(("writer", password("writer")))).0, 200);

    // Every refusal is in the audit log, under the certificate's subject.
    let (status, body) = tls_request(
        server.addr,
        &server_ca,
        None,
        Some(("admin", password("admin"))),
        "GET",
        "/audit?action=request&outcome=refused",
        "",
    );
    assert_eq!(status, 200, "{body}");
    let json = &body[body.find("\r\n\r\n").unwrap() + 4..];
    let events: serde_json::Value = serde_json::from_str(json.trim()).unwrap_or_default();
    let text = events.to_string();
    for needle in ["CN=ci-runner", "CN=nobody", "expired", "BadSignature"] {
        assert!(text.contains(needle), "audit lacks {needle}: {text}");
    }
}

// A certificate does not open a side door for guessing passwords: with a valid client
// certificate, an Authorization header's password is checked under the same throttle as any
// other (it used to be checked directly, without backoff, so a certificate holder could guess
// another password at argon2's full rate).
#[test]
fn passwords_beside_a_certificate_are_throttled() {
    let ca = Ca::new("kvm test client CA");
    let (_dir, server, server_ca) = server(&ca);
    let ops = ca.client("ops-laptop", false);
    let checks = || {
        let admin = Some(("admin", password("admin")));
        let (status, text) = tls_request(server.addr, &server_ca, None, admin, "GET", "/metrics", "");
        assert_eq!(status, 200, "{text}");
        metric_in(&text, "kvm_state_password_checks_total")
    };
    let checks_before = checks();
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for n in 0..30 {
        let guess = format!("guess-{n}");
        let (status, _) =
            tls_request(server.addr, &server_ca, Some(&ops), Some(("ops", &guess)), "GET", "/locks/team/app", "");
        *statuses.entry(status).or_default() += 1;
    }
    let checks = checks() - checks_before;
    println!("30 wrong passwords beside a valid certificate: {statuses:?}, {checks} argon2 checks");
    assert!(statuses.get(&429).copied().unwrap_or(0) > 0, "never throttled: {statuses:?}");
    assert!(checks < 30, "{checks} argon2 checks for 30 guesses");
    // The certificate alone still signs ops in.
    assert_eq!(tls_request(server.addr, &server_ca, Some(&ops), None, "GET", "/locks/team/app", "").0, 200);
}

fn mtls_backend(server: &Server, name: &str, server_ca: &str, client: Option<&(String, String)>) -> String {
    let url = format!("{}/states/{name}", server.base());
    let client = client.map_or(String::new(), |(cert, key)| {
        format!("    client_certificate_pem = <<-EOT\n{cert}EOT\n    client_private_key_pem = <<-EOT\n{key}EOT\n")
    });
    format!(
        "terraform {{\n  backend \"http\" {{\n    address = \"{url}\"\n    lock_address = \"{url}\"\n    \
         unlock_address = \"{url}\"\n    client_ca_certificate_pem = <<-EOT\n{server_ca}EOT\n{client}  }}\n}}\n"
    )
}

#[test]
fn terraform_signs_in_with_a_client_certificate() {
    if !acceptance_tests::terraform_at_least(1, 5, "the http backend's client_certificate_pem") {
        return;
    }
    let ca = Ca::new("kvm test client CA");
    let (_dir, server, server_ca) = server(&ca);
    let ci = ca.client("ci-runner", false);

    // init and apply as ci, with no password at all.
    // The certificate from the environment (as a CI job would), the server's CA in the block.
    let mut tf =
        Tf::new(&format!("{}{}", mtls_backend(&server, "ci/app", &server_ca, None), null_resources(2, "a")), "writer");
    tf.no_password();
    tf.set_env("TF_HTTP_CLIENT_CERTIFICATE_PEM", &ci.0);
    tf.set_env("TF_HTTP_CLIENT_PRIVATE_KEY_PEM", &ci.1);
    tf.init().ok();
    tf.apply().ok();
    assert_eq!(tf.state_list().len(), 2);
    let versions = request_tls_json(&server, &server_ca, "/versions/ci/app");
    assert_eq!(versions["versions"][0]["created_by"], "ci", "{versions}");

    // A lock held by a Basic user stops ci's apply, and the other way round.
    let (s, _) = tls_request(
        server.addr,
        &server_ca,
        None,
        Some(("writer", password("writer"))),
        "LOCK",
        "/states/ci/app",
        &lock_info("w1", "writer"),
    );
    assert_eq!(s, 200);
    tf.write_main(&format!("{}{}", mtls_backend(&server, "ci/app", &server_ca, None), null_resources(3, "a")));
    let run = tf.apply();
    assert_ne!(run.code, 0, "ci's apply must fail while writer holds the lock");
    assert!(run.all().contains("lock"), "{}", run.all());
    let (s, _) = tls_request(
        server.addr,
        &server_ca,
        None,
        Some(("writer", password("writer"))),
        "UNLOCK",
        "/states/ci/app",
        &lock_info("w1", "writer"),
    );
    assert_eq!(s, 200);
    let (s, _) =
        tls_request(server.addr, &server_ca, Some(&ci), None, "LOCK", "/states/ci/app", &lock_info("c9", "ci"));
    assert_eq!(s, 200);
    let basic_tf =
        Tf::new(&format!("{}{}", mtls_backend(&server, "ci/app", &server_ca, None), null_resources(3, "a")), "writer");
    basic_tf.init().ok();
    let run = basic_tf.apply();
    assert_ne!(run.code, 0, "writer's apply must fail while ci holds the lock");
    assert!(run.all().contains("lock"), "{}", run.all());
    let (s, _) =
        tls_request(server.addr, &server_ca, Some(&ci), None, "UNLOCK", "/states/ci/app", &lock_info("c9", "ci"));
    assert_eq!(s, 200);
    tf.apply().ok();
    assert_eq!(tf.state_list().len(), 3);

    // The same in the backend block; a certificate from another CA gets nowhere (Go does not even offer it: no credentials, 401).
    let other = Ca::new("some other CA").client("ci-runner", false);
    let mut wrong = Tf::new(&mtls_backend(&server, "ci/app", &server_ca, Some(&other)), "writer");
    wrong.no_password();
    let run = wrong.init();
    assert_ne!(run.code, 0, "a wrong certificate must not sign in");
    assert!(run.all().contains("requires auth"), "{}", run.all());
}

fn request_tls_json(server: &Server, server_ca: &str, path: &str) -> serde_json::Value {
    let (status, body) = tls_request(server.addr, server_ca, None, Some(("admin", password("admin"))), "GET", path, "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(body[body.find("\r\n\r\n").unwrap() + 4..].trim()).unwrap()
}

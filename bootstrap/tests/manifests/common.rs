//! Shared fixtures: sample credentials, objects of every kind, and YAML helpers.

use kvm_bootstrap::manifests::argocd::{self, Application};
use kvm_bootstrap::manifests::flux::{self, GitRef, GitRepository, Kustomization};
use kvm_bootstrap::manifests::{sealing_key_secret, ConfigMap, GitCredentials, Manifest, Namespace, Object, Secret};
use serde_json::Value;

/// Distinctive secret strings: none of them (nor their base64) may show up in Debug output.
pub const SSH_PRIVATE_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQSECRETSSHKEYMATERIAL\n-----END OPENSSH PRIVATE KEY-----\n";
/// Public half (not secret).
pub const SSH_PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPubLicKeyMaterialForTests bootstrap";
/// Host key line (not secret).
pub const KNOWN_HOSTS: &str = "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfTheGitServer\n";
/// An access token.
pub const TOKEN: &str = "glpat-TOKENxSECRETx0123456789";

/// The public Sealed Secrets test key pair (key PEM, certificate PEM).
pub fn sealing_pems() -> (String, String) {
    (
        crate::testdata::read_testdata("sealed-secrets/sealing-key.pem"),
        crate::testdata::read_testdata("sealed-secrets/sealing-cert.pem"),
    )
}

/// SSH deploy-key credentials.
pub fn ssh_credentials() -> GitCredentials {
    GitCredentials::Ssh {
        private_key: SSH_PRIVATE_KEY.into(),
        public_key: SSH_PUBLIC_KEY.into(),
        known_hosts: KNOWN_HOSTS.into(),
    }
}

/// HTTPS token credentials.
pub fn https_credentials() -> GitCredentials {
    GitCredentials::Https { username: "git".into(), password: TOKEN.into() }
}

/// Every Argo CD Application variant the tests render.
pub fn applications() -> Vec<Application> {
    let base = || {
        Application::new("argocd", "root", "git@git.example.com:org/gitops.git", "main", "clusters/lab/apps", "argocd")
            .unwrap()
    };
    vec![
        base(),
        base()
            .with_recurse(true)
            .with_cascade_delete()
            .with_sync_option("ServerSideApply=true")
            .unwrap()
            .with_project("platform")
            .unwrap()
            .with_label("app.kubernetes.io/part-of", "bootstrap")
            .unwrap()
            .with_annotation("example.com/managed-by", "kvm-bootstrap")
            .unwrap(),
        Application::new("argocd", "apps", "https://git.example.com/org/gitops.git", "HEAD", ".", "default").unwrap(),
    ]
}

/// Every Flux GitRepository variant the tests render.
pub fn git_repositories() -> Vec<GitRepository> {
    let url = "ssh://git@git.example.com/org/gitops.git";
    vec![
        GitRepository::new("flux-system", "flux-system", url, GitRef::Branch("main".into()))
            .unwrap()
            .with_secret_ref("flux-system")
            .unwrap(),
        GitRepository::new(
            "flux-system",
            "tagged",
            "https://git.example.com/org/gitops.git",
            GitRef::Tag("v1.2.0".into()),
        )
        .unwrap()
        .with_interval("30s")
        .unwrap(),
        GitRepository::new(
            "flux-system",
            "pinned",
            url,
            GitRef::Commit("0123456789abcdef0123456789abcdef01234567".into()),
        )
        .unwrap()
        .with_interval("1h30m")
        .unwrap()
        .with_label("app.kubernetes.io/part-of", "flux")
        .unwrap(),
    ]
}

/// Every Flux Kustomization variant the tests render.
pub fn kustomizations() -> Vec<Kustomization> {
    let repo = &git_repositories()[0];
    vec![
        Kustomization::new("flux-system", "flux-system", repo, "./clusters/lab").unwrap(),
        Kustomization::new("apps", "apps", repo, "apps").unwrap().with_interval("5m").unwrap(),
    ]
}

/// One object of every kind and flavour (in no particular order).
pub fn all_objects() -> Vec<Object> {
    let (key, cert) = sealing_pems();
    let mut objects: Vec<Object> = vec![
        Namespace::new("argocd").unwrap().into(),
        Namespace::new("payments").unwrap().with_label("team", "a").unwrap().into(),
        Secret::opaque("payments", "db").unwrap().with_data("password", "pw-0123").unwrap().into(),
        Secret::tls("payments", "web-tls", "CERT", "KEY").unwrap().into(),
        sealing_key_secret("kube-system", "sealed-secrets-key", &key, &cert).unwrap().into(),
        ConfigMap::new("payments", "settings").unwrap().with_data("on", "yes").unwrap().into(),
        argocd::repository_secret("argocd", "gitops-repo", "git@git.example.com:org/gitops.git", &ssh_credentials())
            .unwrap()
            .into(),
        argocd::repository_secret(
            "argocd",
            "gitops-https",
            "https://git.example.com/org/gitops.git",
            &https_credentials(),
        )
        .unwrap()
        .into(),
        argocd::known_hosts_config_map("argocd", KNOWN_HOSTS).unwrap().into(),
        flux::auth_secret("flux-system", "flux-system", "ssh://git@git.example.com/org/gitops.git", &ssh_credentials())
            .unwrap()
            .into(),
        flux::auth_secret("flux-system", "https", "https://git.example.com/org/gitops.git", &https_credentials())
            .unwrap()
            .into(),
    ];
    objects.extend(applications().into_iter().map(Object::from));
    objects.extend(git_repositories().into_iter().map(Object::from));
    objects.extend(kustomizations().into_iter().map(Object::from));
    objects
}

/// What a YAML reader sees: the object's YAML parsed back generically.
pub fn parsed(object: &impl Manifest) -> Value {
    let yaml = object.to_yaml();
    serde_norway::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// Decodes one base64 `data` value of a parsed Secret.
pub fn decoded(secret: &Value, key: &str) -> Vec<u8> {
    use base64::Engine as _;
    let text = secret["data"][key].as_str().unwrap_or_else(|| panic!("data.{key} missing in {secret}"));
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

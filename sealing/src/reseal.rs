//! Checking and re-sealing the SealedSecrets of a tree offline, with keys instead of a cluster.
//!
//! * [`open`]: unseal one SealedSecret with whichever of the given keys opens it (the controller
//!   does the same: nothing in a ciphertext names its key).
//! * [`verify`]: does every SealedSecret open, optionally with the newest key?
//! * [`plan_reseal`]: re-seal every SealedSecret to a certificate, as new file texts. Only the
//!   ciphertexts change: each old `encryptedData` value is replaced where it stands in the
//!   file, so name, namespace, scope, annotations, labels, template, key order, comments and
//!   indentation stay as they were. Only when an old value cannot be found exactly once in its
//!   document (say a YAML writer folded it) is that one document rendered anew.
//! * [`write_atomically`]: a temporary file beside the target, fsync, rename, keeping the mode.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use super::tree::{FileFormat, FoundSecret, ScannedFile, Unreadable};
use super::{SealedSecret, SealingCertificate, SealingError, UnsealingKey};

/// A SealedSecret opened: which key did it, and the plaintext values (never to be printed).
pub struct Opened {
    /// Index of the key in the slice given to [`open`].
    pub key_index: usize,
    /// The values by data key.
    pub values: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Opened {
    // The values are secrets: show their keys only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("key_index", &self.key_index)
            .field("values", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Unseals a SealedSecret with the first of `keys` that opens every value. The error names each
/// key tried (by fingerprint) and why it failed; it never holds a value.
pub fn open(sealed: &SealedSecret, keys: &[UnsealingKey]) -> Result<Opened, String> {
    if keys.is_empty() {
        return Err("no key was given to unseal it with".to_string());
    }
    if sealed.spec.encrypted_data.is_empty() {
        // Nothing to decrypt proves nothing about the key, but the controller accepts it.
        return Ok(Opened { key_index: 0, values: BTreeMap::new() });
    }
    let mut reasons = Vec::new();
    for (key_index, key) in keys.iter().enumerate() {
        match sealed.unseal_with(key) {
            Ok(values) => return Ok(Opened { key_index, values }),
            Err(e) => reasons.push(format!("key {}: {e}", short(key.fingerprint()))),
        }
    }
    Err(format!("none of the {} given keys unseals it ({})", keys.len(), reasons.join("; ")))
}

/// The first 16 hex digits of a fingerprint: enough to tell keys apart in a table.
pub fn short(fingerprint: &str) -> &str {
    fingerprint.get(..16).unwrap_or(fingerprint)
}

/// Where a SealedSecret is: file, document, `List` item, identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based document number in the file.
    pub document: usize,
    /// Index in a `List` document's items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
}

impl Location {
    fn of(file: &ScannedFile, secret: &FoundSecret) -> Location {
        Location {
            file: file.path.clone(),
            document: file.documents[secret.document_index].number,
            item: secret.item,
            name: secret.sealed.metadata.name.clone(),
            namespace: secret.sealed.metadata.namespace.clone(),
        }
    }

    /// `namespace/name`, or `name` without a namespace.
    pub fn object(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The check of one SealedSecret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Where it is.
    #[serde(flatten)]
    pub location: Location,
    /// Fingerprint of the key that opened it.
    pub key_fingerprint: Option<String>,
    /// Why it fails the check (no key opens it, or it is not sealed to the newest key).
    pub failure: Option<String>,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// One entry per SealedSecret.
    pub secrets: Vec<Check>,
    /// Documents that could not be read but mention `SealedSecret`: they fail the check too.
    pub unreadable: Vec<UnreadableReport>,
}

/// An unreadable document, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableReport {
    /// The file.
    pub file: PathBuf,
    /// 1-based document number (0: the whole file).
    pub document: usize,
    /// Why.
    pub reason: String,
}

impl From<&Unreadable> for UnreadableReport {
    fn from(u: &Unreadable) -> Self {
        UnreadableReport { file: u.file.clone(), document: u.document, reason: u.reason.clone() }
    }
}

impl Verification {
    /// True when every SealedSecret passed and no document that may hold one was unreadable.
    pub fn ok(&self) -> bool {
        self.unreadable.is_empty() && self.secrets.iter().all(|c| c.failure.is_none())
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.secrets.iter().filter(|c| c.failure.is_some())
    }
}

/// Checks that every SealedSecret in the files opens with one of `keys` and, with `newest`, that
/// the key that opens it is the one of that certificate (so nothing still depends on an old key
/// about to be removed).
pub fn verify(files: &[ScannedFile], keys: &[UnsealingKey], newest: Option<&SealingCertificate>) -> Verification {
    let newest_fingerprint = newest.map(SealingCertificate::fingerprint);
    let mut out = Verification::default();
    for file in files {
        out.unreadable.extend(file.unreadable.iter().filter(|u| u.mentions_sealed_secret).map(UnreadableReport::from));
        for secret in &file.secrets {
            let location = Location::of(file, secret);
            let check = match open(&secret.sealed, keys) {
                // Nothing sealed: it opens anywhere and depends on no key.
                Ok(_) if secret.sealed.spec.encrypted_data.is_empty() => {
                    Check { location, key_fingerprint: None, failure: None }
                }
                Ok(opened) => {
                    let fingerprint = keys[opened.key_index].fingerprint().to_string();
                    let failure = match &newest_fingerprint {
                        Some(want) if *want != fingerprint => Some(format!(
                            "sealed to key {}, not to the newest key {}: run `kvm-gitops reseal`",
                            short(&fingerprint),
                            short(want)
                        )),
                        _ => None,
                    };
                    Check { location, key_fingerprint: Some(fingerprint), failure }
                }
                Err(reason) => Check { location, key_fingerprint: None, failure: Some(reason) },
            };
            out.secrets.push(check);
        }
    }
    out
}

/// What happened to one SealedSecret in a re-seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResealResult {
    /// Its values were sealed anew to the target certificate.
    Resealed,
    /// It was already sealed to the target key; left as it was.
    Current,
    /// No given key opens it, or sealing failed; the reason says which.
    Failed(String),
}

/// One row of a re-seal report.
#[derive(Debug, Clone, Serialize)]
pub struct ResealRow {
    /// Where it is.
    #[serde(flatten)]
    pub location: Location,
    /// Fingerprint of the key that opened it.
    pub old_fingerprint: Option<String>,
    /// Fingerprint of the key it is sealed to afterwards (the target's, unless it failed).
    pub new_fingerprint: Option<String>,
    /// What happened.
    pub result: ResealResult,
}

/// A re-seal worked out in memory: the report and the new text of every file that changes.
#[derive(Debug, Clone, Default)]
pub struct ResealPlan {
    /// One row per SealedSecret, in file and document order.
    pub rows: Vec<ResealRow>,
    /// Documents that could not be read but mention `SealedSecret`.
    pub unreadable: Vec<UnreadableReport>,
    /// New file contents, only for files in which something was re-sealed. With failures these
    /// still hold every re-seal that worked; whether to write them is the caller's choice.
    pub changes: Vec<FileChange>,
}

impl ResealPlan {
    /// Rows that failed.
    pub fn failures(&self) -> impl Iterator<Item = &ResealRow> {
        self.rows.iter().filter(|r| matches!(r.result, ResealResult::Failed(_)))
    }

    /// True when every SealedSecret was re-sealed or already current and nothing was unreadable.
    pub fn complete(&self) -> bool {
        self.unreadable.is_empty() && self.failures().next().is_none()
    }
}

/// A file's new content.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// The file.
    pub path: PathBuf,
    /// The whole new text.
    pub text: String,
}

/// New `encryptedData` of one SealedSecret: its `List` item (if any) and the new ciphertexts.
type NewData = (Option<usize>, BTreeMap<String, String>);

/// Options of [`plan_reseal`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ResealOptions {
    /// Re-seal also what is already sealed to the target key (fresh ciphertexts, same key);
    /// without it a second run changes nothing.
    pub force: bool,
}

/// Works out a re-seal of every SealedSecret in `files` to `cert`, opening each with one of
/// `keys`. Writes nothing. Refuses an expired certificate, as kubeseal does.
pub fn plan_reseal(
    files: &[ScannedFile],
    keys: &[UnsealingKey],
    cert: &SealingCertificate,
    options: ResealOptions,
) -> Result<ResealPlan, SealingError> {
    if cert.is_expired_at(super::keys::now_unix()) {
        return Err(SealingError::CertificateExpired { not_after: cert.not_after() });
    }
    let target = cert.fingerprint();
    let mut plan = ResealPlan::default();
    for file in files {
        plan.unreadable.extend(file.unreadable.iter().filter(|u| u.mentions_sealed_secret).map(UnreadableReport::from));
        // New encryptedData per (document index, item), applied per document below.
        let mut new_data: BTreeMap<usize, Vec<NewData>> = BTreeMap::new();
        for secret in &file.secrets {
            let location = Location::of(file, secret);
            let row = match open(&secret.sealed, keys) {
                Err(reason) => ResealRow {
                    location,
                    old_fingerprint: None,
                    new_fingerprint: None,
                    result: ResealResult::Failed(reason),
                },
                Ok(_) if secret.sealed.spec.encrypted_data.is_empty() => {
                    ResealRow { location, old_fingerprint: None, new_fingerprint: None, result: ResealResult::Current }
                }
                Ok(opened) => {
                    let old = keys[opened.key_index].fingerprint().to_string();
                    if old == target && !options.force {
                        ResealRow {
                            location,
                            old_fingerprint: Some(old),
                            new_fingerprint: Some(target.clone()),
                            result: ResealResult::Current,
                        }
                    } else {
                        match seal_values(&secret.sealed, &opened.values, cert) {
                            Ok(data) => {
                                new_data.entry(secret.document_index).or_default().push((secret.item, data));
                                ResealRow {
                                    location,
                                    old_fingerprint: Some(old),
                                    new_fingerprint: Some(target.clone()),
                                    result: ResealResult::Resealed,
                                }
                            }
                            Err(e) => ResealRow {
                                location,
                                old_fingerprint: Some(old),
                                new_fingerprint: None,
                                result: ResealResult::Failed(e.to_string()),
                            },
                        }
                    }
                }
            };
            plan.rows.push(row);
        }
        if new_data.is_empty() {
            continue;
        }
        let mut edits: Vec<(Range<usize>, String)> = Vec::new();
        for (document_index, secrets) in &new_data {
            let document = &file.documents[*document_index];
            let old_text = &file.text[document.span.clone()];
            let new_text = match replace_in_place(old_text, &file.secrets, *document_index, secrets) {
                Some(text) => text,
                None => render(&document.value, secrets, file.format),
            };
            edits.push((document.span.clone(), new_text));
        }
        plan.changes.push(FileChange { path: file.path.clone(), text: splice(&file.text, edits) });
    }
    Ok(plan)
}

/// Seals every value again under the SealedSecret's own label (from its metadata: name,
/// namespace, scope annotations), so it opens exactly where it opened before.
fn seal_values(
    sealed: &SealedSecret,
    values: &BTreeMap<String, Vec<u8>>,
    cert: &SealingCertificate,
) -> Result<BTreeMap<String, String>, SealingError> {
    let label = sealed.label()?;
    values
        .iter()
        .map(|(k, v)| {
            let ciphertext =
                cert.seal(v, &label).map_err(|e| SealingError::SealValue { key: k.clone(), reason: e.to_string() })?;
            Ok((k.clone(), BASE64.encode(ciphertext)))
        })
        .collect()
}

/// Replaces each old ciphertext of the re-sealed secrets of one document where it stands; `None`
/// when some old value does not occur exactly once in the document's text.
fn replace_in_place(text: &str, all: &[FoundSecret], document_index: usize, secrets: &[NewData]) -> Option<String> {
    let mut edits = Vec::new();
    for (item, data) in secrets {
        let found = all.iter().find(|s| s.document_index == document_index && s.item == *item)?;
        for (key, new) in data {
            let old = found.sealed.spec.encrypted_data.get(key)?.trim();
            if old.is_empty() {
                return None;
            }
            let mut hits = text.match_indices(old);
            let (at, _) = hits.next()?;
            if hits.next().is_some() {
                return None;
            }
            // The old value must be a whole token, not part of a longer one.
            let before = text[..at].chars().next_back();
            let after = text[at + old.len()..].chars().next();
            let base64_char =
                |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
            if base64_char(before) || base64_char(after) {
                return None;
            }
            edits.push((at..at + old.len(), new.clone()));
        }
    }
    edits.sort_by_key(|(r, _)| r.start);
    if edits.windows(2).any(|w| w[0].0.end > w[1].0.start) {
        return None;
    }
    Some(splice(text, edits))
}

/// Renders a document anew with the new ciphertexts (the fallback of [`replace_in_place`]).
fn render(value: &Value, secrets: &[NewData], format: FileFormat) -> String {
    let mut value = value.clone();
    for (item, data) in secrets {
        let object = match item {
            Some(i) => &mut value["items"][*i],
            None => &mut value,
        };
        let encrypted = &mut object["spec"]["encryptedData"];
        for (k, v) in data {
            encrypted[k] = Value::String(v.clone());
        }
    }
    match format {
        FileFormat::Json => serde_json::to_string_pretty(&value).unwrap_or_default(),
        FileFormat::Yaml => crate::yaml::to_yaml(&value).trim_end_matches('\n').to_string(),
    }
}

/// Applies non-overlapping edits, given in any order.
fn splice(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, new) in edits {
        out.push_str(&text[at..range.start]);
        out.push_str(&new);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::tree::scan_text;
    use crate::{seal_secret, KeyOptions, Scope, SealingKey, SecretSpec};
    use std::path::Path;

    /// The repository's public test key (old) and one generated key (new).
    fn old_key() -> &'static SealingKey {
        static KEY: OnceLock<SealingKey> = OnceLock::new();
        KEY.get_or_init(|| {
            SealingKey::from_pem(
                include_str!("../../testdata/sealed-secrets/sealing-key.pem"),
                include_str!("../../testdata/sealed-secrets/sealing-cert.pem"),
            )
            .unwrap()
        })
    }

    fn new_key() -> &'static SealingKey {
        static KEY: OnceLock<SealingKey> = OnceLock::new();
        KEY.get_or_init(|| SealingKey::generate(&KeyOptions::default()).unwrap())
    }

    fn sealed_yaml(key: &SealingKey, ns: &str, name: &str, scope: Scope) -> String {
        let values = BTreeMap::from([
            ("password".to_string(), format!("pw-{name}").into_bytes()),
            ("user".to_string(), b"u".to_vec()),
        ]);
        let labels = BTreeMap::from([("app".to_string(), name.to_string())]);
        let annotations = BTreeMap::from([("example.com/owner".to_string(), "team".to_string())]);
        let spec = SecretSpec {
            namespace: ns,
            name,
            scope,
            secret_type: "Opaque",
            values: &values,
            labels: &labels,
            annotations: &annotations,
        };
        seal_secret(key.certificate(), &spec).unwrap().to_yaml()
    }

    fn file_text() -> String {
        format!(
            "# Managed by hand: keep this comment\n---\napiVersion: v1\nkind: ConfigMap # trailing\nmetadata: {{name: c}}\n---\n# the db secret\n{}---\n{}",
            sealed_yaml(old_key(), "payments", "db", Scope::Strict),
            sealed_yaml(old_key(), "payments", "wide", Scope::NamespaceWide),
        )
    }

    #[test]
    fn reseal_replaces_only_ciphertexts_and_is_idempotent() {
        let text = file_text();
        let file = scan_text(Path::new("a.yaml"), FileFormat::Yaml, text.clone());
        assert_eq!(file.secrets.len(), 2);
        let keys = [UnsealingKey::from(old_key())];
        let plan =
            plan_reseal(std::slice::from_ref(&file), &keys, new_key().certificate(), ResealOptions::default()).unwrap();
        assert!(plan.complete(), "{:?}", plan.rows);
        assert!(plan.rows.iter().all(|r| r.result == ResealResult::Resealed));
        assert_eq!(plan.rows[0].old_fingerprint.as_deref(), Some(old_key().certificate().fingerprint().as_str()));
        let new_text = &plan.changes[0].text;

        // Line by line, only the lines holding a ciphertext differ.
        let old_lines: Vec<_> = text.lines().collect();
        let new_lines: Vec<_> = new_text.lines().collect();
        assert_eq!(old_lines.len(), new_lines.len());
        let changed: Vec<_> = old_lines.iter().zip(&new_lines).filter(|(a, b)| a != b).collect();
        assert_eq!(changed.len(), 4, "two values in each of two secrets");
        assert!(changed
            .iter()
            .all(|(a, _)| a.trim_start().starts_with("password:") || a.trim_start().starts_with("user:")));

        // The result opens with the new key only, to the same values, with the same metadata.
        let again = scan_text(Path::new("a.yaml"), FileFormat::Yaml, new_text.clone());
        for (before, after) in file.secrets.iter().zip(&again.secrets) {
            assert_eq!(before.sealed.metadata, after.sealed.metadata);
            assert_eq!(before.sealed.spec.template, after.sealed.spec.template);
            assert_eq!(before.sealed.unseal(old_key()).unwrap(), after.sealed.unseal(new_key()).unwrap());
            assert!(after.sealed.unseal(old_key()).is_err());
        }

        // A second run finds everything current and changes nothing.
        let keys = [UnsealingKey::from(old_key()), UnsealingKey::from(new_key())];
        let plan = plan_reseal(std::slice::from_ref(&again), &keys, new_key().certificate(), ResealOptions::default())
            .unwrap();
        assert!(plan.rows.iter().all(|r| r.result == ResealResult::Current));
        assert!(plan.changes.is_empty());
        let v = verify(std::slice::from_ref(&again), &keys, Some(new_key().certificate()));
        assert!(v.ok(), "{:?}", v.secrets);
        let v = verify(std::slice::from_ref(&file), &keys, Some(new_key().certificate()));
        assert!(!v.ok());
        assert!(v.failures().all(|c| c.failure.as_deref().unwrap().contains("not to the newest key")));
    }

    #[test]
    fn secrets_no_key_opens_fail_and_name_the_keys() {
        let file =
            scan_text(Path::new("a.yaml"), FileFormat::Yaml, sealed_yaml(new_key(), "a", "b", Scope::ClusterWide));
        let keys = [UnsealingKey::from(old_key())];
        let plan =
            plan_reseal(std::slice::from_ref(&file), &keys, old_key().certificate(), ResealOptions::default()).unwrap();
        assert!(!plan.complete());
        let ResealResult::Failed(reason) = &plan.rows[0].result else { panic!("{:?}", plan.rows[0]) };
        assert!(reason.contains(short(&old_key().certificate().fingerprint())), "{reason}");
        assert!(!reason.contains("pw-b"));
        let v = verify(std::slice::from_ref(&file), &keys, None);
        assert!(!v.ok());
        assert!(open(&file.secrets[0].sealed, &[]).unwrap_err().contains("no key"));
    }

    #[test]
    fn duplicated_ciphertext_falls_back_to_rendering_the_document() {
        let mut text = sealed_yaml(old_key(), "n", "s", Scope::Strict);
        // Same ciphertext under two data keys (a copy-paste): in-place replacement is ambiguous.
        let doc = scan_text(Path::new("a.yaml"), FileFormat::Yaml, text.clone());
        let user = doc.secrets[0].sealed.spec.encrypted_data["user"].clone();
        text = text.replace("    user:", &format!("    copy: {user}\n    user:"));
        let file = scan_text(Path::new("a.yaml"), FileFormat::Yaml, text);
        let keys = [UnsealingKey::from(old_key())];
        let plan =
            plan_reseal(std::slice::from_ref(&file), &keys, new_key().certificate(), ResealOptions::default()).unwrap();
        assert!(plan.complete(), "{:?}", plan.rows);
        let again = scan_text(Path::new("a.yaml"), FileFormat::Yaml, plan.changes[0].text.clone());
        let values = again.secrets[0].sealed.unseal(new_key()).unwrap();
        assert_eq!(values["copy"], b"u");
        assert_eq!(again.secrets[0].sealed.metadata, file.secrets[0].sealed.metadata);
    }
}

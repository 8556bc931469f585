//! Finding the SealedSecrets in a GitOps working tree: YAML files (several documents each,
//! mixed with other manifests and comments) and JSON files, with the exact byte span of every
//! document, so a re-seal can replace one document's text and leave every other byte alone.
//!
//! Pure: reads files, never writes, never runs anything.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{SealedSecret, API_VERSION, KIND};

/// Why a tree could not be walked at all (one file that fails to parse is not this: see
/// [`Unreadable`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// A path given, or a directory below it, could not be listed or read.
    #[error("cannot read {path}: {source}; check the path and its permissions")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Whether a file is read as JSON (one value) or YAML (`---`-separated documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `.json`: one JSON value.
    Json,
    /// `.yaml` / `.yml`: one or more YAML documents.
    Yaml,
}

impl FileFormat {
    /// The format of a path, by extension; `None` for files a tree walk skips.
    pub fn of(path: &Path) -> Option<FileFormat> {
        match path.extension()?.to_str()? {
            "json" => Some(FileFormat::Json),
            "yaml" | "yml" => Some(FileFormat::Yaml),
            _ => None,
        }
    }
}

/// One document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based document number in the file.
    pub number: usize,
    /// Byte range of the document's content, without the `---` marker and without leading and
    /// trailing blank or comment-only lines (those belong to no document and stay as they are).
    pub span: Range<usize>,
    /// 1-based line of the first byte of `span`, for messages.
    pub line: usize,
    /// The parsed document.
    pub value: Value,
}

/// One SealedSecret found in a file.
#[derive(Debug, Clone)]
pub struct FoundSecret {
    /// Index into [`ScannedFile::documents`].
    pub document_index: usize,
    /// For a `List` document, the index in its `items`; `None` for a top-level SealedSecret.
    pub item: Option<usize>,
    /// The manifest.
    pub sealed: SealedSecret,
}

/// A document that could not be read. It only counts as a problem when it looks like a
/// SealedSecret: GitOps trees hold Helm templates and other `.yaml` files that are not YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The file.
    pub file: PathBuf,
    /// 1-based document number (0 when the whole file is unreadable, e.g. not UTF-8).
    pub document: usize,
    /// Why (positions and field names only, never values).
    pub reason: String,
    /// Whether the text mentions `SealedSecret`: then a check must fail, as a secret may hide in it.
    pub mentions_sealed_secret: bool,
}

/// One manifest file, read and split.
#[derive(Debug, Clone)]
pub struct ScannedFile {
    /// The file.
    pub path: PathBuf,
    /// How it was read.
    pub format: FileFormat,
    /// Its text, exactly as on disk.
    pub text: String,
    /// Its parsed, non-empty documents.
    pub documents: Vec<Document>,
    /// The SealedSecrets in it, in document order.
    pub secrets: Vec<FoundSecret>,
    /// Documents that could not be read.
    pub unreadable: Vec<Unreadable>,
}

impl ScannedFile {
    /// `namespace/name` of a found secret (just `name` without a namespace), for reports.
    pub fn display_name(secret: &FoundSecret) -> String {
        let m = &secret.sealed.metadata;
        match &m.namespace {
            Some(ns) => format!("{ns}/{}", m.name),
            None => m.name.clone(),
        }
    }
}

/// Every `.yaml`, `.yml` and `.json` file under the given paths (a file given directly is taken
/// whatever its extension, read as JSON if it ends in `.json` and as YAML otherwise), sorted and
/// without duplicates so reports are stable. Hidden entries (`.git`, `.terraform`) are skipped
/// and symbolic links to directories are not followed, so a link loop cannot hang the walk.
pub fn manifest_files(roots: &[PathBuf]) -> Result<Vec<PathBuf>, TreeError> {
    let mut out = Vec::new();
    for root in roots {
        let io = |source| TreeError::Io { path: root.clone(), source };
        let meta = std::fs::metadata(root).map_err(io)?;
        if meta.is_dir() {
            walk(root, &mut out)?;
        } else {
            out.push(root.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TreeError> {
    let io = |source| TreeError::Io { path: dir.to_path_buf(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(io)?;
        if file_type.is_dir() {
            walk(&path, out)?;
        } else if FileFormat::of(&path).is_some() && (file_type.is_file() || path.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads and scans every manifest file under the given paths.
pub fn scan_tree(roots: &[PathBuf]) -> Result<Vec<ScannedFile>, TreeError> {
    manifest_files(roots)?.into_iter().map(|path| scan_file(&path)).collect()
}

/// Reads and scans one file (see [`scan_text`]). A file that is not UTF-8 is reported as
/// unreadable rather than failing the walk.
pub fn scan_file(path: &Path) -> Result<ScannedFile, TreeError> {
    let bytes = std::fs::read(path).map_err(|source| TreeError::Io { path: path.to_path_buf(), source })?;
    let format = FileFormat::of(path).unwrap_or(FileFormat::Yaml);
    match String::from_utf8(bytes) {
        Ok(text) => Ok(scan_text(path, format, text)),
        Err(e) => {
            let mentions = contains(e.as_bytes(), KIND.as_bytes());
            Ok(ScannedFile {
                path: path.to_path_buf(),
                format,
                text: String::new(),
                documents: Vec::new(),
                secrets: Vec::new(),
                unreadable: vec![Unreadable {
                    file: path.to_path_buf(),
                    document: 0,
                    reason: "the file is not UTF-8 text".to_string(),
                    mentions_sealed_secret: mentions,
                }],
            })
        }
    }
}

/// serde's "invalid type" messages quote the offending value, which may be a secret; field
/// names (in backticks) stay.
fn redact_quoted(message: &str) -> String {
    let mut out = String::new();
    for (i, part) in message.split('"').enumerate() {
        out.push_str(if i % 2 == 1 { "\"…\"" } else { part });
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Splits and parses a file's text and finds its SealedSecrets (top-level ones and the items of
/// `List` documents).
pub fn scan_text(path: &Path, format: FileFormat, text: String) -> ScannedFile {
    let mut documents = Vec::new();
    let mut unreadable = Vec::new();
    let spans = match format {
        FileFormat::Json => {
            let start = text.len() - text.trim_start().len();
            let end = text.trim_end().len();
            // One JSON value: one span (none for a blank file).
            std::iter::once(start..end).filter(|r| !r.is_empty()).collect()
        }
        FileFormat::Yaml => yaml_document_spans(&text),
    };
    for (i, span) in spans.into_iter().enumerate() {
        let number = i + 1;
        let slice = &text[span.clone()];
        let line = text[..span.start].matches('\n').count() + 1;
        let parsed: Result<Value, String> = match format {
            FileFormat::Json => serde_json::from_str(slice)
                .map_err(|e| format!("not valid JSON at line {} column {}", e.line() + line - 1, e.column())),
            FileFormat::Yaml => serde_norway::from_str(slice).map_err(|e| match e.location() {
                Some(l) => format!("not valid YAML at line {}", l.line() + line - 1),
                None => "not a plain YAML document".to_string(),
            }),
        };
        match parsed {
            Ok(Value::Null) => {}
            Ok(value) => documents.push(Document { number, span, line, value }),
            Err(reason) => unreadable.push(Unreadable {
                file: path.to_path_buf(),
                document: number,
                reason,
                mentions_sealed_secret: slice.contains(KIND),
            }),
        }
    }

    let mut secrets = Vec::new();
    for (document_index, document) in documents.iter().enumerate() {
        let mut candidates: Vec<(Option<usize>, &Value)> = Vec::new();
        if let Some(items) = document.value.get("items").and_then(Value::as_array) {
            candidates.extend(items.iter().enumerate().map(|(i, v)| (Some(i), v)));
        } else {
            candidates.push((None, &document.value));
        }
        for (item, value) in candidates {
            if value.get("kind").and_then(Value::as_str) != Some(KIND)
                || value.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION)
            {
                continue;
            }
            match serde_json::from_value::<SealedSecret>(value.clone()) {
                Ok(sealed) => secrets.push(FoundSecret { document_index, item, sealed }),
                Err(e) => unreadable.push(Unreadable {
                    file: path.to_path_buf(),
                    document: document.number,
                    reason: format!("a SealedSecret of an unexpected shape: {}", redact_quoted(&e.to_string())),
                    mentions_sealed_secret: true,
                }),
            }
        }
    }
    ScannedFile { path: path.to_path_buf(), format, text, documents, secrets, unreadable }
}

/// The content spans of a YAML stream's documents. A line starting with `---` (followed by
/// nothing or a blank) starts a document and a `...` line ends one; at column 0 these are
/// document markers wherever they appear (YAML forbids them inside scalars there), so plain line
/// splitting is exact. Content on the `---` line itself (`--- !tag` or `--- {..}`) belongs to
/// the document.
fn yaml_document_spans(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let is_start = body == "---" || body.starts_with("--- ") || body.starts_with("---\t");
        let is_end = body == "..." || body.starts_with("... ") || body.starts_with("...\t");
        if is_start || is_end {
            spans.extend(trimmed(text, start..offset));
            start = if is_start && body.len() > 3 && !body[3..].trim_start().starts_with('#') {
                offset + 3 + (body.len() - 3 - body[3..].trim_start().len())
            } else {
                offset + line.len()
            };
        }
        offset += line.len();
    }
    spans.extend(trimmed(text, start..text.len()));
    spans
}

/// The part of `range` from the first line holding more than blanks or a comment to the end of
/// the last such line (its line break excluded); `None` if there is no such line. Comments and
/// blank lines around a document thereby stay outside its span and survive its replacement.
fn trimmed(text: &str, range: Range<usize>) -> Option<Range<usize>> {
    let slice = &text[range.clone()];
    let mut first = None;
    let mut last = None;
    let mut offset = 0;
    for line in slice.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let content = body.trim_start();
        if !content.is_empty() && !content.starts_with('#') {
            first.get_or_insert(offset);
            last = Some(offset + body.len());
        }
        offset += line.len();
    }
    Some(range.start + first?..range.start + last?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<&str> {
        yaml_document_spans(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn splits_documents_and_keeps_comments_outside() {
        let text =
            "# header\n---\na: 1\n# trailing comment\n---\n\n# only a comment\n---\nb: 2\n...\n# after end\n--- c: 3\n";
        assert_eq!(spans(text), ["a: 1", "b: 2", "c: 3"]);
        assert_eq!(spans("a: 1\n---\nb: |\n  --- not a marker\n"), ["a: 1", "b: |\n  --- not a marker"]);
        assert_eq!(spans("--- # comment\nx: y\n"), ["x: y"]);
        assert_eq!(spans(""), Vec::<&str>::new());
        assert_eq!(spans("a: 1\r\n---\r\nb: 2\r\n"), ["a: 1", "b: 2"]);
    }

    #[test]
    fn finds_sealed_secrets_in_documents_and_lists() {
        let sealed = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: a\n  namespace: n\nspec:\n  encryptedData:\n    k: AgA=\n";
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}",
            r#"{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "metadata": {"name": "b"}, "spec": {"encryptedData": {}}}"#
        );
        let text = format!("{sealed}---\napiVersion: v1\nkind: ConfigMap\n---\n{list}\n---\n{{{{ helm }}}}: [\n");
        let f = scan_text(Path::new("x.yaml"), FileFormat::Yaml, text);
        assert_eq!(f.documents.len(), 3);
        assert_eq!(f.secrets.len(), 2);
        assert_eq!(f.secrets[1].item, Some(0));
        assert_eq!(ScannedFile::display_name(&f.secrets[0]), "n/a");
        assert_eq!(f.unreadable.len(), 1);
        assert!(!f.unreadable[0].mentions_sealed_secret, "a Helm template is not a SealedSecret");
        assert_eq!(f.unreadable[0].document, 4);
    }

    #[test]
    fn malformed_sealed_secret_is_reported_without_values() {
        let text = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: a\nspec:\n  encryptedData: hunter2\n";
        let f = scan_text(Path::new("x.yaml"), FileFormat::Yaml, text.to_string());
        assert!(f.secrets.is_empty());
        assert!(f.unreadable[0].mentions_sealed_secret);
        assert!(!f.unreadable[0].reason.contains("hunter2"), "{}", f.unreadable[0].reason);
    }

    #[test]
    fn json_spans_exclude_surrounding_whitespace() {
        let text = "\n  {\"kind\": \"ConfigMap\"}\n\n".to_string();
        let f = scan_text(Path::new("x.json"), FileFormat::Json, text.clone());
        assert_eq!(&text[f.documents[0].span.clone()], "{\"kind\": \"ConfigMap\"}");
    }
}

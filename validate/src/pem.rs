//! PEM text: which kind of block it holds, and DER written back as PEM the one way every tool
//! here writes it (LF line endings, 64-column base64).

use crate::{invalid, Invalid, Problem};

/// The contents of the one PEM block in `text`, which must be tagged `tag` (e.g. `CERTIFICATE`,
/// `EC PRIVATE KEY`). `what` names the value in the message (e.g. "server CA certificate").
pub fn single_block(text: &str, tag: &str, what: &'static str) -> Result<Vec<u8>, Invalid> {
    let problem = |p: String| invalid(&summary(text), what, Problem::Other(p));
    let blocks = pem::parse_many(text).map_err(|e| problem(format!("not PEM: {e}")))?;
    match blocks.as_slice() {
        [b] if b.tag() == tag => Ok(b.contents().to_vec()),
        [b] => Err(problem(format!("expected a {tag:?} PEM block, found {:?}", b.tag()))),
        [] => Err(problem(format!("no PEM block (expected {tag:?})"))),
        more => Err(problem(format!("expected one PEM block, found {}", more.len()))),
    }
}

/// DER as a PEM block tagged `tag`, with LF line endings.
pub fn encode(tag: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der.to_vec()), config)
}

/// What an error message shows of a PEM text: its first line only (never key material).
fn summary(text: &str) -> String {
    let first = text.trim_start().lines().next().unwrap_or_default();
    if first.starts_with("-----BEGIN") {
        format!("{first}…")
    } else {
        "(text)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_by_tag() {
        let cert = encode("CERTIFICATE", &[1, 2, 3]);
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----"));
        assert_eq!(single_block(&cert, "CERTIFICATE", "certificate").unwrap(), [1, 2, 3]);
        let e = single_block(&cert, "EC PRIVATE KEY", "key").unwrap_err().to_string();
        assert!(e.contains("expected a \"EC PRIVATE KEY\" PEM block, found \"CERTIFICATE\""), "{e}");
        assert!(single_block("", "CERTIFICATE", "c").unwrap_err().to_string().contains("no PEM block"));
        let two = format!("{cert}{cert}");
        assert!(single_block(&two, "CERTIFICATE", "c").unwrap_err().to_string().contains("found 2"));
        // A key's body never shows in a message.
        let key = encode("EC PRIVATE KEY", b"secret-bytes");
        let e = single_block(&key, "CERTIFICATE", "c").unwrap_err().to_string();
        assert!(!e.contains("c2VjcmV0"), "{e}");
    }
}

//! A small pull-style JSON reader and a string writer, shared by the type-JSON and
//! value-JSON codecs.
//!
//! Hand-written rather than serde_json because the value codec is driven by the cty type
//! (it must see number text verbatim, and defer a dynamic value until its `"type"` key
//! has been read), and because enabling serde_json's `arbitrary_precision` would change
//! number handling for every crate in the workspace.

use std::borrow::Cow;

/// Nesting limit for anything parsed from the wire, so hostile input cannot overflow the
/// stack. Real Terraform values nest a few dozen levels at most.
pub(crate) const MAX_DEPTH: usize = 256;

/// A cursor over JSON text. Errors are plain messages; callers attach the cty path.
pub(crate) struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(src: &'a [u8]) -> Reader<'a> {
        Reader { src, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The raw text between two positions (used to defer a dynamic value).
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        &self.src[start..end]
    }

    pub(crate) fn error(&self, msg: impl std::fmt::Display) -> String {
        format!("{msg} at byte {}", self.pos)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next significant byte, not consumed.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.src.get(self.pos).copied()
    }

    /// Consumes `b` if it is the next significant byte.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.error(format!("expected '{}', found {}", b as char, self.describe_next())))
        }
    }

    /// True when only whitespace remains.
    pub(crate) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// What the next value is, for "expected X, found Y" messages.
    pub(crate) fn describe_next(&self) -> &'static str {
        let next = self.src[self.pos..].iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        match next {
            None => "end of input",
            Some(b'"') => "string",
            Some(b'{') => "object",
            Some(b'[') => "array",
            Some(b't' | b'f') => "bool",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => "number",
            Some(b'}') => "'}'",
            Some(b']') => "']'",
            Some(b',') => "','",
            Some(b':') => "':'",
            Some(_) => "invalid character",
        }
    }

    /// Consumes the literal `word` (`true`, `false`, `null`).
    pub(crate) fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        self.skip_ws();
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("invalid literal"))
        }
    }

    /// A JSON number's text, validated against the JSON grammar but not converted.
    pub(crate) fn number(&mut self) -> Result<&'a str, String> {
        self.skip_ws();
        let start = self.pos;
        let s = self.src;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while s.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if s.get(i) == Some(&b'-') {
            i += 1;
        }
        match s.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return Err(self.error("invalid number")),
        }
        if s.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                self.pos = i;
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = s.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = s.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                self.pos = i;
                return Err(self.error("invalid number"));
            }
        }
        self.pos = i;
        // Only ASCII was accepted above.
        Ok(std::str::from_utf8(&s[start..i]).expect("ASCII number"))
    }

    /// A string, borrowed from the input when it has no escapes.
    pub(crate) fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.skip_ws();
        if self.src.get(self.pos) != Some(&b'"') {
            return Err(self.error(format!("expected string, found {}", self.describe_next())));
        }
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.src.get(self.pos) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    let raw = &self.src[start..self.pos];
                    self.pos += 1;
                    return std::str::from_utf8(raw)
                        .map(Cow::Borrowed)
                        .map_err(|_| self.error("invalid UTF-8 in string"));
                }
                Some(b'\\') => break,
                Some(c) if *c < 0x20 => return Err(self.error("control character in string")),
                Some(_) => self.pos += 1,
            }
        }
        let mut buf = self.src[start..self.pos].to_vec();
        loop {
            match self.src.get(self.pos) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return String::from_utf8(buf).map(Cow::Owned).map_err(|_| self.error("invalid UTF-8 in string"));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let esc = self.src.get(self.pos).copied();
                    self.pos += 1;
                    let c = match esc {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("invalid escape in string"));
                        }
                    };
                    let mut utf8 = [0u8; 4];
                    buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
                Some(c) if *c < 0x20 => return Err(self.error("control character in string")),
                Some(c) => {
                    buf.push(*c);
                    self.pos += 1;
                }
            }
        }
    }

    /// The character of a `\uXXXX` escape (the `\u` already consumed), combining a
    /// surrogate pair; a lone surrogate becomes U+FFFD, as Go's decoder (and so
    /// Terraform) does.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) && self.src[self.pos..].starts_with(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex4()?;
            if (0xDC00..0xE000).contains(&second) {
                let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            self.pos = save;
        }
        Ok(char::from_u32(first).unwrap_or('\u{FFFD}'))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.src.get(self.pos..self.pos + 4).ok_or_else(|| self.error("truncated \\u escape"))?;
        let mut v = 0;
        for &d in digits {
            let nibble = (d as char).to_digit(16).ok_or_else(|| self.error("invalid \\u escape"))?;
            v = v * 16 + nibble;
        }
        self.pos += 4;
        Ok(v)
    }

    /// Skips one value of any shape.
    pub(crate) fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(b'[') => {
                self.pos += 1;
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if !self.eat(b',') {
                        return self.expect(b']');
                    }
                }
            }
            Some(b'{') => {
                self.pos += 1;
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.string()?;
                    self.expect(b':')?;
                    self.skip_value(depth + 1)?;
                    if !self.eat(b',') {
                        return self.expect(b'}');
                    }
                }
            }
            _ => Err(self.error(format!("expected a value, found {}", self.describe_next()))),
        }
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        if esc.is_empty() {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        } else {
            out.extend_from_slice(esc);
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for s in ["", "plain", "quote\" back\\slash", "nl\n\r\t\u{1}\u{1f}", "ünïcødé ☃ 𝄞", "/"] {
            let mut out = Vec::new();
            write_string(&mut out, s);
            let mut r = Reader::new(&out);
            assert_eq!(r.string().unwrap(), s);
            assert!(r.at_end());
        }
    }

    #[test]
    fn escapes() {
        let mut r = Reader::new(br#""\u00e9\ud834\udd1e\/\b\f" "\ud800x" "\udc00""#);
        assert_eq!(r.string().unwrap(), "é𝄞/\u{8}\u{c}");
        assert_eq!(r.string().unwrap(), "\u{FFFD}x");
        assert_eq!(r.string().unwrap(), "\u{FFFD}");
        for bad in [&br#""\x""#[..], br#""\u12""#, b"\"abc", b"\"a\nb\"", b"\"\xff\"", b"\"\\n\xff\""] {
            assert!(Reader::new(bad).string().is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn numbers() {
        for ok in ["0", "-0", "12", "-1.5", "1e5", "1E+5", "2.5e-10"] {
            let mut r = Reader::new(ok.as_bytes());
            assert_eq!(r.number().unwrap(), ok);
        }
        for bad in ["-", "01", ".5", "1.", "1e", "+1", "1.e5"] {
            let mut r = Reader::new(bad.as_bytes());
            assert!(r.number().is_err() || !r.at_end(), "{bad}");
        }
    }

    #[test]
    fn skips_values() {
        let mut r = Reader::new(br#" {"a": [1, true, null, {"b": "c"}], "d": {}} , []"#);
        r.skip_value(0).unwrap();
        r.expect(b',').unwrap();
        r.skip_value(0).unwrap();
        assert!(r.at_end());
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(Reader::new(deep.as_bytes()).skip_value(0).is_err());
    }
}

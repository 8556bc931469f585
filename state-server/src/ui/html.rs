//! A tiny HTML builder that escapes by construction: text and attribute values go through
//! [`escape`]; only `&'static str` (markup written in this crate) is ever copied unescaped, so
//! nothing read from a state, a lock or the audit log can become markup.

use std::fmt::Write;

/// HTML under construction.
#[derive(Debug, Default)]
pub struct Html {
    out: String,
}

impl Html {
    /// An empty document fragment.
    pub fn new() -> Html {
        Html::default()
    }

    /// Opens `<tag attr="value" …>`; attribute values are escaped. Tag and attribute names are
    /// static: they come from this crate, never from data.
    pub fn open(&mut self, tag: &'static str, attrs: &[(&'static str, &str)]) -> &mut Html {
        self.out.push('<');
        self.out.push_str(tag);
        for (name, value) in attrs {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_into(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('>');
        self
    }

    /// Closes `</tag>`.
    pub fn close(&mut self, tag: &'static str) -> &mut Html {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// Text, escaped.
    pub fn text(&mut self, text: &str) -> &mut Html {
        escape_into(&mut self.out, text);
        self
    }

    /// `<tag attrs…>text</tag>`.
    pub fn el(&mut self, tag: &'static str, attrs: &[(&'static str, &str)], text: &str) -> &mut Html {
        self.open(tag, attrs).text(text).close(tag)
    }

    /// A void element (`<input …>`, `<meta …>`), attribute values escaped.
    pub fn void(&mut self, tag: &'static str, attrs: &[(&'static str, &str)]) -> &mut Html {
        self.open(tag, attrs)
    }

    /// Markup written in this crate (a `'static` string: it cannot hold data).
    pub fn raw(&mut self, markup: &'static str) -> &mut Html {
        self.out.push_str(markup);
        self
    }

    /// Appends another fragment (itself built escaped).
    pub fn append(&mut self, other: Html) -> &mut Html {
        self.out.push_str(&other.out);
        self
    }

    /// The markup.
    pub fn into_string(self) -> String {
        self.out
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'`: enough for text and for double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than white space have no business in a page.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters), for links built from
/// state names and other data.
pub fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A link's `href` from a path and query pairs, each value percent-encoded.
pub fn href(path: &'static str, query: &[(&'static str, &str)]) -> String {
    let mut out = String::from(path);
    for (i, (k, v)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&url_encode(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        let mut h = Html::new();
        h.el("td", &[("title", "\"><script>x</script>")], "<img src=x onerror=alert(1)>&'");
        assert_eq!(
            h.into_string(),
            "<td title=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\">&lt;img src=x onerror=alert(1)&gt;&amp;&#39;</td>"
        );
    }

    #[test]
    fn control_characters_are_replaced() {
        assert_eq!(escape("a\u{0}b\nc"), "a\u{fffd}b\nc");
    }

    #[test]
    fn links_encode_values() {
        assert_eq!(href("/ui/state", &[("name", "prod/a b&c")]), "/ui/state?name=prod%2Fa%20b%26c");
        assert_eq!(url_encode("é"), "%C3%A9");
    }
}

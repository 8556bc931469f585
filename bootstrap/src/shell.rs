//! POSIX sh helpers shared by everything that builds commands for a remote host (the k3s install
//! plan, the SSH engine), so there is exactly one quoting rule to get right.

/// Quotes one word for POSIX sh: bare when it holds only characters no shell treats specially
/// (keeps generated commands readable in logs), otherwise in single quotes, where nothing is
/// special except the single quote itself, which is closed, escaped and reopened (`'\''`).
///
/// The result is one word wherever it appears after the command name. (A bare `a=b` in command
/// position would be an assignment; callers never put a quoted value first.)
pub(crate) fn quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=+@,".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Directory part of an absolute path (`/` for a file in the root directory).
pub(crate) fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("/usr/local/bin/k3s"), "/usr/local/bin/k3s");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("'"), "''\\'''");
        assert_eq!(quote("$HOME"), "'$HOME'");
    }

    /// The real test of a quoting function: a shell must hand back exactly the original bytes.
    #[test]
    fn a_real_shell_reads_back_every_word_unchanged() {
        let words = [
            "",
            "plain",
            "two words",
            "it's",
            "''",
            "'\\''",
            "\"double\" $HOME `id` $(id) ${x:-y} \\n \\",
            "tab\tnew\nline",
            "glob * ? [a-z] ~ ~root",
            "; rm -rf / & | > < ( ) { } ! #",
            "ünïcødé ✓",
            "-n",
            "a=b",
        ];
        for word in words {
            let script = format!("printf %s {}", quote(word));
            let out = std::process::Command::new("sh").arg("-c").arg(&script).output().expect("run sh");
            assert!(out.status.success(), "{script}");
            assert_eq!(String::from_utf8(out.stdout).unwrap(), word, "{script}");
        }
    }

    /// Quoting must survive being nested, as `sudo -n sh -c QUOTED` does with a whole script.
    #[test]
    fn nested_quoting_survives_two_shells() {
        let inner = format!("printf '%s|' {} {}", quote("it's $HOME"), quote("a'b'c"));
        let outer = format!("sh -c {}", quote(&inner));
        let out = std::process::Command::new("sh").arg("-c").arg(&outer).output().expect("run sh");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "it's $HOME|a'b'c|");
    }

    #[test]
    fn parent_directory() {
        assert_eq!(parent("/etc/rancher/k3s/config.yaml"), "/etc/rancher/k3s");
        assert_eq!(parent("/k3s"), "/");
    }
}

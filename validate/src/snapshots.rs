//! What k3s' etcd snapshot settings accept: the schedule (robfig/cron's standard five fields,
//! which k3s parses `etcd-snapshot-schedule-cron` with), S3 bucket names (AWS' general-purpose
//! bucket rules, which S3-compatible stores follow) and the S3 endpoint (`HOST[:PORT]`: k3s puts
//! the scheme itself, `https://` unless `etcd-s3-insecure`).

use std::net::Ipv4Addr;

use crate::{invalid, Invalid, Problem};

const CRON: &str = "cron schedule";
const BUCKET: &str = "S3 bucket name";
const ENDPOINT: &str = "S3 endpoint";

/// Shorthands robfig/cron accepts in place of five fields (`@every` is left out: its Go duration
/// syntax is not checked here, and five fields say the same).
const DESCRIPTORS: &[&str] = &["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];

/// (name, lowest, highest, names for the values from `lowest` on)
const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    ("month", 1, 12, &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]),
    ("day of week", 0, 6, &["sun", "mon", "tue", "wed", "thu", "fri", "sat"]),
];

/// A cron schedule of five fields (minute, hour, day of month, month, day of week), each `*`, a
/// value, a range `a-b`, a step `*/n` or `a-b/n`, or a comma-separated list of those; months and
/// days of week also by their English three-letter names; `?` for either day field. Or one of the
/// descriptors `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`.
pub fn cron_schedule(s: &str) -> Result<(), Invalid> {
    let fail = |problem: String| invalid(s, CRON, Problem::Other(problem));
    if s.trim().is_empty() {
        return Err(invalid(s, CRON, Problem::Empty));
    }
    if s.starts_with('@') {
        return if DESCRIPTORS.contains(&s) {
            Ok(())
        } else {
            Err(fail(format!("the descriptors are {}; or give five fields", DESCRIPTORS.join(", "))))
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(fail(format!(
            "it has {} fields; expected 5: minute hour day-of-month month day-of-week (e.g. \"0 */6 * * *\")",
            fields.len()
        )));
    }
    for (field, (name, low, high, names)) in fields.iter().zip(FIELDS) {
        for part in field.split(',') {
            cron_part(part, low, high, names, name == "day of month" || name == "day of week")
                .map_err(|why| fail(format!("{name} {field:?}: {why}")))?;
        }
    }
    Ok(())
}

fn cron_part(part: &str, low: u32, high: u32, names: &[&str], question: bool) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (part, None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(n) if n >= 1 && n <= high - low + 1 => {}
            _ => return Err(format!("the step {step:?} must be a number from 1 to {}", high - low + 1)),
        }
    }
    if range == "*" || (question && range == "?") {
        return Ok(());
    }
    let value = |v: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(low + i as u32);
        }
        match v.parse::<u32>() {
            Ok(n) if (low..=high).contains(&n) => Ok(n),
            _ => Err(format!("{v:?} is not a value from {low} to {high}")),
        }
    };
    match range.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("the range {range:?} runs backwards"));
            }
        }
        None => {
            value(range)?;
        }
    }
    Ok(())
}

/// An S3 bucket name: 3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with a
/// letter or digit, no `..`, not shaped like an IPv4 address, no `xn--` prefix and no `-s3alias`
/// or `--ol-s3` suffix (names S3 reserves).
pub fn s3_bucket_name(s: &str) -> Result<(), Invalid> {
    let chars = |why: &'static str| invalid(s, BUCKET, Problem::Characters(why));
    if s.is_empty() {
        return Err(invalid(s, BUCKET, Problem::Empty));
    }
    if s.len() > 63 {
        return Err(invalid(s, BUCKET, Problem::TooLong { what: "it".into(), len: s.len(), max: 63 }));
    }
    if s.len() < 3 {
        return Err(invalid(
            s,
            BUCKET,
            Problem::Other(format!("it is {} characters long, at least 3 are needed", s.len())),
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return Err(chars("only lowercase letters, digits, '.' and '-' are allowed"));
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(s.as_bytes()[0]) || !alnum(s.as_bytes()[s.len() - 1]) {
        return Err(chars("it must start and end with a letter or digit"));
    }
    if s.contains("..") {
        return Err(chars("it must not contain two dots in a row"));
    }
    if s.parse::<Ipv4Addr>().is_ok() {
        return Err(invalid(s, BUCKET, Problem::Other("it must not be an IP address".into())));
    }
    if s.starts_with("xn--") || s.ends_with("-s3alias") || s.ends_with("--ol-s3") {
        return Err(invalid(
            s,
            BUCKET,
            Problem::Other("the prefix xn-- and the suffixes -s3alias and --ol-s3 are reserved".into()),
        ));
    }
    Ok(())
}

/// An S3 endpoint as k3s' `etcd-s3-endpoint` takes it: `HOST` or `HOST:PORT`, the host a DNS name
/// or an IP address (IPv6 in brackets), without scheme, path or credentials.
pub fn s3_endpoint(s: &str) -> Result<(), Invalid> {
    let fail = |problem: &str| invalid(s, ENDPOINT, Problem::Other(problem.to_string()));
    if s.is_empty() {
        return Err(invalid(s, ENDPOINT, Problem::Empty));
    }
    if s.contains("://") {
        return Err(fail(
            "give HOST[:PORT] without a scheme (k3s adds https://; set insecure for plain http), e.g. \
             \"minio.example.com:9000\"",
        ));
    }
    crate::net::host_port(s).map(|_| ()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&str) -> Result<(), Invalid>;

    // (check, value, accepted)
    const TABLE: &[(&str, Check, &str, bool)] = &[
        ("cron", cron_schedule, "0 */12 * * *", true),
        ("cron", cron_schedule, "*/5 * * * *", true),
        ("cron", cron_schedule, "15 2,14 * * mon-fri", true),
        ("cron", cron_schedule, "0 0 1 JAN,jul ?", true),
        ("cron", cron_schedule, "0-30/10 8-18 1-31 1-12 0-6", true),
        ("cron", cron_schedule, "@daily", true),
        ("cron", cron_schedule, "@hourly", true),
        ("cron", cron_schedule, "", false),
        ("cron", cron_schedule, "0 */12 * *", false),
        ("cron", cron_schedule, "0 0 */12 * * *", false),
        ("cron", cron_schedule, "60 * * * *", false),
        ("cron", cron_schedule, "* 24 * * *", false),
        ("cron", cron_schedule, "* * 0 * *", false),
        ("cron", cron_schedule, "* * 32 * *", false),
        ("cron", cron_schedule, "* * * 13 *", false),
        ("cron", cron_schedule, "* * * * 7", false),
        ("cron", cron_schedule, "*/0 * * * *", false),
        ("cron", cron_schedule, "*/61 * * * *", false),
        ("cron", cron_schedule, "30-10 * * * *", false),
        ("cron", cron_schedule, "* * * * funday", false),
        ("cron", cron_schedule, "? * * * *", false),
        ("cron", cron_schedule, "1,,2 * * * *", false),
        ("cron", cron_schedule, "@every 1h", false),
        ("cron", cron_schedule, "@often", false),
        ("bucket", s3_bucket_name, "k3s-snapshots", true),
        ("bucket", s3_bucket_name, "etcd.backups.example", true),
        ("bucket", s3_bucket_name, "abc", true),
        ("bucket", s3_bucket_name, "ab", false),
        ("bucket", s3_bucket_name, "", false),
        ("bucket", s3_bucket_name, "K3s-Snapshots", false),
        ("bucket", s3_bucket_name, "k3s_snapshots", false),
        ("bucket", s3_bucket_name, "-k3s", false),
        ("bucket", s3_bucket_name, "k3s.", false),
        ("bucket", s3_bucket_name, "k3s..snap", false),
        ("bucket", s3_bucket_name, "192.168.5.4", false),
        ("bucket", s3_bucket_name, "xn--k3s", false),
        ("bucket", s3_bucket_name, "k3s-s3alias", false),
        ("endpoint", s3_endpoint, "s3.amazonaws.com", true),
        ("endpoint", s3_endpoint, "minio.lab:9000", true),
        ("endpoint", s3_endpoint, "10.0.0.5:9000", true),
        ("endpoint", s3_endpoint, "[2001:db8::5]:9000", true),
        ("endpoint", s3_endpoint, "https://minio.lab:9000", false),
        ("endpoint", s3_endpoint, "minio.lab:9000/bucket", false),
        ("endpoint", s3_endpoint, "minio.lab:0", false),
        ("endpoint", s3_endpoint, "minio.lab:http", false),
        ("endpoint", s3_endpoint, "user@minio.lab", false),
        ("endpoint", s3_endpoint, "2001:db8::5", false),
        ("endpoint", s3_endpoint, "min io", false),
        ("endpoint", s3_endpoint, "", false),
    ];

    #[test]
    fn table() {
        for (kind, check, value, accepted) in TABLE {
            let result = check(value);
            assert_eq!(result.is_ok(), *accepted, "{kind} {value:?}: {result:?}");
            if let Err(e) = result {
                assert!(e.to_string().contains(&format!("{value:?}")), "{e}");
            }
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = s3_endpoint("https://minio.lab").unwrap_err().to_string();
        assert!(e.contains("without a scheme"), "{e}");
        let e = cron_schedule("0 */12 * *").unwrap_err().to_string();
        assert!(e.contains("4 fields; expected 5"), "{e}");
        let e = cron_schedule("61 * * * *").unwrap_err().to_string();
        assert!(e.contains("minute \"61\""), "{e}");
        let e = s3_bucket_name("ab").unwrap_err().to_string();
        assert!(e.contains("at least 3"), "{e}");
    }
}

//! The go-plugin launch contract: what Terraform puts in the environment and
//! the single line the plugin answers on stdout.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::error::PluginError;

/// Environment variable carrying Terraform's magic cookie.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";

/// The cookie value Terraform (and OpenTofu) set for every provider. It is
/// not a secret; it only tells "launched by Terraform" from "run by hand".
pub const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// go-plugin's own protocol version: always the first handshake field.
pub const CORE_PROTOCOL_VERSION: u32 = 1;

/// The Terraform plugin protocol this provider speaks (tfplugin6).
pub const PROTOCOL_VERSION: u32 = 6;

/// The go-plugin variables the transport reads, captured once so the server
/// can also be started with an explicit environment (tests, embedding).
#[derive(Debug, Clone, Default)]
pub struct LaunchEnv {
    /// `TF_PLUGIN_MAGIC_COOKIE`.
    pub magic_cookie: Option<String>,
    /// `PLUGIN_PROTOCOL_VERSIONS`: comma-separated versions the client accepts.
    pub protocol_versions: Option<String>,
    /// `PLUGIN_CLIENT_CERT`: PEM of Terraform's client certificate (AutoMTLS).
    pub client_cert_pem: Option<String>,
    /// `TF_DISABLE_PLUGIN_TLS` set to a non-empty value.
    pub disable_tls: bool,
    /// `PLUGIN_UNIX_SOCKET_DIR`: where to create the socket (default: temp dir).
    pub unix_socket_dir: Option<PathBuf>,
}

impl LaunchEnv {
    /// Reads the variables from this process's environment. Empty values
    /// count as unset, as they do for go-plugin.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        LaunchEnv {
            magic_cookie: var(MAGIC_COOKIE_KEY),
            protocol_versions: var("PLUGIN_PROTOCOL_VERSIONS"),
            client_cert_pem: var("PLUGIN_CLIENT_CERT"),
            disable_tls: var("TF_DISABLE_PLUGIN_TLS").is_some(),
            unix_socket_dir: var("PLUGIN_UNIX_SOCKET_DIR").map(PathBuf::from),
        }
    }

    /// Whether AutoMTLS applies: Terraform sent a client certificate and TLS
    /// was not switched off.
    pub fn wants_tls(&self) -> bool {
        !self.disable_tls && self.client_cert_pem.is_some()
    }
}

/// Checks that Terraform launched this process, by its magic cookie in the
/// environment. `main` calls this before anything else (unless `--debug`)
/// and, on error, prints the error (a how-to-use text) and exits with 1.
///
/// # Errors
/// [`PluginError::NotLaunchedByTerraform`] when the cookie is missing or wrong.
pub fn check_magic_cookie() -> Result<(), PluginError> {
    check_cookie_value(std::env::var(MAGIC_COOKIE_KEY).ok().as_deref())
}

/// The pure part of [`check_magic_cookie`].
pub(crate) fn check_cookie_value(value: Option<&str>) -> Result<(), PluginError> {
    match value {
        Some(v) if v == MAGIC_COOKIE_VALUE => Ok(()),
        _ => Err(PluginError::NotLaunchedByTerraform),
    }
}

/// Outcome of protocol negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The version announced in the handshake: always [`PROTOCOL_VERSION`].
    pub version: u32,
    /// What the client offered, in its order (invalid entries dropped).
    pub offered: Vec<u32>,
    /// Whether the client offered our version. If not, we still answer 6 —
    /// as go-plugin servers do — so the client reports the mismatch itself,
    /// with a message naming both sides' versions.
    pub compatible: bool,
}

/// Parses `PLUGIN_PROTOCOL_VERSIONS` ("5,6", "6,5", " 6 ", ...). Entries that
/// are not numbers are skipped: a bad entry must not hide a good one.
pub fn parse_protocol_versions(raw: &str) -> Vec<u32> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).filter_map(|s| s.parse::<u32>().ok()).collect()
}

/// Picks the protocol version to announce given `PLUGIN_PROTOCOL_VERSIONS`.
pub fn negotiate(raw: Option<&str>) -> Negotiated {
    let offered = raw.map(parse_protocol_versions).unwrap_or_default();
    // An old client that sets no list at all is treated as compatible: it
    // will validate our answer itself.
    let compatible = offered.is_empty() || offered.contains(&PROTOCOL_VERSION);
    Negotiated { version: PROTOCOL_VERSION, offered, compatible }
}

/// Formats the go-plugin handshake line (without newline):
/// `CORE|APP|NETWORK|ADDRESS|grpc|CERT`, where CERT is the server
/// certificate's DER in standard base64 *without padding* (go-plugin decodes
/// with `RawStdEncoding` and rejects `=`), or empty when serving plaintext.
pub fn handshake_line(version: u32, network: &str, address: &str, server_cert_der: Option<&[u8]>) -> String {
    let cert =
        server_cert_der.map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der)).unwrap_or_default();
    format!("{CORE_PROTOCOL_VERSION}|{version}|{network}|{address}|grpc|{cert}")
}

/// Formats the debug-mode line `TF_REATTACH_PROVIDERS='{...}'` that lets
/// Terraform attach to an already running provider instead of starting one.
/// The JSON is shell-quoted so the line can be pasted after `export `.
pub fn reattach_line(provider_address: &str, pid: u32, socket: &Path) -> String {
    let json_str = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let json = format!(
        "{{{addr}:{{\"Protocol\":\"grpc\",\"ProtocolVersion\":{PROTOCOL_VERSION},\"Pid\":{pid},\"Test\":true,\
         \"Addr\":{{\"Network\":\"unix\",\"String\":{path}}}}}}}",
        addr = json_str(provider_address),
        path = json_str(&socket.to_string_lossy()),
    );
    format!("TF_REATTACH_PROVIDERS='{}'", json.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_must_match_exactly() {
        assert!(check_cookie_value(Some(MAGIC_COOKIE_VALUE)).is_ok());
        assert!(check_cookie_value(None).is_err());
        assert!(check_cookie_value(Some("")).is_err());
        assert!(check_cookie_value(Some(&MAGIC_COOKIE_VALUE[1..])).is_err());
        let msg = check_cookie_value(None).unwrap_err().to_string();
        assert!(msg.contains("Terraform provider plugin"), "{msg}");
        assert!(msg.contains("--debug") && msg.contains("TF_REATTACH_PROVIDERS"), "{msg}");
        assert!(msg.contains("dev_overrides"), "{msg}");
    }

    #[test]
    fn protocol_versions_parse_in_any_order() {
        assert_eq!(parse_protocol_versions("5,6"), vec![5, 6]);
        assert_eq!(parse_protocol_versions("6,5"), vec![6, 5]);
        assert_eq!(parse_protocol_versions(" 6 , 5 "), vec![6, 5]);
        assert_eq!(parse_protocol_versions("x,6,,"), vec![6]);
        assert_eq!(parse_protocol_versions(""), Vec::<u32>::new());
    }

    #[test]
    fn negotiation_always_answers_6() {
        let n = negotiate(Some("6,5"));
        assert_eq!((n.version, n.compatible), (6, true));
        let n = negotiate(Some("5"));
        assert_eq!((n.version, n.compatible, n.offered), (6, false, vec![5]));
        let n = negotiate(Some("4,5,7"));
        assert!(!n.compatible);
        let n = negotiate(None);
        assert_eq!((n.version, n.compatible), (6, true));
    }

    #[test]
    fn handshake_line_fields_and_unpadded_cert() {
        // 1 and 2 byte inputs would need "==" / "=" padding in standard base64.
        for der in [&[0x30u8][..], &[0x30, 0x82][..], &[0x30, 0x82, 0x01][..]] {
            let line = handshake_line(6, "unix", "/tmp/x/plugin.sock", Some(der));
            let parts: Vec<&str> = line.split('|').collect();
            assert_eq!(parts.len(), 6, "{line}");
            assert_eq!(&parts[..5], &["1", "6", "unix", "/tmp/x/plugin.sock", "grpc"]);
            assert!(!parts[5].contains('='), "padding in {line}");
            let back = base64::engine::general_purpose::STANDARD_NO_PAD.decode(parts[5]).unwrap();
            assert_eq!(back, der);
        }
        assert_eq!(handshake_line(6, "unix", "/s", None), "1|6|unix|/s|grpc|");
        assert!(!handshake_line(6, "unix", "/s", None).ends_with('\n'));
    }

    #[test]
    fn reattach_line_is_valid_json_in_single_quotes() {
        let line = reattach_line("registry.terraform.io/kvm/kvm", 4242, Path::new("/tmp/d/plugin.sock"));
        let json = line.strip_prefix("TF_REATTACH_PROVIDERS='").and_then(|s| s.strip_suffix('\'')).expect("quoted");
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let p = &v["registry.terraform.io/kvm/kvm"];
        assert_eq!(p["Protocol"], "grpc");
        assert_eq!(p["ProtocolVersion"], 6);
        assert_eq!(p["Pid"], 4242);
        assert_eq!(p["Test"], true);
        assert_eq!(p["Addr"]["Network"], "unix");
        assert_eq!(p["Addr"]["String"], "/tmp/d/plugin.sock");
    }
}

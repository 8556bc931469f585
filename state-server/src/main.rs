//! `kvm-state-server`: the command line.
//!
//! ```text
//! kvm-state-server serve --config FILE     run the server
//! kvm-state-server check-config --config FILE
//! kvm-state-server reencrypt --config FILE  re-write stored states with the current key
//! kvm-state-server audit verify --config FILE [--copy FILE]
//! kvm-state-server audit reanchor --config FILE
//! kvm-state-server hash-password           read a password on stdin, print its argon2 hash
//! ```

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use kvm_state_server::config::Config;
use kvm_state_server::server::Server;
use kvm_state_server::{auth, log, maintenance};
use serde_json::json;

const USAGE: &str = "usage:
  kvm-state-server serve --config FILE         run the server
  kvm-state-server check-config --config FILE  check a configuration and its users file
  kvm-state-server reencrypt --config FILE     re-write stored states with the current key (key rotation)
  kvm-state-server audit verify --config FILE [--copy FILE]
                                               check the audit log's hash chain (and a copy shipped elsewhere)
  kvm-state-server audit reanchor --config FILE
                                               accept the chain breaks found, recording each in the audit log
  kvm-state-server hash-password               read a password from stdin, print its argon2 hash
  kvm-state-server --version";

fn config_arg(args: &[String]) -> Result<PathBuf, String> {
    match args {
        [flag, path] if flag == "--config" || flag == "-c" => Ok(PathBuf::from(path)),
        _ => Err(format!("expected --config FILE\n{USAGE}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => config_arg(&args[1..]).and_then(serve),
        Some("check-config") => config_arg(&args[1..]).and_then(|path| {
            Config::load(&path).map_err(|e| e.to_string())?;
            println!("{}: ok", path.display());
            Ok(())
        }),
        Some("reencrypt") => config_arg(&args[1..]).and_then(reencrypt),
        Some("audit") => audit_command(&args[1..]),
        Some("hash-password") if args.len() == 1 => hash_password(),
        Some("--version" | "-V") => {
            println!("kvm-state-server {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kvm-state-server: {message}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading stdin: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("empty password on stdin".into());
    }
    let hash = auth::hash_password(password).map_err(|e| format!("hashing: {e}"))?;
    println!("{hash}");
    Ok(())
}

fn reencrypt(path: PathBuf) -> Result<(), String> {
    let config = Config::load(&path).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let (changed, total) = runtime.block_on(maintenance::reencrypt(&config)).map_err(|e| e.to_string())?;
    println!("re-encrypted {changed} of {total} stored versions");
    Ok(())
}

fn audit_command(args: &[String]) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    match args {
        [verb, rest @ ..] if verb == "verify" => {
            let (config_args, copy) = match rest {
                [a, b, flag, copy] if flag == "--copy" => (vec![a.clone(), b.clone()], Some(PathBuf::from(copy))),
                _ => (rest.to_vec(), None),
            };
            let config = Config::load(&config_arg(&config_args)?).map_err(|e| e.to_string())?;
            let report = runtime.block_on(maintenance::audit_verify(&config, copy.as_deref()))?;
            for (b, anchor) in &report.accepted {
                println!("accepted by anchor row {anchor}: {b}");
            }
            for b in &report.breaks {
                println!("BROKEN: {b}");
            }
            println!(
                "{} rows: {} verified, {} under a retired key (followed, not checked), {} before chaining, {} refusals \
                 outside the chain, {} after accepted breaks; {} chains{}",
                report.rows,
                report.verified,
                report.unverifiable,
                report.legacy,
                report.outside,
                report.skipped,
                report.chains,
                if copy.is_some() {
                    format!("; {} rows compared with the copy", report.compared)
                } else {
                    String::new()
                }
            );
            if report.breaks.is_empty() {
                println!("audit chain: ok");
                Ok(())
            } else {
                Err(format!("audit chain broken in {} place(s)", report.breaks.len()))
            }
        }
        [verb, rest @ ..] if verb == "reanchor" => {
            let config = Config::load(&config_arg(rest)?).map_err(|e| e.to_string())?;
            let accepted = runtime.block_on(maintenance::audit_reanchor(&config))?;
            for b in &accepted {
                println!("re-anchored: {b}");
            }
            println!("{} break(s) accepted and recorded in the audit log", accepted.len());
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    }
}

fn serve(path: PathBuf) -> Result<(), String> {
    let config = Config::load(&path).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let server = Server::bind(&config).await.map_err(|e| e.to_string())?;
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        let scheme = if server.is_tls() { "https" } else { "http" };
        // Scripts and tests read this line to learn the port when the configuration says 0.
        println!("listening on {scheme}://{addr}");
        let _ = std::io::stdout().flush();
        log::info("listening", json!({ "addr": addr.to_string(), "scheme": scheme }));
        let reloader = server.reloader(&path);
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| format!("SIGHUP handler: {e}"))?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match reloader.reload().await {
                    Ok(users) => log::info("configuration reloaded (SIGHUP)", json!({ "users": users })),
                    Err(e) => log::error(
                        "reload failed (SIGHUP); the previous configuration stays in force",
                        json!({ "error": e }),
                    ),
                }
            }
        });
        server.run(shutdown_signal()).await;
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

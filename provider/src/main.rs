//! `terraform-provider-kvm`: started by Terraform, or by hand with `--debug`.

use std::process::ExitCode;
use std::time::Duration;

use terraform_provider_kvm::plugin::{self, ServeOptions};
use terraform_provider_kvm::registry::Registry;
use terraform_provider_kvm::server::ProviderService;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc commits its first arena eagerly: about 6 MB of resident memory in a process that
/// serves a few hundred requests and exits. Turning that off must happen before Rust's first
/// allocation, so it runs as an ELF constructor, before the Rust runtime starts.
#[used]
#[unsafe(link_section = ".init_array")]
static LAZY_ARENA_COMMIT: extern "C" fn() = lazy_arena_commit;

extern "C" fn lazy_arena_commit() {
    // `mi_option_arena_eager_commit`: index 4 of `mi_option_e` in both mimalloc v2 and v3.
    const MI_OPTION_ARENA_EAGER_COMMIT: std::os::raw::c_int = 4;
    unsafe extern "C" {
        fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
    }
    // SAFETY: mi_option_set only stores the value; it is safe to call before any allocation.
    unsafe { mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
}

/// The source address users put in `required_providers`.
const PROVIDER_ADDRESS: &str = "registry.terraform.io/kvm/kvm";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version" || a == "-version") {
        println!("terraform-provider-kvm {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let debug = args.iter().any(|a| a == "--debug" || a == "-debug");
    if !debug {
        if let Err(e) = plugin::check_magic_cookie() {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    }
    plugin::init_logging();
    // One thread serves everything: Terraform's own walk is the bottleneck, and every extra
    // worker costs a thread stack and an allocator heap (measured: peak RSS over a plan of
    // 1,000 resources 17 MB on one thread, 24 MB on two). Blocking work (RSA key generation,
    // libvirt calls, image uploads, SSH) goes to the blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let service = ProviderService::new(Registry::builtin());
    let opts = ServeOptions { debug, provider_address: PROVIDER_ADDRESS.into() };
    let result = runtime.block_on(plugin::serve(service, opts));
    // Terraform kills a provider that lingers 2 s after Shutdown: don't wait for stragglers.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

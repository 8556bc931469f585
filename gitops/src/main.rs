//! `kvm-gitops`: the command line of the GitOps bootstrap engine. Everything lives in
//! [`kvm_gitops::cli`]; this file only hands over the arguments and the exit code.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(kvm_gitops::cli::main_with_args(std::env::args_os()))
}

//! Writes a seed image to a file, for trying one by hand (e.g. attaching it to a VM):
//!
//! ```sh
//! cargo run -p cloud-init-seed --example write-seed -- user-data.yaml INSTANCE-ID HOSTNAME seed.img
//! ```

use std::process::ExitCode;

use cloud_init_seed::{meta_data, Seed};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [user_data, instance_id, hostname, out] = args.as_slice() else {
        eprintln!("usage: write-seed USER-DATA-FILE INSTANCE-ID HOSTNAME OUTPUT-IMAGE");
        return ExitCode::from(2);
    };
    let result = std::fs::read_to_string(user_data)
        .map_err(|e| format!("{user_data}: {e}"))
        .and_then(|user_data| {
            let seed = Seed { user_data, meta_data: meta_data(instance_id, hostname), network_config: None };
            seed.to_vfat().map_err(|e| e.to_string())
        })
        .and_then(|image| std::fs::write(out, image).map_err(|e| format!("{out}: {e}")));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("write-seed: {e}");
            ExitCode::FAILURE
        }
    }
}

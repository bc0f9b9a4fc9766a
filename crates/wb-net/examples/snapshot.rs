//! Prints the network snapshot of this process's namespace, or of the
//! namespace of the process whose PID is given, as JSON.
//!
//! `cargo run -p wb-net --example snapshot [PID]`

fn main() {
    let snap = match std::env::args().nth(1) {
        Some(pid) => wb_net::snapshot_of_pid(pid.parse().expect("PID must be a number")),
        None => wb_net::snapshot_current(),
    };
    match snap {
        Ok(s) => println!("{}", serde_json::to_string_pretty(&s).expect("serialize")),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

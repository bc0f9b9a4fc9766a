//! Paired timing for `scripts/bench`: run several commands back to back, in
//! a rotating order, for a number of rounds, and print the wall time of every
//! run. Each command is started the way `hyperfine -N` starts it (no shell,
//! output discarded), so the times compare with hyperfine's; because the
//! commands of one round run within milliseconds of each other, the ratio of
//! two of them in the same round is hardly affected by the load of a busy
//! machine, which drifts much more slowly.
//!
//! ```text
//! bench_pairs ROUNDS WARMUP NAME CMD [ARG...] ';' NAME CMD [ARG...] ';' ...
//! ```
//! prints `ROUND NAME MILLISECONDS` lines; a failing command stops it (exit 1).

use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_pairs ROUNDS WARMUP NAME CMD [ARG...] ';' NAME CMD [ARG...] ...";
    let (Some(rounds), Some(warmup)) = (args.first().and_then(|s| s.parse::<usize>().ok()), args.get(1).and_then(|s| s.parse::<usize>().ok())) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let cmds: Vec<&[String]> = args[2..].split(|a| a == ";").filter(|c| c.len() >= 2).collect();
    if cmds.is_empty() {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let run = |c: &[String]| -> f64 {
        let t = Instant::now();
        let st = Command::new(&c[1]).args(&c[2..]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match st {
            Ok(s) if s.success() => ms,
            other => {
                eprintln!("bench_pairs: {} failed: {other:?}", c[1..].join(" "));
                std::process::exit(1);
            }
        }
    };
    for _ in 0..warmup {
        for c in &cmds {
            run(c);
        }
    }
    for r in 0..rounds {
        for k in 0..cmds.len() {
            let c = cmds[(k + r) % cmds.len()];
            println!("{} {} {:.3}", r + 1, c[0], run(c));
        }
    }
}

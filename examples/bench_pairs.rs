//! Paired timing for `scripts/bench`: run several commands back to back, in
//! a new random order every round, for a number of rounds, and print the
//! wall time of every run. Each command is started the way `hyperfine -N`
//! starts it (no shell, output discarded), so the times compare with
//! hyperfine's; because the commands of one round run within milliseconds of
//! each other, the ratio of two of them in the same round is hardly affected
//! by the load of a busy machine, which drifts much more slowly.
//!
//! Why a random order: the kernel tears a network namespace down *after* its
//! last process exited, asynchronously, and a command started during that
//! teardown can wait for it. In a fixed order one command would always pay
//! for the same predecessor's teardown (measured here: crun right after
//! `workbench run` took 14 ms instead of 8). `SETTLE_MS` adds an untimed
//! pause before every run instead (0: none).
//!
//! ```text
//! bench_pairs ROUNDS WARMUP SETTLE_MS NAME CMD [ARG...] ';' NAME CMD [ARG...] ';' ...
//! ```
//! prints `ROUND NAME MILLISECONDS` lines; a failing command stops it (exit 1).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_pairs ROUNDS WARMUP SETTLE_MS NAME CMD [ARG...] ';' NAME CMD [ARG...] ...";
    let num = |i: usize| args.get(i).and_then(|s| s.parse::<u64>().ok());
    let (Some(rounds), Some(warmup), Some(settle)) = (num(0), num(1), num(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let cmds: Vec<&[String]> = args[3..].split(|a| a == ";").filter(|c| c.len() >= 2).collect();
    if cmds.is_empty() {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let settle = Duration::from_millis(settle);
    let run = |c: &[String]| -> f64 {
        std::thread::sleep(settle);
        let t = Instant::now();
        let st = Command::new(&c[1])
            .args(&c[2..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match st {
            Ok(s) if s.success() => ms,
            other => {
                eprintln!("bench_pairs: {} failed: {other:?}", c[1..].join(" "));
                std::process::exit(1);
            }
        }
    };
    // xorshift64, seeded from the clock: a fresh order every round.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..warmup {
        for c in &cmds {
            run(c);
        }
    }
    let mut order: Vec<usize> = (0..cmds.len()).collect();
    for r in 0..rounds {
        for i in (1..order.len()).rev() {
            order.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        for &k in &order {
            println!("{} {} {:.3}", r + 1, cmds[k][0], run(cmds[k]));
        }
    }
}

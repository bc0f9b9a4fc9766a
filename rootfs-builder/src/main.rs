//! `rootfs-builder`: build a busybox root filesystem, show what a binary
//! needs at run time, and pack a tree as a tarball.
//!
//! ```text
//! rootfs-builder build --busybox /bin/busybox [--with-libs] [--hostname NAME] DEST
//! rootfs-builder needs BINARY
//! rootfs-builder pack DIR [-o OUT.tar.gz | -o OUT.tar | -o -]
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use rootfs_builder::build::{build_rootfs, RootfsSpec};
use rootfs_builder::libs::{resolve, LibSearch};
use rootfs_builder::pack::{pack_tar, pack_tar_gz};

#[derive(Parser)]
#[command(name = "rootfs-builder", version, about = "Build and pack a busybox root filesystem")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a rootfs in DEST (which must not exist or be empty).
    Build {
        /// The busybox binary to install as /bin/busybox.
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
        /// Also copy the dynamic loader and shared libraries busybox needs.
        #[arg(long)]
        with_libs: bool,
        /// Hostname written to /etc/hostname and /etc/hosts.
        #[arg(long, default_value = "workbench")]
        hostname: String,
        dest: PathBuf,
    },
    /// Print the interpreter and libraries a binary needs (like ldd, without running it).
    Needs { binary: PathBuf },
    /// Pack DIR as a tar with numeric owners (gzip unless OUT ends with .tar).
    Pack {
        dir: PathBuf,
        /// Output file, or - for stdout [default: DIR.tar.gz]
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rootfs-builder: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Build {
            busybox,
            with_libs,
            hostname,
            dest,
        } => {
            let spec = RootfsSpec {
                busybox,
                copy_libraries: with_libs,
                hostname,
            };
            let report = build_rootfs(&spec, &dest)?;
            println!("built {}", report.root.display());
            println!(
                "busybox: {} ({} applets)",
                if report.busybox_dynamic {
                    "dynamically linked"
                } else {
                    "statically linked"
                },
                report.applets.len()
            );
            if report.busybox_dynamic && !with_libs {
                println!("note: no libraries copied; exec inside this root will fail with ENOENT (use --with-libs)");
            }
            for lib in &report.libraries {
                println!(
                    "copied {} -> {}",
                    lib.host_source.display(),
                    lib.path_in_rootfs.display()
                );
            }
        }
        Cmd::Needs { binary } => {
            let libs = resolve(&binary, &LibSearch::host())?;
            let mut out = io::stdout().lock();
            if libs.is_empty() {
                writeln!(out, "\tstatically linked")?;
            }
            // Like ldd: libraries first, the interpreter last.
            let (interp, rest): (Vec<_>, Vec<_>) = libs.iter().partition(|l| l.name.starts_with('/'));
            for lib in rest {
                writeln!(out, "\t{} => {}", lib.name, lib.path_in_rootfs.display())?;
            }
            for lib in interp {
                writeln!(out, "\t{} (interpreter)", lib.name)?;
            }
        }
        Cmd::Pack { dir, output } => {
            let output = output.unwrap_or_else(|| default_output(&dir));
            let plain = output.extension().is_some_and(|e| e == "tar");
            if output == Path::new("-") {
                let stdout = io::stdout().lock();
                let mut w = io::BufWriter::new(stdout);
                if plain {
                    w = pack_tar(&dir, w)?;
                } else {
                    w = pack_tar_gz(&dir, w)?;
                }
                w.flush().context("write stdout")?;
            } else {
                let file = fs::File::create(&output).with_context(|| format!("create {}", output.display()))?;
                let w = io::BufWriter::new(file);
                let w = if plain {
                    pack_tar(&dir, w)?
                } else {
                    pack_tar_gz(&dir, w)?
                };
                w.into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("write {}", output.display()))?;
                eprintln!("wrote {}", output.display());
            }
        }
    }
    Ok(())
}

/// `rootfs/` -> `rootfs.tar.gz` in the current directory.
fn default_output(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rootfs".to_string());
    PathBuf::from(format!("{name}.tar.gz"))
}

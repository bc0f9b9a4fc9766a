//! `workbench image …` and `workbench commit`: a local image store like the
//! one behind `docker images`, and the commands the post runs by hand
//! (`docker import`, `save`, `load`, `commit`). The store itself (blobs named
//! by their sha256, tags, locking, verification) is `wb_image::store`; this
//! module is the command line side: checking archives before they are
//! stored and printing what happened.

pub mod args;
pub mod cmds;
pub mod commit;
pub mod common;

use std::process::ExitCode;

use crate::error::UsageError;
use crate::observe::render::Style;
use args::{ImageArgs, ImageCommand};

/// Run one `workbench image` subcommand.
pub fn main(a: &ImageArgs, style: Style) -> anyhow::Result<ExitCode> {
    match &a.command {
        ImageCommand::Import(x) => cmds::import(x),
        ImageCommand::Ls(x) => cmds::ls(x.json, style),
        ImageCommand::Save(x) => cmds::save(x),
        ImageCommand::Load(x) => cmds::load(x),
        ImageCommand::Inspect(x) => cmds::inspect(x),
        ImageCommand::Layers(x) => cmds::layers(x, style),
        ImageCommand::Rm(x) => cmds::rm(x),
    }
}

/// The image `workbench run NAME:TAG` runs: read from the store under a
/// shared lock, every blob verified, the layers hard-linked aside for the run.
pub fn load_for_run(reference: &str, verbose: bool) -> anyhow::Result<wb_image::LoadedImage> {
    let r = common::reference(reference)?;
    let root = wb_image::store::default_root();
    if verbose {
        eprintln!(
            "[host] {reference}: no such file or directory, so a stored image: {r} from {} (flock shared; verify every blob's sha256)",
            root.display()
        );
    }
    let Some(store) = common::store_ro() else {
        return Err(UsageError(format!(
            "{reference}: no such rootfs or image file, and the image store {} is empty: see workbench image import/load",
            root.display()
        ))
        .into());
    };
    let _l = store.lock_shared()?;
    store.load_for_run(&r).map_err(|e| match e {
        wb_image::Error::NotFound { available, .. } => UsageError(format!(
            "{reference}: no such rootfs or image file, and no image {r} in the store (stored: {}): see workbench image ls",
            if available.is_empty() { "none" } else { &available }
        ))
        .into(),
        e => common::store_error(e),
    })
}

//! `workbench commit CONTAINER NAME:TAG`: a kept container's overlay upper
//! dir becomes a layer. The upper dir holds exactly what the container
//! changed: new and modified files, whiteouts (0/0 character devices) for
//! deletions, `trusted.overlay.opaque` on directories it replaced. In the
//! layer tar a whiteout becomes an empty `.wh.NAME` and an opaque directory
//! a `.wh..wh..opq` marker; the layer goes on top of the container's image
//! (or of its rootfs directory, tarred as a base layer).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use wb_image::store::StoredLayer;

use super::args::CommitArgs;
use super::common::{reference, store_error, store_rw};
use crate::error::UsageError;

/// `workbench commit CONTAINER NAME:TAG`.
pub fn main(a: &CommitArgs) -> anyhow::Result<ExitCode> {
    let r = reference(&a.reference)?;
    let rec = crate::container::load(&a.container)?;
    let upper = rec.upper();
    if rec.is_running() {
        eprintln!(
            "workbench commit: container {} is running: its changes are taken as they are now (docker pauses it first)",
            rec.name
        );
    }
    if !upper.is_dir() {
        return Err(UsageError(format!(
            "container {}: no upper dir {} (it was not run with an overlay; run it with --keep)",
            rec.name,
            upper.display()
        ))
        .into());
    }
    let store = store_rw()?;
    let scratch = store.scratch("commit-")?;
    // The base: the image's layers, or each lower dir tarred (bottom first).
    let (base_layers, mut cfg, base_dirs) = match &rec.image {
        Some(image) => {
            let ir = reference(image)?;
            let _l = store.lock_shared()?;
            let img = store.get(&ir, true).map_err(store_error)?;
            (img.layers.clone(), img.image_config(), vec![])
        }
        None => {
            let mut dirs: Vec<PathBuf> = rec.lowers.iter().rev().cloned().collect();
            dirs.retain(|d| d != Path::new(""));
            if dirs.is_empty() {
                return Err(UsageError(format!(
                    "container {}: its record names no image and no lower dirs",
                    rec.name
                ))
                .into());
            }
            if let Some(d) = dirs.iter().find(|d| !d.is_dir()) {
                return Err(UsageError(format!(
                    "container {}: its lower dir {} is gone; commit needs the base it ran on",
                    rec.name,
                    d.display()
                ))
                .into());
            }
            (
                vec![],
                wb_image::ImageConfig {
                    cmd: rec.argv.clone(),
                    ..Default::default()
                },
                dirs,
            )
        }
    };
    cfg.name.clone_from(&r.name);
    cfg.tag.clone_from(&r.tag);
    // Tar everything first (the slow part), then take the lock to store it.
    let mut tars = Vec::new();
    for (i, d) in base_dirs.iter().chain(std::iter::once(&upper)).enumerate() {
        let t = scratch.path().join(format!("{i:02}.tar"));
        wb_image::layer::upper_to_layer_file(d, &t).map_err(|e| UsageError(format!("{}: {e}", d.display())))?;
        tars.push(t);
    }
    let _l = store.lock_exclusive()?;
    let mut layers: Vec<StoredLayer> = base_layers;
    for t in &tars {
        layers.push(store.put_layer_file(t)?);
    }
    let m = store.commit_image(&r, &layers, &cfg, None)?;
    let top = layers.last().expect("the upper layer");
    if a.json {
        crate::jsonl::print(&json!({
            "type": "image_stored", "action": "committed", "container": rec.name, "reference": r.to_string(),
            "manifest": m, "layers": layers.iter().map(|l| json!({"digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
        }));
    } else {
        println!("committed container {} as {r} (manifest {m})", rec.name);
        println!(
            "  {} layers; the container's changes: {} ({} bytes)",
            layers.len(),
            top.digest,
            top.size
        );
    }
    Ok(ExitCode::SUCCESS)
}

//! Save a directory tree as a one-layer OCI image, the way workbench's image
//! code does (tar the tree as a layer, gzip it into a content-addressed blob,
//! write config, manifest and index). `scripts/bench` times this against
//! `tar czf` of the same tree.
//!
//! ```text
//! cargo run --release --example image_save -- TREE OUT_DIR [TAG]
//! ```

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (tree, out) = match args.as_slice() {
        [t, o] | [t, o, _] => (PathBuf::from(t), PathBuf::from(o)),
        _ => anyhow::bail!("usage: image_save TREE OUT_DIR [TAG]"),
    };
    let tag = args.get(2).cloned().unwrap_or_else(|| "latest".into());
    std::fs::create_dir_all(&out)?;
    let layer = out.join("layer.tar");
    wb_image::layer::upper_to_layer_file(&tree, &layer)?;
    let cfg = wb_image::ImageConfig {
        name: "bench".into(),
        tag,
        cmd: vec!["/bin/sh".into()],
        env: vec![],
    };
    let saved = wb_image::save_oci(std::slice::from_ref(&layer), &cfg, &out.join("oci"))?;
    std::fs::remove_file(&layer)?;
    println!("{}", saved.manifest_digest);
    Ok(())
}

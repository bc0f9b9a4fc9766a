//! The container's root filesystem, prepared on the host: a rootfs directory
//! as it is, or an image (OCI layout or docker-save archive) read, verified
//! against its digests and unpacked layer by layer for an overlay mount.

use std::path::Path;

use anyhow::Context;

use super::args::RunSpec;
use super::plan;
use super::spec::Source;
use super::verbose::show;
use crate::error::UsageError;

/// Where the rootfs comes from, once images are unpacked.
pub(super) struct Root {
    pub(super) mode: plan::RootMode,
    pub(super) argv: Vec<String>,
    pub(super) image_env: Vec<String>,
    pub(super) sysfs: bool,
}

pub(super) fn mkdir(p: &Path) -> anyhow::Result<()> {
    std::fs::create_dir(p).with_context(|| format!("mkdir {}", p.display()))
}

/// An image that is not there, or the wrong tag, is bad input (exit 2).
fn image_error(e: wb_image::Error) -> anyhow::Error {
    match e {
        e @ wb_image::Error::NotFound { .. } => {
            UsageError(format!("{e}: give one of the available tags with --tag or IMAGE:TAG")).into()
        }
        e => e.into(),
    }
}

/// Read an image's index and verify its digests. OCI layouts and extracted
/// docker-save directories are read in place, before anything is created; a
/// docker-save tar file is extracted into the run's working directory first.
pub(super) fn load_image(
    spec: &RunSpec,
    workdir: Option<&Path>,
    verbose: bool,
) -> anyhow::Result<Option<wb_image::LoadedImage>> {
    match &spec.source {
        Source::Rootfs(_) => Ok(None),
        Source::Store { reference } => crate::image::load_for_run(reference, verbose).map(Some),
        Source::Oci { dir, reference } => {
            show(
                verbose,
                "host",
                &format!(
                    "read {}/index.json, manifest and config of {reference:?}; verify every blob's sha256",
                    dir.display()
                ),
                "",
            );
            Ok(Some(wb_image::load_oci(dir, reference).map_err(image_error)?))
        }
        Source::Docker { path, reference } if path.is_dir() => Ok(Some(
            wb_image::load_docker_archive(path, reference).map_err(image_error)?,
        )),
        Source::Docker { path, reference } => {
            let Some(workdir) = workdir else { return Ok(None) };
            let dest = workdir.join("archive");
            mkdir(&dest)?;
            show(
                verbose,
                "host",
                &format!("tar -xf {} -C {}", path.display(), dest.display()),
                "",
            );
            let mut a = tar::Archive::new(wb_image::image::open_layer_file(path)?);
            a.unpack(&dest).with_context(|| format!("extract {}", path.display()))?;
            Ok(Some(
                wb_image::load_docker_archive(&dest, reference).map_err(image_error)?,
            ))
        }
    }
}

/// The container's root: a rootfs directory as it is, or an image's layers
/// unpacked into the run's working directory.
pub(super) fn prepare_root(
    spec: &RunSpec,
    image: Option<wb_image::LoadedImage>,
    workdir: &Path,
    verbose: bool,
) -> anyhow::Result<Root> {
    let scratch = super::keep::scratch(workdir);
    if let Source::Rootfs(rootfs) = &spec.source {
        let mode = if spec.overlay {
            super::keep::make_scratch(&scratch)?;
            plan::RootMode::Overlay {
                lowers: vec![rootfs.clone()],
                scratch,
            }
        } else {
            plan::RootMode::ReadOnlyBind {
                rootfs: rootfs.clone(),
                has_tmp: rootfs.join("tmp").is_dir(),
            }
        };
        return Ok(Root {
            mode,
            argv: spec.argv.clone(),
            image_env: vec![],
            sysfs: rootfs.join("sys").is_dir(),
        });
    }
    let image = match image {
        Some(i) => i,
        None => load_image(spec, Some(workdir), verbose)?.expect("an image source loads an image"),
    };
    let argv = if spec.argv.is_empty() {
        image.config.cmd.clone()
    } else {
        spec.argv.clone()
    };
    if argv.is_empty() {
        return Err(UsageError(format!(
            "no command given and {} has no Cmd: add CMD after the image",
            spec.source.describe()
        ))
        .into());
    }
    let layers = workdir.join("layers");
    mkdir(&layers)?;
    show(
        verbose,
        "host",
        &format!(
            "tar -xf LAYER -C {}/NN-DIFFID  # each of {} layers; whiteouts become 0/0 devices",
            layers.display(),
            image.layers.len()
        ),
        "",
    );
    let lowers = image.unpack_for_overlay(&layers)?;
    super::keep::make_scratch(&scratch)?;
    Ok(Root {
        mode: plan::RootMode::Overlay { lowers, scratch },
        argv,
        image_env: image.config.env.clone(),
        sysfs: true,
    })
}

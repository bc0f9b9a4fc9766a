//! The command line of `workbench image …` and `workbench commit` (clap only).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

impl ImageArgs {
    /// Whether the subcommand asked for JSON lines (its refusals are JSON too).
    pub fn json(&self) -> bool {
        match &self.command {
            ImageCommand::Import(a) => a.json,
            ImageCommand::Ls(a) => a.json,
            ImageCommand::Load(a) => a.json,
            ImageCommand::Layers(a) => a.json,
            ImageCommand::Rm(a) => a.json,
            ImageCommand::Save(_) | ImageCommand::Inspect(_) => false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Make a one-layer image of a plain filesystem tar (like `docker import`).
    Import(ImportArgs),
    /// List the stored images.
    Ls(JsonOnly),
    /// Write an image as a docker-save archive (or, with --format oci, an OCI layout tar).
    Save(SaveArgs),
    /// Store the image of a docker-save archive or an OCI layout (tar or directory).
    Load(LoadArgs),
    /// Print an image's config JSON.
    Inspect(RefArgs),
    /// Show each layer of an image: digest, size, files, whiteouts and opaque dirs.
    Layers(RefJson),
    /// Untag an image and delete the blobs nothing else uses.
    Rm(RefJson),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A tar of a root filesystem (plain or gzip), e.g. made with `tar --numeric-owner -cf`.
    pub rootfs: PathBuf,
    /// The new image's NAME:TAG.
    pub reference: String,
    /// Print the result as a JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonOnly {
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SaveFormat {
    /// `docker save`'s layout: `<id>/{VERSION,json,layer.tar}`, `manifest.json`, `repositories`.
    Docker,
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`) in a tar.
    Oci,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The image's NAME:TAG.
    pub reference: String,
    /// The tar file to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// The archive layout.
    #[arg(long, value_enum, default_value_t = SaveFormat::Docker)]
    pub format: SaveFormat,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// A docker-save archive or an OCI layout: a tar file (plain or gzip) or a directory.
    pub file: PathBuf,
    /// Store it under this NAME:TAG (needed when the archive names no repository).
    pub reference: Option<String>,
    /// Print the result as a JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RefArgs {
    /// The image's NAME:TAG.
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct RefJson {
    /// The image's NAME:TAG.
    pub reference: String,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// A container kept by `workbench run --name NAME --keep` (see `workbench ps -a`).
    pub container: String,
    /// The new image's NAME:TAG.
    pub reference: String,
    /// Print the result as a JSON line.
    #[arg(long)]
    pub json: bool,
}

//! Container images on disk: a stack of layer tars plus a JSON config.
//!
//! Two layouts are common. `docker save` writes one directory per layer
//! (`<id>/layer.tar`, `<id>/json`, `<id>/VERSION`) plus `repositories` and
//! `manifest.json` naming the layers in order. The OCI image layout stores
//! everything as content-addressed blobs (`blobs/sha256/<digest>`): an
//! `index.json` points at a manifest by digest, the manifest points at the
//! config and the gzip-compressed layers, and the config lists each layer's
//! `diff_id`, the sha256 of the *uncompressed* tar, so a runtime can verify
//! what it unpacked. Applying the layers base-first gives the image's root
//! filesystem.
//!
//! This module gathers the image API in one place: [`crate::digest`],
//! [`crate::model`], [`crate::oci`] and [`crate::docker`] hold the parts.

pub use crate::digest::{diff_id, sha256_digest, sha256_file};
pub use crate::docker::{load_docker_archive, save_docker_archive, save_docker_dir, DockerSaved};
pub use crate::layer::open_layer_file;
pub use crate::model::{host_architecture, ImageConfig, LoadedImage, EPOCH};
pub use crate::oci::{
    load_oci, save_oci, OciSaved, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX,
    MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_MANIFEST,
};

//! `wb-image`: overlayfs and container image layers for workbench lessons.
//!
//! - [`overlay`]: build and mount an overlay (lower, upper, work, merged),
//!   inspect whiteouts and opaque directories, draw a directory as a tree.
//! - [`layer`]: turn an overlay upper dir into a layer tar (whiteouts become
//!   `.wh.` files) and apply layer tars back, either as overlay lower dirs or
//!   flattened into one root filesystem.
//! - [`image`]: save and load a stack of layers as a `docker save` archive
//!   ([`docker`]) or an OCI image layout that skopeo and umoci understand
//!   ([`oci`]); [`model`] is the image both load into, [`digest`] the
//!   sha256 digests that name blobs and layers.

pub mod digest;
pub mod docker;
pub mod error;
pub mod image;
pub mod layer;
pub mod model;
pub mod oci;
pub mod overlay;
pub mod store;
mod sys;

pub use error::{Error, Result};
pub use image::{
    load_docker_archive, load_oci, save_docker_archive, save_docker_dir, save_oci, DockerSaved, ImageConfig,
    LoadedImage, OciSaved,
};
pub use layer::{apply_layer, upper_to_layer, ApplyMode, ApplyReport};
pub use overlay::{classic_command, is_opaque, is_whiteout, render_tree, tree, OverlaySpec, TreeEntry};

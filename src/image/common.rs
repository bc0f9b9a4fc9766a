//! What the image commands share: the store they open, references parsed
//! into one-line refusals, and the checks every tar gets before anything of
//! it is stored (no absolute paths, no `..`, no link leaving the archive).

use std::path::{Component, Path, PathBuf};

use wb_image::store::{Reference, Store};

use crate::error::UsageError;

/// `NAME:TAG` or a one-line refusal (exit 2).
pub fn reference(s: &str) -> Result<Reference, UsageError> {
    Reference::parse(s).map_err(UsageError)
}

/// The store, created if needed (commands that write).
pub fn store_rw() -> anyhow::Result<Store> {
    store_at(&wb_image::store::default_root())
}

/// The store at `root`, created if needed.
pub fn store_at(root: &Path) -> anyhow::Result<Store> {
    Store::open(root).map_err(|e| UsageError(format!("image store {}: {e}", root.display())).into())
}

/// The store if it exists (commands that only read never create it).
pub fn store_ro() -> Option<Store> {
    Store::existing(&wb_image::store::default_root())
}

/// A store error as what to do: a missing tag or a damaged blob is a refusal (exit 2).
pub fn store_error(e: wb_image::Error) -> anyhow::Error {
    match e {
        wb_image::Error::NotFound {
            reference, available, ..
        } => {
            let have = if available.is_empty() {
                "the store is empty".to_string()
            } else {
                format!("stored: {available}")
            };
            UsageError(format!(
                "no image {reference} in the store ({have}): see workbench image ls, or make one with workbench image import/load"
            ))
            .into()
        }
        e @ wb_image::Error::DigestMismatch { .. } => UsageError(format!(
            "{e}: the store is damaged; remove the image (workbench image rm) and load it again"
        ))
        .into(),
        e => e.into(),
    }
}

/// A path from a tar entry (or a hard link's target) must be relative and
/// must not climb with `..`.
pub fn check_entry_path(p: &str) -> Result<(), String> {
    if p.starts_with('/') {
        return Err(format!("{p:?}: absolute path"));
    }
    if Path::new(p).components().any(|c| c == Component::ParentDir) {
        return Err(format!("{p:?}: '..' in the path"));
    }
    Ok(())
}

/// Where a symlink at `entry` pointing at `target` leads, relative to the
/// archive root; None when it leaves the archive (absolute or too many `..`).
pub fn symlink_inside(entry: &str, target: &str) -> Option<PathBuf> {
    if target.starts_with('/') {
        return None;
    }
    let mut stack: Vec<String> = Path::new(entry)
        .parent()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    for c in Path::new(target).components() {
        match c {
            Component::Normal(s) => stack.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                stack.pop()?;
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(stack.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        assert!(check_entry_path("./bin/sh").is_ok());
        assert!(check_entry_path("/etc/passwd").is_err());
        assert!(check_entry_path("a/../../x").is_err());
    }

    #[test]
    fn symlinks_stay_inside() {
        assert_eq!(
            symlink_inside("abc/layer.tar", "../def/layer.tar"),
            Some(PathBuf::from("def/layer.tar"))
        );
        assert_eq!(symlink_inside("x", "../etc"), None);
        assert_eq!(symlink_inside("a/b", "../../etc"), None);
        assert_eq!(symlink_inside("a", "/etc/passwd"), None);
    }
}

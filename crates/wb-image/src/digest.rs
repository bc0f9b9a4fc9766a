//! Content digests: `sha256:<hex>` of blobs, files and layer tar streams.
//!
//! Images are content-addressed: a blob's name is the sha256 of its bytes, and
//! a layer's `diff_id` is the sha256 of its *uncompressed* tar, so the same
//! layer has one diff_id whether stored plain or gzipped. Checking digests on
//! load is what makes a tampered or truncated image fail loudly.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::layer::open_layer_file;

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` of a byte string.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

/// A writer that hashes (and counts) what passes through it.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// `sha256:<hex>` and length of everything written (call after flush).
    pub(crate) fn finish(self) -> (String, u64) {
        (format!("sha256:{}", hex(&self.hasher.finalize())), self.len)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 digest and length of everything `r` yields.
fn hash_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut w = HashWriter::new(io::sink());
    io::copy(&mut r, &mut w)?;
    Ok(w.finish())
}

/// `sha256:<hex>` of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    let f = File::open(path).ctx("open", path)?;
    Ok(hash_reader(BufReader::new(f)).ctx("read", path)?.0)
}

/// sha256 of the uncompressed tar stream of a layer file.
pub fn diff_id(path: &Path) -> Result<String> {
    Ok(hash_reader(open_layer_file(path)?).ctx("read", path)?.0)
}

/// `Ok` when `actual` is the `expected` digest, else a
/// [`Error::DigestMismatch`] naming the file.
pub(crate) fn expect_digest(path: &Path, expected: &str, actual: String) -> Result<()> {
    if actual == expected {
        return Ok(());
    }
    Err(Error::DigestMismatch {
        path: path.to_path_buf(),
        expected: expected.to_string(),
        actual,
    })
}

/// The hex part of a `sha256:<64 lowercase hex>` digest; anything else
/// (other algorithms, `../` tricks) is refused, naming `ctx`.
pub(crate) fn check_digest(d: &str, ctx: &Path) -> Result<String> {
    let hex = d.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Err(Error::invalid_image(
            ctx,
            format!("unsupported or malformed digest {d:?}"),
        ));
    }
    Ok(hex.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_for_shape() {
        let d = Path::new("/x");
        assert!(check_digest("sha256:../../etc/passwd", d).is_err());
        assert!(check_digest(&format!("sha256:{}", "A".repeat(64)), d).is_err());
        assert!(check_digest(&format!("sha512:{}", "a".repeat(64)), d).is_err());
        assert_eq!(
            check_digest(&format!("sha256:{}", "a".repeat(64)), d).unwrap(),
            "a".repeat(64)
        );
    }

    #[test]
    fn sha256_of_empty_string() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

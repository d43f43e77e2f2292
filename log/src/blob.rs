//! Oversized records: a body larger than an I/O buffer is written to its own file
//! `blobs/<id as 16 hex digits>`, fsynced, and the directory fsynced, before a small
//! BlobPointer record naming it is completed in the log. So a valid pointer always names a
//! durable blob, and a crash before the pointer leaves at most an orphan file.

use std::path::{Path, PathBuf};

use crate::config::MAX_RECORD_BYTES;
use crate::error::{Error, Result};
use crate::format::decode::check_blob_file;
use crate::format::encode::encode_blob_file;
use crate::format::{BlobPointer, BLOB_HEADER_LEN};
use crate::io::Storage;

pub(crate) const BLOB_DIR: &str = "blobs";

pub(crate) fn blob_dir(log_dir: &Path) -> PathBuf {
    log_dir.join(BLOB_DIR)
}

pub(crate) fn blob_path(log_dir: &Path, id: u64) -> PathBuf {
    blob_dir(log_dir).join(format!("{id:016x}"))
}

/// How [`write_blob`] failed: the policy differs (see `Reservation::complete`).
#[derive(Debug)]
pub(crate) enum BlobError {
    /// Creating or writing the file failed. With a full disk nothing was acknowledged: the
    /// caller removes the partial file and reports the error, and may retry.
    Write(Error),
    /// A sync failed: never retried (the kernel may have dropped the dirty pages), so the log
    /// is poisoned.
    Sync(Error),
}

/// Writes blob `id` durably (file data, then the directory entry). Blocks on two fsyncs; the
/// caller holds no reservation.
pub(crate) fn write_blob(
    storage: &dyn Storage,
    log_dir: &Path,
    id: u64,
    body: &[u8],
) -> std::result::Result<BlobPointer, BlobError> {
    let path = blob_path(log_dir, id);
    let (bytes, crc) = encode_blob_file(id, body);
    let f = storage
        .open_file(&path, true)
        .map_err(|e| BlobError::Write(Error::io("create blob", &path, e)))?;
    f.write_all_at(&bytes, 0)
        .map_err(|e| BlobError::Write(Error::io("write blob", &path, e)))?;
    f.sync_all()
        .map_err(|e| BlobError::Sync(Error::io("fsync blob", &path, e)))?;
    let dir = blob_dir(log_dir);
    storage
        .sync_dir(&dir)
        .map_err(|e| BlobError::Sync(Error::io("fsync blob directory", &dir, e)))?;
    Ok(BlobPointer {
        id,
        len: body.len() as u64,
        crc,
    })
}

/// Reads and checks the blob a pointer names. The length is validated against the pointer and
/// [`MAX_RECORD_BYTES`] before it sizes the allocation.
pub(crate) fn read_blob(storage: &dyn Storage, log_dir: &Path, p: &BlobPointer) -> Result<Vec<u8>> {
    let path = blob_path(log_dir, p.id);
    if p.len > MAX_RECORD_BYTES {
        return Err(Error::corruption(
            format!("blob length {} exceeds the maximum", p.len),
            &path,
            0,
        ));
    }
    let f = storage
        .open_file(&path, false)
        .map_err(|e| Error::io("open blob", &path, e))?;
    let len = f.len().map_err(|e| Error::io("stat blob", &path, e))?;
    let want = BLOB_HEADER_LEN as u64 + p.len;
    if len != want {
        return Err(Error::corruption(
            format!("blob is {len} bytes, its pointer says {want}"),
            &path,
            0,
        ));
    }
    let mut bytes = vec![0u8; want as usize];
    f.read_exact_at(&mut bytes, 0)
        .map_err(|e| Error::io("read blob", &path, e))?;
    let range = check_blob_file(&bytes, p).map_err(|e| Error::corruption(e.0, &path, 0))?;
    bytes.drain(..range.start);
    Ok(bytes)
}

/// The largest blob id present (0 if none), so new ids never collide with orphans.
pub(crate) fn max_blob_id(storage: &dyn Storage, log_dir: &Path) -> Result<u64> {
    let dir = blob_dir(log_dir);
    let entries = storage
        .read_dir(&dir)
        .map_err(|e| Error::io("list blobs", &dir, e))?;
    Ok(entries
        .iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()
                .and_then(|n| u64::from_str_radix(n, 16).ok())
        })
        .max()
        .unwrap_or(0))
}

//! [`FileStorage`]: the real file system behind the I/O seam.
//!
//! Model: every call maps to exactly one system call (or a short fixed sequence), so an
//! `strace -f -y` of a workload reads like the [`Op`](super::Op) trace the simulator records:
//! - `read_at`/`write_at` are `pread(2)`/`pwrite(2)` ([`FileExt`]); a handle has no cursor, so
//!   one `Arc<FileHandle>` is shared by any number of threads without a lock.
//! - `sync_data` is `fdatasync(2)` ([`File::sync_data`]) and `sync_all` is `fsync(2)`
//!   ([`File::sync_all`]). `sync_file_range(2)` is deliberately never used: it does not flush the
//!   device cache nor the metadata needed to find the data, so it is not a durability claim.
//! - `sync_dir` opens the directory read-only and `fsync`s it, which makes creations, renames and
//!   removals of its entries durable.
//! - Files are created with mode `0o600` and directories with `0o700` (owner only: a database
//!   holds user data), subject to the process umask.
//! - `lock_dir` opens (creating) `<dir>/LOCK` and takes an exclusive `flock(2)` on it without
//!   blocking (`LOCK_EX | LOCK_NB`; std's `File::try_lock` does the same but needs Rust 1.89,
//!   above the workspace's MSRV). The lock belongs to that open file description: a second
//!   open in the same process conflicts like one in another process, and closing the file
//!   (dropping the guard) or the process dying releases it. The file stays; its presence means
//!   nothing, only the lock does.
//!
//! Errors are passed up unchanged (not re-wrapped), so callers can still see
//! `raw_os_error() == Some(ENOSPC)` and decide; the log's own error type adds the path.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{DirLockGuard, Storage, StorageFile};

/// Permission bits for files the store creates: owner read/write only.
pub const FILE_MODE: u32 = 0o600;

/// Permission bits for directories the store creates: owner only.
pub const DIR_MODE: u32 = 0o700;

/// The name of the lock file [`FileStorage`] keeps in a locked directory.
pub const LOCK_FILE: &str = "LOCK";

/// The real, POSIX file system. Stateless: cloning or sharing it is free.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileStorage;

impl FileStorage {
    /// A handle on the real file system.
    pub fn new() -> Self {
        Self
    }
}

/// An open file of [`FileStorage`].
#[derive(Debug)]
pub struct FileHandle {
    file: File,
    path: PathBuf,
}

impl FileHandle {
    /// The path this handle was opened with (for error messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Storage for FileStorage {
    fn open_file(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .mode(FILE_MODE)
            .open(path)?;
        Ok(Arc::new(FileHandle {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(path)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect()
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // A directory opened read-only can be fsync'ed on Linux; that is the documented way to
        // make its entries durable.
        File::open(dir)?.sync_all()
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(dir.join(LOCK_FILE))?;
        loop {
            // SAFETY: `flock` only reads its integer arguments; the descriptor is open (owned
            // by `file`, alive for the call) and the lock it takes is released when `file`
            // is closed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(Box::new(FileLock { _file: file }));
            }
            let err = io::Error::last_os_error();
            // EWOULDBLOCK (= EAGAIN on Linux) is "held by another open file": io's WouldBlock.
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

/// A held `flock` on a directory's lock file; closing the file releases it.
#[derive(Debug)]
struct FileLock {
    _file: File,
}

impl DirLockGuard for FileLock {}

impl StorageFile for FileHandle {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.file, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        FileExt::write_at(&self.file, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn storage_in_tempdir() -> (tempfile::TempDir, FileStorage) {
        (
            tempfile::tempdir().expect("create tempdir"),
            FileStorage::new(),
        )
    }

    #[test]
    fn write_read_sync_roundtrip() {
        let (dir, fs) = storage_in_tempdir();
        let path = dir.path().join("log");
        let f = fs.open_file(&path, true).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.write_all_at(b"world", 10).unwrap();
        f.sync_data().unwrap();
        f.sync_all().unwrap();
        fs.sync_dir(dir.path()).unwrap();
        assert_eq!(f.len().unwrap(), 15);
        let mut buf = [0xFFu8; 15];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello\0\0\0\0\0world");
        // Reading past the end is short, then UnexpectedEof for read_exact_at.
        let mut tail = [0u8; 8];
        assert_eq!(f.read_at(&mut tail, 12).unwrap(), 3);
        let err = f.read_exact_at(&mut tail, 12).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn open_without_create_fails_on_missing_file() {
        let (dir, fs) = storage_in_tempdir();
        let err = fs
            .open_file(&dir.path().join("missing"), false)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!fs.exists(&dir.path().join("missing")).unwrap());
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_files_and_directories_are_owner_only() {
        let (dir, fs) = storage_in_tempdir();
        let sub = dir.path().join("a/b");
        fs.create_dir_all(&sub).unwrap();
        let path = sub.join("f");
        drop(fs.open_file(&path, true).unwrap());
        drop(fs.lock_dir(&sub).unwrap());
        // The umask can only clear bits, so these are exact unless it takes owner bits away.
        assert_eq!(mode_of(&path), FILE_MODE);
        assert_eq!(mode_of(&sub.join(LOCK_FILE)), FILE_MODE);
        assert_eq!(mode_of(&sub), DIR_MODE);
        assert_eq!(mode_of(&dir.path().join("a")), DIR_MODE);
    }

    #[test]
    fn a_locked_directory_refuses_a_second_lock_until_released() {
        let (dir, fs) = storage_in_tempdir();
        let held = fs.lock_dir(dir.path()).unwrap();
        let err = fs.lock_dir(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(held);
        drop(fs.lock_dir(dir.path()).unwrap());
    }

    #[test]
    fn set_len_grows_with_zeroes_and_truncates() {
        let (dir, fs) = storage_in_tempdir();
        let f = fs.open_file(&dir.path().join("f"), true).unwrap();
        f.write_all_at(&[7u8; 100], 0).unwrap();
        f.set_len(40).unwrap();
        assert_eq!(f.len().unwrap(), 40);
        f.set_len(64).unwrap();
        let mut buf = [0xFFu8; 64];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert!(buf[..40].iter().all(|&b| b == 7));
        assert!(buf[40..].iter().all(|&b| b == 0));
    }

    #[test]
    fn namespace_operations() {
        let (dir, fs) = storage_in_tempdir();
        let sub = dir.path().join("a/b");
        fs.create_dir_all(&sub).unwrap();
        let tmp = sub.join("x.tmp");
        let fin = sub.join("x");
        fs.open_file(&tmp, true)
            .unwrap()
            .write_all_at(b"1", 0)
            .unwrap();
        fs.rename(&tmp, &fin).unwrap();
        fs.sync_dir(&sub).unwrap();
        assert_eq!(fs.read_dir(&sub).unwrap(), vec![fin.clone()]);
        assert!(fs.exists(&fin).unwrap());
        assert!(!fs.exists(&tmp).unwrap());
        fs.remove_file(&fin).unwrap();
        fs.sync_dir(&sub).unwrap();
        assert!(fs.read_dir(&sub).unwrap().is_empty());
    }

    #[test]
    fn handle_is_shared_across_threads() {
        let (dir, fs) = storage_in_tempdir();
        let f = fs.open_file(&dir.path().join("f"), true).unwrap();
        std::thread::scope(|s| {
            for i in 0..4u8 {
                let f = &f;
                s.spawn(move || f.write_all_at(&[i; 16], u64::from(i) * 16).unwrap());
            }
        });
        let mut buf = [0u8; 64];
        f.read_exact_at(&mut buf, 0).unwrap();
        for (i, chunk) in buf.chunks(16).enumerate() {
            assert!(chunk.iter().all(|&b| usize::from(b) == i));
        }
    }
}

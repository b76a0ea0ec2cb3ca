//! The embedded store's data file: one redb database on `botc.redb`, kept where the store's
//! readers and its writer both reach it, and reopened in place after a failed write.
//!
//! redb stops using a file once a write to it has failed (a full disk): every later call
//! answers `PreviousIo` until the database is closed and opened again, and the opening repairs
//! it. The store's writer does that (`Writer::revive` in `embedded.rs`) as soon as a write can
//! work again, so a disk that fills up and is freed needs no restart. While the file is being
//! reopened, reads are refused with an error that says so.
//!
//! The file is reached through [`Disk`], a pass-through to redb's own file backend whose
//! writes tests can make fail ([`DataFile::inject_write_failure`]): redb then sees the same
//! I/O errors a full disk gives, and recovers the same way.

use super::ports::StoreError;
use redb::backends::FileBackend;
use redb::{BackendError, Database, ReadableDatabase, StorageBackend};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub(crate) struct DataFile {
    path: PathBuf,
    cache_bytes: usize,
    /// The error every write to the file fails with, while a test wants that.
    fault: Arc<Mutex<Option<String>>>,
    /// The open database; `None` while it is closed to be reopened.
    db: RwLock<Option<Database>>,
}

impl DataFile {
    /// A data file at `path`, not yet open (see [`DataFile::connect`]).
    pub fn new(path: &Path, cache_bytes: usize) -> DataFile {
        DataFile { path: path.to_path_buf(), cache_bytes, fault: Arc::default(), db: RwLock::new(None) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (or creates) the database on the file, repairing it if it was not closed cleanly.
    /// The caller checks it and [`DataFile::install`]s it.
    pub fn connect(&self) -> Result<Database, redb::DatabaseError> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&self.path)?;
        let disk = Disk { file: FileBackend::new(file)?, fault: self.fault.clone() };
        Database::builder().set_cache_size(self.cache_bytes).create_with_backend(disk)
    }

    /// Makes `db` the database readers and the writer use.
    pub fn install(&self, db: Database) {
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = Some(db);
    }

    /// Closes the database (redb flushes what it can and releases the file), so that it can
    /// be opened again.
    pub fn close(&self) {
        let db = self.db.write().unwrap_or_else(|e| e.into_inner()).take();
        drop(db);
    }

    pub fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        match &*self.db.read().unwrap_or_else(|e| e.into_inner()) {
            Some(db) => db.begin_read().map_err(|e| StoreError::Io(redb::Error::from(e).to_string())),
            None => Err(reopening()),
        }
    }

    /// A write transaction; `None` while the database is closed.
    pub fn begin_write(&self) -> Option<Result<redb::WriteTransaction, redb::TransactionError>> {
        self.db.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(Database::begin_write)
    }

    /// Makes every write to the file fail with `error` (as a full disk's writes do) until
    /// called with `None`.
    pub fn inject_write_failure(&self, error: Option<&str>) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = error.map(String::from);
    }
}

/// What reads answer while the data file is being reopened.
pub(crate) fn reopening() -> StoreError {
    StoreError::Io("the data file is being reopened after a failed write".into())
}

/// redb's file backend, with writes that fail while a fault is injected.
#[derive(Debug)]
struct Disk {
    file: FileBackend,
    fault: Arc<Mutex<Option<String>>>,
}

impl Disk {
    fn check(&self) -> std::io::Result<()> {
        match &*self.fault.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(std::io::Error::other(e.clone())),
            None => Ok(()),
        }
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.file.write(offset, data)
    }

    fn close(&self) -> std::io::Result<()> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

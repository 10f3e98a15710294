//! Files and paths: every `Op` that touches the file system except
//! watching and searching.
//!
//! Owns [`Files`] (per-session state: pending chunked writes) and the
//! handlers for `FileRead`, `FileWrite`, `FileAppend`, the chunked write
//! ops, `ReadDir`, `CreateDir`, `Remove`, `Copy`, `Rename`, `Exists`,
//! `Metadata`, `SetPermissions` and `FindUp`. Handlers are blocking
//! functions; the session runs them on the blocking pool, except
//! [`read`], which streams.
//!
//! # Paths
//!
//! Absolute, or relative to the server's current directory. An empty path
//! or one containing a NUL byte is `InvalidParams`. Paths travel as UTF-8
//! strings; a name that is not valid UTF-8 is reported lossily.
//!
//! # Etags
//!
//! [`etag`] is `INODE-SIZE-MTIMENS-CTIMENS` (lowercase hex, from `stat`):
//! content changes move the size or mtime, `touch` moves the mtime, an
//! atomic replace moves the inode, and anything that writes the inode
//! (including a write that restores the old mtime with `utimes`) moves the
//! ctime, which user space cannot set. It is cheap (no hashing) and the
//! same function stamps reads, writes and metadata. A `chmod` also changes
//! it; that errs on the side of reporting a conflict.
//!
//! # Writes
//!
//! Atomic writes (the default) go to `.NAME.distant-XXXXXXXX.tmp` in the
//! target's directory, created with the target's mode (and owner, when the
//! server runs as root), are fsynced, the preconditions (`create`,
//! `overwrite`, `if_etag`) are checked again, and the temp file is renamed
//! over the target. A server killed before the rename leaves the old file
//! intact (and at worst a stray temp file). Writing through a symlink
//! writes the file it points to — unless the link lies in a sticky,
//! world-writable directory and belongs to neither the server's user nor
//! the directory's owner (the kernel's `fs.protected_symlinks` rule, which
//! the kernel cannot apply to links this module resolves itself). Non-atomic writes truncate and write the
//! target in place (keeping its inode, hard links and extended
//! attributes).
//!
//! Chunked writes (`FileWriteStart` / `FileWriteChunk` / `FileWriteFinish`)
//! always collect into a temp file, so an aborted or abandoned write never
//! touches the target; `Finish` renames it into place (atomic) or copies it
//! into the target in place (non-atomic). Chunks may arrive in any order
//! and are written at their offsets; `Finish` waits for chunks already
//! admitted, but a client must only send it after every chunk was
//! acknowledged.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use distant_protocol::msg::{
    DirEntry, ErrorKind, ErrorReply, FileStamp, FileType, Metadata, PathError, Reply, WriteOptions,
    MAX_CHUNK, MAX_INLINE_WRITE,
};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use crate::errors::{error, invalid, io_error, io_error_on};
use crate::limits::{Limits, MAX_WRITE_OFFSET};
use crate::reply::ReplySink;

/// Most entries one `ReadDir` returns; past it the listing stops with a
/// path error saying so.
pub const MAX_DIR_ENTRIES: usize = 1_000_000;

type Result<T, E = ErrorReply> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// Paths, stamps, etags
// ---------------------------------------------------------------------------

/// Checks a path from a request: not empty, no NUL byte.
pub fn parse_path(path: &str) -> Result<PathBuf> {
    if path.is_empty() {
        return Err(invalid(
            "path is empty: give an absolute path or one relative to the server's working directory",
        ));
    }
    if path.contains('\0') {
        return Err(invalid(format!(
            "path {:?} contains a NUL byte, which no file name can hold",
            path
        )));
    }
    Ok(PathBuf::from(path))
}

/// The etag of a file (see the module docs for the choice of fields).
pub fn etag(m: &fs::Metadata) -> String {
    format!(
        "{:x}-{:x}-{:x}-{:x}",
        m.ino(),
        m.size(),
        nanos(m.mtime(), m.mtime_nsec()),
        nanos(m.ctime(), m.ctime_nsec())
    )
}

fn nanos(secs: i64, nsec: i64) -> u64 {
    (i128::from(secs) * 1_000_000_000 + i128::from(nsec)) as u64
}

fn millis(secs: i64, nsec: i64) -> u64 {
    let ms = i128::from(secs) * 1000 + i128::from(nsec) / 1_000_000;
    ms.clamp(0, i128::from(u64::MAX)) as u64
}

/// Size, mtime and etag of a file.
pub fn stamp(m: &fs::Metadata) -> FileStamp {
    FileStamp {
        size: m.size(),
        mtime: millis(m.mtime(), m.mtime_nsec()),
        etag: etag(m),
    }
}

fn file_type(ft: fs::FileType) -> FileType {
    if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_dir() {
        FileType::Dir
    } else {
        FileType::File
    }
}

fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn special_kind(ft: fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        Some("a named pipe")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_char_device() || ft.is_block_device() {
        Some("a device")
    } else {
        None
    }
}

/// The directory a path lives in (`.` for a bare relative name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks that `path`'s parent exists and is a directory, with a message
/// naming the parent when it is not.
fn check_parent(op: &str, path: &Path) -> Result<()> {
    let parent = parent_of(path);
    match fs::metadata(&parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(error(
            ErrorKind::NotADirectory,
            format!(
                "cannot {op} {}: {} is not a directory",
                path.display(),
                parent.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(error(
            ErrorKind::NotFound,
            format!(
                "cannot {op} {}: parent directory {} does not exist (create it first, e.g. CreateDir with all)",
                path.display(),
                parent.display()
            ),
        )),
        Err(e) => Err(io_error(op, &parent, &e)),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the calling user may write `path` (access(2) with W_OK).
fn writable(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// ---------------------------------------------------------------------------
// Write targets and preconditions
// ---------------------------------------------------------------------------

/// The file a write lands on, after following symlinks, and what is there now.
struct Target {
    /// Path as the client named it (for messages).
    shown: PathBuf,
    /// Where the bytes go.
    real: PathBuf,
    existing: Option<fs::Metadata>,
}

fn resolve_target(op: &str, path: &Path) -> Result<Target> {
    let mut real = path.to_path_buf();
    // Follow symlinks so that saving through a link writes what it points
    // to instead of replacing the link with a regular file.
    for _ in 0..40 {
        match fs::symlink_metadata(&real) {
            Ok(m) if m.file_type().is_symlink() => {
                check_may_follow(op, path, &real, &m)?;
                let to = fs::read_link(&real).map_err(|e| io_error(op, path, &e))?;
                real = if to.is_absolute() {
                    to
                } else {
                    parent_of(&real).join(to)
                };
            }
            _ => break,
        }
    }
    check_parent(op, &real).map_err(|mut e| {
        if real != path {
            e.message = format!(
                "{} (the symlink {} points there)",
                e.message,
                path.display()
            );
        }
        e
    })?;
    let existing = current(op, path, &real)?;
    Ok(Target {
        shown: path.to_path_buf(),
        real,
        existing,
    })
}

/// The kernel's `fs.protected_symlinks` rule, applied to the links this
/// module follows itself (the kernel cannot see those): a symlink in a
/// sticky, world-writable directory (`/tmp`) is followed only when its
/// owner is the follower or the directory's owner. Otherwise another user
/// could plant a link there that turns a save into a write to any file the
/// server's user can write. Applied always, also where the sysctl is off.
fn check_may_follow(op: &str, shown: &Path, link: &Path, meta: &fs::Metadata) -> Result<()> {
    let dir = parent_of(link);
    let Ok(dm) = fs::metadata(&dir) else {
        return Ok(());
    };
    let sticky_world_writable = dm.mode() & 0o1002 == 0o1002;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !sticky_world_writable || meta.uid() == me || meta.uid() == dm.uid() {
        return Ok(());
    }
    Err(error(
        ErrorKind::PermissionDenied,
        format!(
            "cannot {op} {}: {} is a symlink owned by another user (uid {}) in the shared \
             directory {}, and following it could write somewhere that user chose; remove \
             the link or save under another name",
            shown.display(),
            link.display(),
            meta.uid(),
            dir.display()
        ),
    ))
}

/// What is at `real` now: `None` when nothing; an error for a directory or
/// anything but a regular file.
fn current(op: &str, shown: &Path, real: &Path) -> Result<Option<fs::Metadata>> {
    match fs::metadata(real) {
        Ok(m) if m.is_dir() => Err(error(
            ErrorKind::IsADirectory,
            format!(
                "cannot {op} {}: it is a directory (give the path of a file)",
                shown.display()
            ),
        )),
        Ok(m) => match special_kind(m.file_type()) {
            Some(what) => Err(error(
                ErrorKind::Unsupported,
                format!(
                    "cannot {op} {}: it is {what}, not a regular file",
                    shown.display()
                ),
            )),
            None => Ok(Some(m)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(op, shown, &e)),
    }
}

fn check_preconditions(
    op: &str,
    shown: &Path,
    existing: Option<&fs::Metadata>,
    options: &WriteOptions,
) -> Result<()> {
    match existing {
        Some(_) if !options.overwrite => {
            return Err(error(
                ErrorKind::AlreadyExists,
                format!(
                    "cannot {op} {}: it already exists (pass overwrite to replace it)",
                    shown.display()
                ),
            ))
        }
        None if !options.create => {
            return Err(error(
                ErrorKind::NotFound,
                format!(
                    "cannot {op} {}: no such file (pass create to create it)",
                    shown.display()
                ),
            ))
        }
        _ => {}
    }
    match (&options.if_etag, existing) {
        (None, _) => Ok(()),
        (Some(want), None) if want.is_empty() => Ok(()),
        (Some(_), Some(_)) if options.if_etag.as_deref() == Some("") => Err(error(
            ErrorKind::Conflict,
            format!(
                "cannot {op} {}: it was expected not to exist, but someone created it (read it, then save again); nothing was written",
                shown.display()
            ),
        )),
        (Some(_), None) => Err(error(
            ErrorKind::Conflict,
            format!(
                "cannot {op} {}: it was removed since you read it (save without if_etag to recreate it); nothing was written",
                shown.display()
            ),
        )),
        (Some(want), Some(m)) => {
            let now = etag(m);
            if &now == want {
                Ok(())
            } else {
                Err(error(
                    ErrorKind::Conflict,
                    format!(
                        "cannot {op} {}: it changed since you read it (etag {want}, now {now}); read it again and merge, or save without if_etag to overwrite; nothing was written",
                        shown.display()
                    ),
                ))
            }
        }
    }
}

/// Creates `.NAME.distant-XXXXXXXX.tmp` next to `target`, with the target's
/// mode (and owner when root), or the default mode for a new file.
fn create_temp(op: &str, target: &Target) -> Result<(PathBuf, File)> {
    let dir = parent_of(&target.real);
    let name = target
        .real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let mode = target
        .existing
        .as_ref()
        .map(|m| m.mode() & 0o7777)
        .unwrap_or(0o666);
    let mut last = None;
    for _ in 0..16 {
        let tmp = dir.join(format!(".{name}.distant-{:08x}.tmp", rand::random::<u32>()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => {
                if let Some(m) = &target.existing {
                    // The umask may have trimmed the mode; set it exactly.
                    let kept = file
                        .set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777))
                        .and_then(|_| {
                            if is_root() {
                                std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()))
                            } else {
                                Ok(())
                            }
                        });
                    if let Err(e) = kept {
                        let _ = fs::remove_file(&tmp);
                        return Err(io_error(op, &target.shown, &e));
                    }
                }
                return Ok((tmp, file));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                let mut r = io_error(op, &target.shown, &e);
                if r.kind == ErrorKind::PermissionDenied {
                    let hint = if target.existing.is_some() {
                        "atomic writes need write access to the directory; pass atomic false to write the file in place"
                    } else {
                        "check the directory's permissions"
                    };
                    r.message = format!(
                        "cannot {op} {}: permission denied creating a file in {} ({hint})",
                        target.shown.display(),
                        dir.display()
                    );
                }
                return Err(r);
            }
        }
    }
    Err(io_error(
        op,
        &target.shown,
        &last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)),
    ))
}

/// Fsyncs the temp file, re-checks the preconditions, renames it over the
/// target and stamps the result. The temp file is removed on failure.
fn commit_atomic(
    op: &str,
    target: &Target,
    tmp: &Path,
    file: &File,
    options: &WriteOptions,
) -> Result<FileStamp> {
    let result = (|| {
        file.sync_all()
            .map_err(|e| io_error(op, &target.shown, &e))?;
        let now = current(op, &target.shown, &target.real)?;
        check_preconditions(op, &target.shown, now.as_ref(), options)?;
        fs::rename(tmp, &target.real).map_err(|e| io_error(op, &target.shown, &e))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    if let Ok(dir) = File::open(parent_of(&target.real)) {
        let _ = dir.sync_all();
    }
    file.metadata()
        .map(|m| stamp(&m))
        .map_err(|e| io_error(op, &target.shown, &e))
}

/// Opens the target for an in-place write, honouring `create`/`overwrite`.
fn open_in_place(op: &str, target: &Target, options: &WriteOptions) -> Result<File> {
    let mut oo = OpenOptions::new();
    oo.write(true).truncate(true);
    if !options.overwrite {
        oo.create_new(true);
    } else if options.create {
        oo.create(true);
    }
    oo.open(&target.real)
        .map_err(|e| io_error(op, &target.shown, &e))
}

fn check_writable(op: &str, target: &Target) -> Result<()> {
    if target.existing.is_some() {
        writable(&target.real).map_err(|e| io_error(op, &target.shown, &e))?;
    }
    Ok(())
}

/// `FileWrite`.
pub fn write_file(path: &str, data: &[u8], options: &WriteOptions) -> Result<FileStamp> {
    const OP: &str = "write";
    if data.len() > MAX_INLINE_WRITE {
        return Err(invalid(format!(
            "cannot write {path}: {} bytes is more than the {MAX_INLINE_WRITE} a single FileWrite carries (use FileWriteStart, FileWriteChunk and FileWriteFinish)",
            data.len()
        )));
    }
    let path = parse_path(path)?;
    let target = resolve_target(OP, &path)?;
    check_preconditions(OP, &path, target.existing.as_ref(), options)?;
    check_writable(OP, &target)?;
    if options.atomic {
        let (tmp, mut file) = create_temp(OP, &target)?;
        if let Err(e) = file.write_all(data) {
            let _ = fs::remove_file(&tmp);
            return Err(io_error(OP, &path, &e));
        }
        commit_atomic(OP, &target, &tmp, &file, options)
    } else {
        let mut file = open_in_place(OP, &target, options)?;
        file.write_all(data)
            .and_then(|_| file.sync_data())
            .map_err(|e| io_error(OP, &path, &e))?;
        file.metadata()
            .map(|m| stamp(&m))
            .map_err(|e| io_error(OP, &path, &e))
    }
}

/// `FileAppend` (creates the file when missing).
pub fn append_file(path: &str, data: &[u8]) -> Result<FileStamp> {
    const OP: &str = "append to";
    if data.len() > MAX_INLINE_WRITE {
        return Err(invalid(format!(
            "cannot append to {path}: {} bytes is more than the {MAX_INLINE_WRITE} a single FileAppend carries (send several appends)",
            data.len()
        )));
    }
    let path = parse_path(path)?;
    let target = resolve_target(OP, &path)?;
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&target.real)
        .map_err(|e| io_error(OP, &path, &e))?;
    file.write_all(data)
        .and_then(|_| file.sync_data())
        .map_err(|e| io_error(OP, &path, &e))?;
    file.metadata()
        .map(|m| stamp(&m))
        .map_err(|e| io_error(OP, &path, &e))
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

fn open_for_read(path: &str) -> Result<(File, fs::Metadata)> {
    const OP: &str = "read";
    let p = parse_path(path)?;
    let m = fs::metadata(&p).map_err(|e| io_error(OP, &p, &e))?;
    if m.is_dir() {
        return Err(error(
            ErrorKind::IsADirectory,
            format!(
                "cannot read {}: it is a directory (use ReadDir to list it)",
                p.display()
            ),
        ));
    }
    if let Some(what) = special_kind(m.file_type()) {
        return Err(error(
            ErrorKind::Unsupported,
            format!(
                "cannot read {}: it is {what}, not a regular file",
                p.display()
            ),
        ));
    }
    let file = File::open(&p).map_err(|e| io_error(OP, &p, &e))?;
    let m = file.metadata().map_err(|e| io_error(OP, &p, &e))?;
    Ok((file, m))
}

/// Fills `buf` as far as the file goes; returns how many bytes were read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Hex SHA-256 of a file, read in bounded chunks.
fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = read_full(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

// ---------------------------------------------------------------------------
// Chunked writes
// ---------------------------------------------------------------------------

struct PendingWrite {
    target: Target,
    options: WriteOptions,
    tmp: PathBuf,
    file: File,
    /// Chunks hold it shared while they write; finish and abort take it
    /// exclusively, so they run after every chunk admitted before them.
    gate: Arc<RwLock<()>>,
    /// Set once the temp file was renamed into place or removed; until
    /// then dropping the last reference removes it (session end, a
    /// cancelled finish).
    done: AtomicBool,
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        if !self.done.load(Ordering::Acquire) {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Per-session file state: the pending chunked writes.
pub struct Files {
    limits: Limits,
    next_handle: AtomicU64,
    pending: Mutex<HashMap<u64, Arc<PendingWrite>>>,
}

/// A chunk write admitted in arrival order, to be run off the loop.
pub struct AdmittedChunk {
    write: Arc<PendingWrite>,
    guard: OwnedRwLockReadGuard<()>,
    offset: u64,
    data: Bytes,
}

/// A finish or abort admitted in arrival order (the handle is gone from
/// the table, so later chunks are refused).
pub struct AdmittedEnd {
    handle: u64,
    write: Arc<PendingWrite>,
}

impl Files {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            next_handle: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<PendingWrite>>> {
        // A poisoned lock only means another task panicked mid-insert;
        // the map itself is still consistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of chunked writes pending.
    pub fn pending_writes(&self) -> usize {
        self.table().len()
    }

    /// `FileWriteStart` (blocking).
    pub fn write_start(&self, path: &str, options: WriteOptions) -> Result<u64> {
        const OP: &str = "write";
        let over_limit = || {
            error(
                ErrorKind::LimitExceeded,
                format!(
                    "cannot write {path}: this session already has {} chunked writes open (finish or abort one first)",
                    self.limits.max_write_handles
                ),
            )
        };
        if self.pending_writes() >= self.limits.max_write_handles {
            return Err(over_limit());
        }
        let p = parse_path(path)?;
        let target = resolve_target(OP, &p)?;
        check_preconditions(OP, &p, target.existing.as_ref(), &options)?;
        check_writable(OP, &target)?;
        let (tmp, file) = create_temp(OP, &target)?;
        let write = Arc::new(PendingWrite {
            target,
            options,
            tmp,
            file,
            gate: Arc::new(RwLock::new(())),
            done: AtomicBool::new(false),
        });
        let mut table = self.table();
        if table.len() >= self.limits.max_write_handles {
            drop(write);
            return Err(over_limit());
        }
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        table.insert(handle, write);
        Ok(handle)
    }

    fn unknown(handle: u64) -> ErrorReply {
        invalid(format!(
            "unknown write handle {handle}: it was finished or aborted, or never started (start a write with FileWriteStart)"
        ))
    }

    /// Admits a `FileWriteChunk` in arrival order (cheap, never blocks).
    pub fn admit_chunk(&self, handle: u64, offset: u64, data: Bytes) -> Result<AdmittedChunk> {
        let write = self
            .table()
            .get(&handle)
            .cloned()
            .ok_or_else(|| Self::unknown(handle))?;
        if data.len() > MAX_CHUNK {
            return Err(invalid(format!(
                "write chunk of {} bytes for {} is larger than the {MAX_CHUNK}-byte maximum (split it)",
                data.len(),
                write.target.shown.display()
            )));
        }
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > MAX_WRITE_OFFSET) {
            return Err(invalid(format!(
                "write chunk at offset {offset} for {} reaches past the {MAX_WRITE_OFFSET}-byte limit on a chunked write",
                write.target.shown.display()
            )));
        }
        let guard = write.gate.clone().try_read_owned().map_err(|_| {
            invalid(format!(
                "write handle {handle} is being finished (send FileWriteFinish only after every chunk was acknowledged)"
            ))
        })?;
        Ok(AdmittedChunk {
            write,
            guard,
            offset,
            data,
        })
    }

    /// Admits a `FileWriteFinish` or `FileWriteAbort`: removes the handle.
    pub fn admit_end(&self, handle: u64) -> Result<AdmittedEnd> {
        let write = self
            .table()
            .remove(&handle)
            .ok_or_else(|| Self::unknown(handle))?;
        Ok(AdmittedEnd { handle, write })
    }

    /// Discards every pending write (session end): each temp file is
    /// removed as soon as no chunk is writing to it any more.
    pub fn shutdown(&self) {
        let pending: Vec<_> = self.table().drain().collect();
        drop(pending);
    }
}

impl AdmittedChunk {
    /// Writes the chunk at its offset → `Ok`.
    pub async fn run(self) -> Reply {
        let AdmittedChunk {
            write,
            guard,
            offset,
            data,
        } = self;
        let res = tokio::task::spawn_blocking(move || {
            let r = write.file.write_all_at(&data, offset);
            drop(guard);
            r.map_err(|e| io_error("write", &write.target.shown, &e))
        })
        .await;
        match res {
            Ok(Ok(())) => Reply::Ok,
            Ok(Err(e)) => Reply::Error(e),
            Err(e) => Reply::error(ErrorKind::Other, format!("write chunk task failed: {e}")),
        }
    }
}

impl AdmittedEnd {
    async fn exclusive(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.write.gate.clone().write_owned().await
    }

    /// Commits the pending file → `FileWritten`.
    pub async fn finish(self) -> Reply {
        let guard = self.exclusive().await;
        let write = self.write;
        let res = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            finish_blocking(&write)
        })
        .await;
        match res {
            Ok(Ok(stamp)) => Reply::FileWritten(stamp),
            Ok(Err(e)) => Reply::Error(e),
            Err(e) => Reply::error(
                ErrorKind::Other,
                format!("finishing write handle {} failed: {e}", self.handle),
            ),
        }
    }

    /// Discards the pending file → `Ok`.
    pub async fn abort(self) -> Reply {
        let _guard = self.exclusive().await;
        let write = self.write.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _ = fs::remove_file(&write.tmp);
            write.done.store(true, Ordering::Release);
        })
        .await;
        Reply::Ok
    }
}

fn finish_blocking(w: &PendingWrite) -> Result<FileStamp> {
    const OP: &str = "write";
    if w.options.atomic {
        let r = commit_atomic(OP, &w.target, &w.tmp, &w.file, &w.options);
        // Renamed into place, or removed by commit_atomic on failure.
        w.done.store(true, Ordering::Release);
        return r;
    }
    let result = (|| {
        let now = current(OP, &w.target.shown, &w.target.real)?;
        check_preconditions(OP, &w.target.shown, now.as_ref(), &w.options)?;
        let mut out = open_in_place(OP, &w.target, &w.options)?;
        let mut src = &w.file;
        io::Seek::seek(&mut src, io::SeekFrom::Start(0))
            .and_then(|_| io::copy(&mut src, &mut out))
            .and_then(|_| out.sync_data())
            .map_err(|e| io_error(OP, &w.target.shown, &e))?;
        out.metadata()
            .map(|m| stamp(&m))
            .map_err(|e| io_error(OP, &w.target.shown, &e))
    })();
    let _ = fs::remove_file(&w.tmp);
    w.done.store(true, Ordering::Release);
    result
}

// ---------------------------------------------------------------------------
// Streaming read
// ---------------------------------------------------------------------------

/// The part of a file a `FileRead` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadRange {
    /// First byte to read.
    pub offset: u64,
    /// Bytes to read at most; `None` = to the end.
    pub length: Option<u64>,
}

/// `FileRead`: streams `FileChunk`s then a terminal `FileEnd` (or a
/// terminal `Error`) through `sink`, which must already be released.
/// Memory stays bounded: each chunk waits for room in the response channel.
pub async fn read(path: String, chunk_size: Option<u32>, range: ReadRange, sink: ReplySink) {
    let chunk = match chunk_size {
        None => MAX_CHUNK,
        Some(0) => {
            sink.send(Reply::Error(invalid(format!(
                "cannot read {path}: chunk_size must be at least 1"
            ))))
            .await;
            return;
        }
        Some(n) => (n as usize).min(MAX_CHUNK),
    };
    let p = path.clone();
    let opened = match tokio::task::spawn_blocking(move || open_for_read(&p)).await {
        Ok(r) => r,
        Err(e) => Err(error(ErrorKind::Other, format!("cannot read {path}: {e}"))),
    };
    let (mut file, meta) = match opened {
        Ok(x) => x,
        Err(e) => {
            sink.send(Reply::Error(e)).await;
            return;
        }
    };
    let stamp = stamp(&meta);
    let mut offset = range.offset;
    let mut remaining = range.length.unwrap_or(u64::MAX);
    if offset > 0 {
        use std::io::Seek;
        if let Err(e) = file.seek(std::io::SeekFrom::Start(offset)) {
            sink.send(Reply::Error(io_error("read", Path::new(&path), &e)))
                .await;
            return;
        }
    }
    while remaining > 0 {
        let want = usize::try_from(remaining).map_or(chunk, |r| r.min(chunk));
        let res = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; want];
            let r = read_full(&mut file, &mut buf).map(|n| {
                buf.truncate(n);
                buf
            });
            (file, r)
        })
        .await;
        let (f, r) = match res {
            Ok(x) => x,
            Err(e) => {
                sink.send(Reply::error(
                    ErrorKind::Other,
                    format!("cannot read {path}: {e}"),
                ))
                .await;
                return;
            }
        };
        file = f;
        match r {
            Ok(buf) if buf.is_empty() => break,
            Ok(buf) => {
                let n = buf.len() as u64;
                if !sink
                    .send(Reply::FileChunk {
                        offset,
                        data: Bytes::from(buf),
                    })
                    .await
                {
                    return;
                }
                offset += n;
                remaining = remaining.saturating_sub(n);
            }
            Err(e) => {
                sink.send(Reply::Error(io_error("read", Path::new(&path), &e)))
                    .await;
                return;
            }
        }
    }
    sink.send(Reply::FileEnd(stamp)).await;
}

// ---------------------------------------------------------------------------
// Directories and paths
// ---------------------------------------------------------------------------

/// `ReadDir`. Entries are sorted by path; unreadable subdirectories are
/// reported in `errors` and skipped. With `include_root` the root comes
/// first, as an absolute path at depth 0. Symlinks are listed, not followed.
pub fn read_dir(path: &str, depth: u64, absolute: bool, include_root: bool) -> Result<Reply> {
    const OP: &str = "read directory";
    let root = parse_path(path)?;
    let m = fs::metadata(&root).map_err(|e| io_error(OP, &root, &e))?;
    if !m.is_dir() {
        return Err(error(
            ErrorKind::NotADirectory,
            format!(
                "cannot read directory {}: it is not a directory (use FileRead for files)",
                root.display()
            ),
        ));
    }
    let abs_root = std::path::absolute(&root).map_err(|e| io_error(OP, &root, &e))?;
    let mut entries: Vec<(PathBuf, DirEntry)> = Vec::new();
    let mut errors = Vec::new();
    // Root listing failure is the operation's failure.
    let first = fs::read_dir(&abs_root).map_err(|e| io_error(OP, &root, &e))?;
    let mut stack = vec![(first, PathBuf::new(), 1u64)];
    let mut truncated = false;
    while let Some((iter, rel, d)) = stack.pop() {
        for item in iter {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    errors.push(PathError {
                        path: lossy(&abs_root.join(&rel)),
                        message: io_error(OP, &abs_root.join(&rel), &e).message,
                    });
                    continue;
                }
            };
            if entries.len() >= MAX_DIR_ENTRIES {
                truncated = true;
                break;
            }
            let rel_path = rel.join(item.file_name());
            let abs_path = abs_root.join(&rel_path);
            let ft = match item.file_type() {
                Ok(ft) => ft,
                Err(e) => {
                    errors.push(PathError {
                        path: lossy(&abs_path),
                        message: io_error("read", &abs_path, &e).message,
                    });
                    continue;
                }
            };
            let shown = if absolute {
                abs_path.clone()
            } else {
                rel_path.clone()
            };
            entries.push((
                shown.clone(),
                DirEntry {
                    path: lossy(&shown),
                    file_type: file_type(ft),
                    depth: d,
                },
            ));
            if ft.is_dir() && (depth == 0 || d < depth) {
                match fs::read_dir(&abs_path) {
                    Ok(sub) => stack.push((sub, rel_path, d + 1)),
                    Err(e) => errors.push(PathError {
                        path: lossy(&abs_path),
                        message: io_error(OP, &abs_path, &e).message,
                    }),
                }
            }
        }
        if truncated {
            errors.push(PathError {
                path: lossy(&abs_root),
                message: format!(
                    "listing stopped after {MAX_DIR_ENTRIES} entries (ask for a smaller depth)"
                ),
            });
            break;
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(entries.len() + 1);
    if include_root {
        out.push(DirEntry {
            path: lossy(&abs_root),
            file_type: FileType::Dir,
            depth: 0,
        });
    }
    out.extend(entries.into_iter().map(|(_, e)| e));
    Ok(Reply::DirEntries {
        entries: out,
        errors,
    })
}

/// `CreateDir`.
pub fn create_dir(path: &str, all: bool) -> Result<Reply> {
    const OP: &str = "create directory";
    let p = parse_path(path)?;
    if all {
        if let Ok(m) = fs::metadata(&p) {
            if !m.is_dir() {
                return Err(error(
                    ErrorKind::AlreadyExists,
                    format!(
                        "cannot create directory {}: a file with that name exists (remove it or pick another name)",
                        p.display()
                    ),
                ));
            }
        }
        fs::create_dir_all(&p).map_err(|e| io_error(OP, &p, &e))?;
    } else {
        if let Err(mut e) = check_parent(OP, &p) {
            if e.kind == ErrorKind::NotFound {
                e.message = format!(
                    "cannot create directory {}: parent directory {} does not exist (pass all to create missing parents)",
                    p.display(),
                    parent_of(&p).display()
                );
            }
            return Err(e);
        }
        fs::create_dir(&p).map_err(|e| {
            let mut r = io_error(OP, &p, &e);
            if r.kind == ErrorKind::AlreadyExists {
                r.message = format!(
                    "cannot create directory {}: it already exists (pass all to accept an existing directory)",
                    p.display()
                );
            }
            r
        })?;
    }
    Ok(Reply::Ok)
}

/// `Remove`.
pub fn remove(path: &str, force: bool) -> Result<Reply> {
    const OP: &str = "remove";
    let p = parse_path(path)?;
    let m = fs::symlink_metadata(&p).map_err(|e| io_error(OP, &p, &e))?;
    if m.is_dir() {
        if std::path::absolute(&p).is_ok_and(|a| a.parent().is_none()) {
            return Err(invalid("refusing to remove the root directory /"));
        }
        if force {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_dir(&p)
        }
    } else {
        fs::remove_file(&p)
    }
    .map_err(|e| io_error(OP, &p, &e))?;
    Ok(Reply::Ok)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let shown = || format!("{} to {}", src.display(), dst.display());
    let m = fs::symlink_metadata(src).map_err(|e| io_error_on("copy", shown(), &e))?;
    let ft = m.file_type();
    if ft.is_symlink() {
        let to = fs::read_link(src).map_err(|e| io_error_on("copy", shown(), &e))?;
        std::os::unix::fs::symlink(to, dst).map_err(|e| io_error_on("copy", shown(), &e))?;
    } else if ft.is_dir() {
        fs::create_dir(dst).map_err(|e| io_error_on("copy", shown(), &e))?;
        let iter = fs::read_dir(src).map_err(|e| io_error_on("copy", shown(), &e))?;
        for item in iter {
            let item = item.map_err(|e| io_error_on("copy", shown(), &e))?;
            copy_tree(&item.path(), &dst.join(item.file_name()))?;
        }
        fs::set_permissions(dst, m.permissions()).map_err(|e| io_error_on("copy", shown(), &e))?;
    } else if let Some(what) = special_kind(ft) {
        return Err(error(
            ErrorKind::Unsupported,
            format!("cannot copy {}: it is {what}", src.display()),
        ));
    } else {
        fs::copy(src, dst).map_err(|e| io_error_on("copy", shown(), &e))?;
    }
    Ok(())
}

/// A fresh name `.NAME.distant-XXXXXXXX.SUFFIX` next to `path` that did
/// not exist when chosen (the caller creates it exclusively).
fn sibling_name(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    parent_of(path).join(format!(
        ".{name}.distant-{:08x}.{suffix}",
        rand::random::<u32>()
    ))
}

/// Copies the file `src` to a new exclusive temporary file next to `dst`
/// (with `src`'s mode); returns its path.
fn copy_file_to_temp(src: &Path, dst: &Path, mode: u32) -> Result<PathBuf> {
    let shown = || format!("{} to {}", src.display(), dst.display());
    let mut input = File::open(src).map_err(|e| io_error_on("copy", shown(), &e))?;
    for _ in 0..16 {
        let tmp = sibling_name(dst, "tmp");
        let mut out = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error_on("copy", shown(), &e)),
        };
        let done = io::copy(&mut input, &mut out)
            .and_then(|_| out.set_permissions(fs::Permissions::from_mode(mode)));
        return match done {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(io_error_on("copy", shown(), &e))
            }
        };
    }
    Err(error(
        ErrorKind::Other,
        format!("copy {}: no free temporary name", shown()),
    ))
}

/// Removes `path` whatever it is (a tree, a file, a link).
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// `Copy`: files, symlinks (as links) and directories (recursively), made
/// under a temporary name next to the destination and renamed into place:
/// a copy that fails leaves the destination as it was and no temporary
/// behind. See [`Op::Copy`](distant_protocol::msg::Op) for `overwrite`.
pub fn copy(src: &str, dst: &str, overwrite: Option<bool>) -> Result<Reply> {
    let s = parse_path(src)?;
    let d = parse_path(dst)?;
    let sm = fs::symlink_metadata(&s).map_err(|e| io_error("copy", &s, &e))?;
    check_parent("copy to", &d)?;
    let existing = fs::symlink_metadata(&d).ok();
    if let Some(dm) = &existing {
        let allowed = match overwrite {
            Some(o) => o,
            None => sm.is_file() && dm.is_file(),
        };
        if !allowed {
            return Err(error(
                ErrorKind::AlreadyExists,
                format!(
                    "cannot copy {} to {}: the destination already exists (pass overwrite to replace it, or pick another destination)",
                    s.display(),
                    d.display()
                ),
            ));
        }
    }
    let (as_, ad) = (
        std::path::absolute(&s).unwrap_or(s.clone()),
        std::path::absolute(&d).unwrap_or(d.clone()),
    );
    if ad == as_ {
        return Err(invalid(format!("cannot copy {} onto itself", s.display())));
    }
    if sm.is_dir() && ad.starts_with(&as_) {
        return Err(invalid(format!(
            "cannot copy {} into itself ({} is inside it)",
            s.display(),
            d.display()
        )));
    }
    if let Some(what) = special_kind(sm.file_type()) {
        return Err(error(
            ErrorKind::Unsupported,
            format!("cannot copy {}: it is {what}", s.display()),
        ));
    }
    // 1. The copy, under a temporary name next to the destination.
    let tmp = if sm.is_file() {
        copy_file_to_temp(&s, &d, sm.mode() & 0o7777)?
    } else {
        let mut made = None;
        for _ in 0..16 {
            let tmp = sibling_name(&d, "tmp");
            if fs::symlink_metadata(&tmp).is_ok() {
                continue;
            }
            if let Err(e) = copy_tree(&s, &tmp) {
                let _ = remove_any(&tmp);
                return Err(e);
            }
            made = Some(tmp);
            break;
        }
        made.ok_or_else(|| error(ErrorKind::Other, "copy: no free temporary name"))?
    };
    let shown = || format!("{} to {}", s.display(), d.display());
    // 2. Into place: one rename over a file or link; a directory (or a
    // file replaced by a directory) is moved aside first, then removed.
    let over_dir =
        existing.as_ref().is_some_and(|m| m.is_dir()) || (existing.is_some() && sm.is_dir());
    if !over_dir {
        if let Err(e) = fs::rename(&tmp, &d) {
            let _ = remove_any(&tmp);
            return Err(io_error_on("copy", shown(), &e));
        }
        return Ok(Reply::Ok);
    }
    let aside = sibling_name(&d, "old");
    if let Err(e) = fs::rename(&d, &aside) {
        let _ = remove_any(&tmp);
        return Err(io_error_on("copy", shown(), &e));
    }
    if let Err(e) = fs::rename(&tmp, &d) {
        // Put the old destination back.
        let _ = fs::rename(&aside, &d);
        let _ = remove_any(&tmp);
        return Err(io_error_on("copy", shown(), &e));
    }
    if let Err(e) = remove_any(&aside) {
        tracing::warn!(
            "copy {}: could not remove the replaced {}: {e}",
            shown(),
            aside.display()
        );
    }
    Ok(Reply::Ok)
}

/// `Rename` (falls back to copy + remove across devices).
pub fn rename(src: &str, dst: &str, overwrite: bool) -> Result<Reply> {
    let s = parse_path(src)?;
    let d = parse_path(dst)?;
    let what = || format!("{} to {}", s.display(), d.display());
    fs::symlink_metadata(&s).map_err(|e| io_error("rename", &s, &e))?;
    check_parent("rename to", &d)?;
    if fs::symlink_metadata(&d).is_ok() && !overwrite {
        return Err(error(
            ErrorKind::AlreadyExists,
            format!(
                "cannot rename {}: {} already exists (pass overwrite to replace it)",
                what(),
                d.display()
            ),
        ));
    }
    match fs::rename(&s, &d) {
        Ok(()) => Ok(Reply::Ok),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            if overwrite {
                if let Ok(dm) = fs::symlink_metadata(&d) {
                    if dm.is_dir() {
                        fs::remove_dir(&d)
                    } else {
                        fs::remove_file(&d)
                    }
                    .map_err(|e| io_error_on("rename", what(), &e))?;
                }
            }
            copy_tree(&s, &d)?;
            let sm = fs::symlink_metadata(&s).map_err(|e| io_error("rename", &s, &e))?;
            if sm.is_dir() {
                fs::remove_dir_all(&s)
            } else {
                fs::remove_file(&s)
            }
            .map_err(|e| io_error_on("rename", what(), &e))?;
            Ok(Reply::Ok)
        }
        Err(e) => Err(io_error_on("rename", what(), &e)),
    }
}

/// `Exists` (follows symlinks: a dangling link does not exist).
pub fn exists(path: &str) -> Result<Reply> {
    let p = parse_path(path)?;
    match fs::metadata(&p) {
        Ok(_) => Ok(Reply::Exists(true)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(Reply::Exists(false))
        }
        Err(e) => Err(io_error("check", &p, &e)),
    }
}

/// `Metadata`.
pub fn metadata(path: &str, follow_symlinks: bool, hash: bool) -> Result<Reply> {
    const OP: &str = "read metadata of";
    let p = parse_path(path)?;
    let m = if follow_symlinks {
        fs::metadata(&p)
    } else {
        fs::symlink_metadata(&p)
    }
    .map_err(|e| io_error(OP, &p, &e))?;
    let ft = m.file_type();
    let symlink_target = if ft.is_symlink() {
        Some(lossy(&fs::read_link(&p).map_err(|e| io_error(OP, &p, &e))?))
    } else {
        None
    };
    let is_file = ft.is_file();
    let sha256 = if hash && is_file {
        Some(sha256_file(&p).map_err(|e| io_error("hash", &p, &e))?)
    } else {
        None
    };
    Ok(Reply::Metadata(Metadata {
        file_type: file_type(ft),
        size: m.size(),
        mtime: millis(m.mtime(), m.mtime_nsec()),
        atime: Some(millis(m.atime(), m.atime_nsec())),
        ctime: Some(millis(m.ctime(), m.ctime_nsec())),
        readonly: m.mode() & 0o222 == 0,
        mode: Some(m.mode() & 0o7777),
        symlink_target,
        sha256,
        etag: is_file.then(|| etag(&m)),
    }))
}

fn chmod_one(p: &Path, mode: Option<u32>, readonly: Option<bool>) -> io::Result<()> {
    let cur = fs::metadata(p)?.mode() & 0o7777;
    let mut new = mode.unwrap_or(cur);
    match readonly {
        Some(true) => new &= !0o222,
        Some(false) => new |= 0o200,
        None => {}
    }
    fs::set_permissions(p, fs::Permissions::from_mode(new))
}

/// `SetPermissions`: `mode` first, then `readonly` (true clears every
/// write bit; false adds the owner's). Recursion does not follow symlinks.
pub fn set_permissions(
    path: &str,
    mode: Option<u32>,
    readonly: Option<bool>,
    recursive: bool,
) -> Result<Reply> {
    const OP: &str = "set permissions of";
    let p = parse_path(path)?;
    if mode.is_none() && readonly.is_none() {
        return Err(invalid(format!(
            "cannot set permissions of {}: give mode, readonly or both",
            p.display()
        )));
    }
    if let Some(m) = mode {
        if m > 0o7777 {
            return Err(invalid(format!(
                "cannot set permissions of {}: mode {m:o} is not a permission mode (at most 7777 octal)",
                p.display()
            )));
        }
    }
    chmod_one(&p, mode, readonly).map_err(|e| io_error(OP, &p, &e))?;
    if recursive && fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
        let mut stack = vec![p.clone()];
        while let Some(dir) = stack.pop() {
            let iter = fs::read_dir(&dir).map_err(|e| io_error(OP, &dir, &e))?;
            for item in iter {
                let item = item.map_err(|e| io_error(OP, &dir, &e))?;
                let ft = item
                    .file_type()
                    .map_err(|e| io_error(OP, &item.path(), &e))?;
                if ft.is_symlink() {
                    continue;
                }
                let child = item.path();
                chmod_one(&child, mode, readonly).map_err(|e| io_error(OP, &child, &e))?;
                if ft.is_dir() {
                    stack.push(child);
                }
            }
        }
    }
    Ok(Reply::Ok)
}

/// `FindUp`: the nearest directory, starting at `path` when it is a
/// directory (else at its parent), holding an entry named one of `names`.
pub fn find_up(path: &str, names: &[String]) -> Result<Reply> {
    let p = parse_path(path)?;
    if names.is_empty() {
        return Err(invalid("FindUp needs at least one name to look for"));
    }
    for n in names {
        if n.is_empty() || n == "." || n == ".." || n.contains('/') || n.contains('\0') {
            return Err(invalid(format!(
                "FindUp name {n:?} is not a plain file name (no slashes, not . or ..)"
            )));
        }
    }
    let abs = std::path::absolute(&p).map_err(|e| io_error("search above", &p, &e))?;
    let mut dir = if fs::metadata(&abs).is_ok_and(|m| m.is_dir()) {
        Some(abs.as_path())
    } else {
        abs.parent()
    };
    while let Some(d) = dir {
        if names
            .iter()
            .any(|n| fs::symlink_metadata(d.join(n)).is_ok())
        {
            return Ok(Reply::FoundUp(Some(lossy(d))));
        }
        dir = d.parent();
    }
    Ok(Reply::FoundUp(None))
}

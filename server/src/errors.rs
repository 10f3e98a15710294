//! Turning failures into replies a person can act on.
//!
//! Owns the mapping from `std::io::Error` to [`ErrorReply`]: the protocol
//! [`ErrorKind`] (so editors can branch on it) and a message that names the
//! operation, the path, what went wrong and — where there is one — what to
//! do about it, e.g. `cannot remove /a/b: directory not empty (pass force
//! to remove it and everything in it)`.

use std::fmt::Display;
use std::io;
use std::path::Path;

use distant_protocol::msg::{ErrorKind, ErrorReply, Reply};

/// An error reply with `kind` and `message`.
pub fn error(kind: ErrorKind, message: impl Into<String>) -> ErrorReply {
    ErrorReply {
        kind,
        message: message.into(),
    }
}

/// `InvalidParams` with `message`.
pub fn invalid(message: impl Into<String>) -> ErrorReply {
    error(ErrorKind::InvalidParams, message)
}

/// The protocol error kind of an I/O error.
pub fn kind_of(err: &io::Error) -> ErrorKind {
    use io::ErrorKind as K;
    match err.kind() {
        K::NotFound => ErrorKind::NotFound,
        K::PermissionDenied | K::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
        K::AlreadyExists => ErrorKind::AlreadyExists,
        K::NotADirectory => ErrorKind::NotADirectory,
        K::IsADirectory => ErrorKind::IsADirectory,
        K::DirectoryNotEmpty => ErrorKind::DirectoryNotEmpty,
        K::InvalidInput | K::InvalidFilename => ErrorKind::InvalidParams,
        K::TimedOut => ErrorKind::Timeout,
        K::Unsupported => ErrorKind::Unsupported,
        _ => match err.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::EROFS) => {
                ErrorKind::PermissionDenied
            }
            Some(libc::ENOTDIR) => ErrorKind::NotADirectory,
            Some(libc::EISDIR) => ErrorKind::IsADirectory,
            Some(libc::ENOTEMPTY) => ErrorKind::DirectoryNotEmpty,
            Some(libc::EEXIST) => ErrorKind::AlreadyExists,
            Some(libc::ENOENT) => ErrorKind::NotFound,
            _ => ErrorKind::Other,
        },
    }
}

/// What went wrong, in words, and what to do about it.
fn reason_and_hint(op: &str, err: &io::Error, kind: ErrorKind) -> (String, &'static str) {
    let reason = match kind {
        ErrorKind::NotFound => "no such file or directory".to_string(),
        ErrorKind::PermissionDenied => match err.raw_os_error() {
            Some(libc::EROFS) => "the file system is read-only".to_string(),
            _ => "permission denied".to_string(),
        },
        ErrorKind::AlreadyExists => "it already exists".to_string(),
        ErrorKind::NotADirectory => "a component of the path is not a directory".to_string(),
        ErrorKind::IsADirectory => "it is a directory".to_string(),
        ErrorKind::DirectoryNotEmpty => "directory not empty".to_string(),
        _ => match err.raw_os_error() {
            Some(libc::ENOSPC) => "no space left on the device".to_string(),
            Some(libc::EDQUOT) => "disk quota exceeded".to_string(),
            Some(libc::ELOOP) => "too many levels of symbolic links".to_string(),
            Some(libc::ENAMETOOLONG) => "the file name is too long".to_string(),
            Some(libc::EXDEV) => "source and destination are on different devices".to_string(),
            Some(libc::EBUSY) => "the file or directory is busy".to_string(),
            Some(libc::ETXTBSY) => "the file is a running program".to_string(),
            _ => {
                // std's Display appends " (os error N)"; keep it, it helps.
                let s = err.to_string();
                let mut chars = s.chars();
                match chars.next() {
                    Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
                    None => "unknown error".to_string(),
                }
            }
        },
    };
    let hint = match kind {
        ErrorKind::NotFound => "check the path",
        ErrorKind::PermissionDenied => match err.raw_os_error() {
            Some(libc::EROFS) => "write somewhere else",
            _ => "check the permissions of the path and its parent directories, or run the server as a user who has access",
        },
        ErrorKind::NotADirectory => "check the path: one of its parents is a file",
        ErrorKind::DirectoryNotEmpty if op == "remove" => {
            "pass force to remove it and everything in it"
        }
        _ => match err.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => "free some space and try again",
            _ => "",
        },
    };
    (reason, hint)
}

/// An error reply for `op` (a verb: "read", "write", "remove", ...) on
/// `path` that failed with `err`.
pub fn io_error(op: &str, path: &Path, err: &io::Error) -> ErrorReply {
    io_error_on(op, path.display(), err)
}

/// Like [`io_error`], for operations on something other than one path
/// (e.g. `"/a to /b"` for a rename).
pub fn io_error_on(op: &str, what: impl Display, err: &io::Error) -> ErrorReply {
    let kind = kind_of(err);
    let (reason, hint) = reason_and_hint(op, err, kind);
    let message = if hint.is_empty() {
        format!("cannot {op} {what}: {reason}")
    } else {
        format!("cannot {op} {what}: {reason} ({hint})")
    };
    ErrorReply { kind, message }
}

/// [`io_error`] as a [`Reply`].
pub fn io_reply(op: &str, path: &Path, err: &io::Error) -> Reply {
    Reply::Error(io_error(op, path, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_op_path_and_hint() {
        let e = io::Error::from_raw_os_error(libc::ENOTEMPTY);
        let r = io_error("remove", Path::new("/a/b"), &e);
        assert_eq!(r.kind, ErrorKind::DirectoryNotEmpty);
        assert_eq!(
            r.message,
            "cannot remove /a/b: directory not empty (pass force to remove it and everything in it)"
        );
        let e = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(kind_of(&e), ErrorKind::PermissionDenied);
        let e = io::Error::from_raw_os_error(libc::ENOTDIR);
        assert_eq!(kind_of(&e), ErrorKind::NotADirectory);
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        let r = io_error("write", Path::new("/x"), &e);
        assert_eq!(r.kind, ErrorKind::Other);
        assert!(r.message.contains("no space left"), "{}", r.message);
    }
}

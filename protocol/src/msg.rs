//! Application messages: the requests a client sends and the responses the
//! server streams back, shared by both sides so they cannot drift apart.
//!
//! Each data record of a session carries one [`Message`], encoded with
//! [`Message::encode`] (MessagePack, named fields, externally tagged enums;
//! see `docs/PROTOCOL.md` §5). A request carries one [`Op`] or a batch of
//! them; every request is answered by at least one [`Response`] whose
//! `origin_id` is the request's `id`. Long-running operations (process
//! output, watch changes, search results, file chunks) keep answering with
//! more responses carrying the same `origin_id` until a terminal reply
//! ([`Reply::is_terminal`]).
//!
//! Large payloads never travel as one message: files move in chunks of at
//! most [`MAX_CHUNK`] bytes, so no record comes near the frame cap.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Largest data chunk the server puts in one [`Reply::FileChunk`] or
/// [`Reply::ProcOutput`], and the largest a client should send in one
/// [`Op::FileWriteChunk`] / [`Op::ProcStdin`].
pub const MAX_CHUNK: usize = 1024 * 1024;

/// Largest `data` accepted inline by [`Op::FileWrite`] and [`Op::FileAppend`];
/// larger contents go through `FileWriteStart` / `FileWriteChunk` /
/// `FileWriteFinish`.
pub const MAX_INLINE_WRITE: usize = 8 * 1024 * 1024;

/// Identifies a request; chosen by the client, unique within a session.
pub type RequestId = u64;

/// One application message: the payload of one data record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// Why a data record could not be turned into a [`Message`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Why a [`Message`] could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("message could not be encoded: {0}")]
    Encode(String),
}

impl Message {
    /// Encodes this message as MessagePack with named fields.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        rmp_serde::to_vec_named(self).map_err(|e| EncodeError::Encode(e.to_string()))
    }

    /// Decodes a message; any malformed input is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }

    /// Best-effort recovery of a request id from a message that failed to
    /// decode, so the server can still answer it with an error.
    pub fn peek_request_id(bytes: &[u8]) -> Option<RequestId> {
        #[derive(Deserialize)]
        struct IdOnly {
            id: RequestId,
        }
        #[derive(Deserialize)]
        enum Envelope {
            Request(IdOnly),
        }
        match rmp_serde::from_slice::<Envelope>(bytes) {
            Ok(Envelope::Request(r)) => Some(r.id),
            Err(_) => None,
        }
    }
}

/// A request from client to server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: RequestId,
    pub payload: RequestPayload,
}

/// One operation, or several answered together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RequestPayload {
    Single(Op),
    /// Answered by one response with [`ResponsePayload::Batch`], replies in
    /// the order of `ops`. With `sequential`, each op runs after the previous
    /// one finished and the batch stops at the first error (later ops get
    /// an `Error` reply of kind `Other` saying they were skipped); otherwise
    /// the ops may run concurrently.
    Batch {
        ops: Vec<Op>,
        sequential: bool,
    },
}

/// A response from server to client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Unique per response within a session.
    pub id: u64,
    /// The request this answers or streams for.
    pub origin_id: RequestId,
    pub payload: ResponsePayload,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ResponsePayload {
    Single(Reply),
    Batch(Vec<Reply>),
}

impl ResponsePayload {
    /// True when no more responses will follow for this origin.
    pub fn is_terminal(&self) -> bool {
        match self {
            ResponsePayload::Single(r) => r.is_terminal(),
            ResponsePayload::Batch(_) => true,
        }
    }
}

/// Options of a whole-file or chunked write. Every field may be omitted on
/// the wire and takes its [`Default`] (PROTOCOL.md §5.5), and so may the
/// whole `options` map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriteOptions {
    /// Create the file when it does not exist (else `NotFound`).
    pub create: bool,
    /// Replace an existing file (else `AlreadyExists`).
    pub overwrite: bool,
    /// Fail with `Conflict` and write nothing unless the file's current
    /// etag is this one (`""` means "the file must not exist").
    pub if_etag: Option<String>,
    /// Write to a temporary file in the same directory and rename it over
    /// the target, keeping the target's permissions.
    pub atomic: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            create: true,
            overwrite: true,
            if_etag: None,
            atomic: true,
        }
    }
}

/// What `Search` looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SearchTarget {
    Path,
    Contents,
}

/// A search query (mirrors the bridge API's `query`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchQuery {
    pub target: SearchTarget,
    pub pattern: String,
    /// `false`: `pattern` is a literal string.
    pub regex: bool,
    pub case_sensitive: bool,
    pub paths: Vec<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub hidden: bool,
    pub gitignore: bool,
    pub max_results: Option<u64>,
    pub max_depth: Option<u64>,
}

/// PTY dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtySize {
    pub rows: u16,
    pub cols: u16,
}

/// How a process's stdout is cut into `ProcOutput` replies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputFraming {
    /// Chunks as they come (at most [`MAX_CHUNK`] each).
    #[default]
    Raw,
    /// stdout is an LSP stream: each `ProcOutput` is exactly one whole
    /// `Content-Length`-framed message (header included); bytes outside of
    /// a message (a banner, a stray print) are dropped with a warning on
    /// the server's log.
    Lsp,
}

/// One operation the server performs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// → `Version`.
    Version,
    /// → `SystemInfo`.
    SystemInfo,

    /// Streams `FileChunk`s (at most `chunk_size`, default and max
    /// [`MAX_CHUNK`]) then a terminal `FileEnd`.
    /// With `offset`/`length`, only that byte range is read (clients read a
    /// huge file range by range to keep their memory bounded); `FileEnd`
    /// always stamps the whole file.
    FileRead {
        path: String,
        #[serde(default)]
        chunk_size: Option<u32>,
        #[serde(default)]
        offset: u64,
        #[serde(default)]
        length: Option<u64>,
    },
    /// Whole-file write of at most [`MAX_INLINE_WRITE`] bytes → `FileWritten`.
    FileWrite {
        path: String,
        data: Bytes,
        #[serde(default)]
        options: WriteOptions,
    },
    /// → `FileWritten`.
    FileAppend { path: String, data: Bytes },
    /// Opens a chunked write → `WriteHandle`. Preconditions are checked here
    /// and again at `FileWriteFinish`.
    FileWriteStart {
        path: String,
        #[serde(default)]
        options: WriteOptions,
    },
    /// Writes `data` at `offset` of the pending file → `Ok`. Chunks may
    /// arrive in any order.
    FileWriteChunk {
        handle: u64,
        offset: u64,
        data: Bytes,
    },
    /// Commits the pending file (rename into place when atomic) → `FileWritten`.
    FileWriteFinish { handle: u64 },
    /// Discards the pending file → `Ok`; the target is untouched.
    FileWriteAbort { handle: u64 },

    /// → `DirEntries`.
    ReadDir {
        path: String,
        /// 1 = immediate children, 0 = unlimited.
        depth: u64,
        absolute: bool,
        include_root: bool,
    },
    /// → `Ok`.
    CreateDir { path: String, all: bool },
    /// → `Ok`; a non-empty directory needs `force`.
    Remove { path: String, force: bool },
    /// Recursive for directories → `Ok`. The copy is made under a
    /// temporary name next to `dst` and renamed into place, so a copy that
    /// fails leaves `dst` as it was. `overwrite`: `Some(true)` replaces an
    /// existing `dst` (of any type), `Some(false)` refuses any existing
    /// `dst` (`AlreadyExists`); absent (older clients) replaces an existing
    /// file with a file and refuses anything else.
    Copy {
        src: String,
        dst: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        overwrite: Option<bool>,
    },
    /// → `Ok`.
    Rename {
        src: String,
        dst: String,
        overwrite: bool,
    },
    /// → `Exists`.
    Exists { path: String },
    /// → `Metadata`.
    Metadata {
        path: String,
        follow_symlinks: bool,
        hash: bool,
    },
    /// → `Ok`.
    SetPermissions {
        path: String,
        mode: Option<u32>,
        readonly: Option<bool>,
        recursive: bool,
    },
    /// Nearest ancestor directory of `path` (itself included) holding an
    /// entry named one of `names` → `FoundUp`.
    FindUp { path: String, names: Vec<String> },

    /// → `Watching`, then `Changes` until `Unwatch` (terminal `Unwatched`).
    Watch {
        path: String,
        recursive: bool,
        exclude: Vec<String>,
    },
    /// → `Ok`.
    Unwatch { watch: u64 },

    /// → `SearchStarted`, then `SearchResults`, then terminal `SearchDone`.
    Search { query: SearchQuery },
    /// → `Ok`; the search then ends with `SearchDone`.
    CancelSearch { search: u64 },

    /// → `ProcSpawned`, then `ProcOutput`s, then terminal `ProcExit` after
    /// every byte of output.
    ProcSpawn {
        cmd: Vec<String>,
        cwd: Option<String>,
        env: BTreeMap<String, String>,
        pty: Option<PtySize>,
        framing: OutputFraming,
    },
    /// → `Ok`.
    ProcStdin { proc: u64, data: Bytes },
    /// → `Ok`.
    ProcCloseStdin { proc: u64 },
    /// `signal` is a name like `TERM`, `KILL`, `INT`, `HUP` (default `TERM`);
    /// delivered to the whole process group → `Ok`.
    ProcKill { proc: u64, signal: Option<String> },
    /// → `Ok`; `Unsupported` for a process without a PTY.
    ProcResize { proc: u64, size: PtySize },

    /// Lists the files under a root → `IndexStarted`, then `IndexPaths`
    /// pages, then terminal `IndexDone`.
    Index { query: IndexQuery },
    /// → `Ok`; the index then ends with `IndexDone`.
    CancelIndex { index: u64 },
    /// Opens a TCP connection from the server to `host:port` (default host
    /// `127.0.0.1`) → `TcpConnected`, then `TcpData` / `TcpEof`, then a
    /// terminal `TcpClosed`; a connection that cannot be made is a single
    /// `Error` (`ConnectionRefused`, `Unreachable`, `Timeout`, `NotFound`).
    /// The server sends at most `window` bytes of `TcpData` (default
    /// [`TCP_DEFAULT_WINDOW`], clamped to
    /// [`TCP_MIN_WINDOW`]..=[`TCP_MAX_WINDOW`]) that `TcpAck` has not
    /// acknowledged; it stops reading the socket until then.
    TcpConnect {
        host: Option<String>,
        port: u16,
        #[serde(default)]
        window: Option<u32>,
        /// Connect timeout in milliseconds (default 10 000).
        #[serde(default)]
        timeout_ms: Option<u32>,
    },
    /// Writes `data` (at most [`MAX_CHUNK`]) to the connection → `Ok` once
    /// it was written to the socket (writes happen in arrival order).
    TcpSend { conn: u64, data: Bytes },
    /// Half-closes: shuts the socket's write side down once everything sent
    /// before was written → `Ok`. `TcpData` keeps coming.
    TcpShutdown { conn: u64 },
    /// The client consumed `bytes` more bytes of the connection's `TcpData`
    /// (credit for the window) → `Ok`.
    TcpAck { conn: u64, bytes: u64 },
    /// Closes both directions now → `Ok`; the stream ends with `TcpClosed`.
    TcpClose { conn: u64 },
    /// Reports TCP ports that processes of this session (or their
    /// descendants) start listening on → `DetectingPorts`, then
    /// `PortsListening` for each newly seen listener, for the rest of the
    /// session. Looked for every `interval_ms` (default 1000, at least 200)
    /// while the session has live processes. One per session.
    DetectPorts {
        #[serde(default)]
        interval_ms: Option<u32>,
    },
}

/// What `Index` lists: the files (and symlinks, not followed) under `root`,
/// with the same walking rules as `Search`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexQuery {
    /// An existing directory.
    pub root: String,
    /// Include hidden files and directories (names starting with `.`).
    pub hidden: bool,
    /// Respect `.gitignore`, `.ignore`, `.git/info/exclude` and the global
    /// git excludes.
    pub gitignore: bool,
    /// Globs (relative to `root`) of paths to leave out; a glob without `/`
    /// also matches a path's last component.
    pub exclude: Vec<String>,
    /// Stop after this many paths (`IndexDone.truncated`).
    pub max_paths: Option<u64>,
    /// When non-empty, only these subtrees (paths relative to `root`, `/`
    /// separated) are listed, with the same ignore rules as a full walk:
    /// used to refresh an index after changes.
    #[serde(default)]
    pub only: Vec<String>,
}

/// Unacknowledged `TcpData` bytes a connection may have out when
/// `TcpConnect.window` is not given.
pub const TCP_DEFAULT_WINDOW: u32 = 1024 * 1024;
/// Smallest `TcpConnect.window` the server honours.
pub const TCP_MIN_WINDOW: u32 = 16 * 1024;
/// Largest `TcpConnect.window` the server honours.
pub const TCP_MAX_WINDOW: u32 = 16 * 1024 * 1024;

/// Kind of entry on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileType {
    File,
    Dir,
    Symlink,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub path: String,
    pub file_type: FileType,
    pub depth: u64,
}

/// A path that could not be read, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathError {
    pub path: String,
    pub message: String,
}

/// Size, modification time and etag of a file as read or written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub size: u64,
    /// Unix milliseconds.
    pub mtime: u64,
    /// Changes whenever the content or mtime changes.
    pub etag: String,
}

/// Metadata of one path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub file_type: FileType,
    pub size: u64,
    /// Unix milliseconds.
    pub mtime: u64,
    pub atime: Option<u64>,
    pub ctime: Option<u64>,
    pub readonly: bool,
    pub mode: Option<u32>,
    pub symlink_target: Option<String>,
    /// Lowercase hex, when asked for and the path is a file.
    pub sha256: Option<String>,
    /// The etag writes are checked against (files only).
    pub etag: Option<String>,
}

/// What happened to a watched path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Created,
    Modified,
    Deleted,
    Renamed,
    Attributes,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: String,
    /// New path of a rename, when known.
    pub to: Option<String>,
}

/// A search hit. `line` (1-based) and `text` are set for contents matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchMatch {
    pub path: String,
    pub line: Option<u64>,
    /// 1-based byte column of the first submatch.
    pub column: Option<u64>,
    pub text: Option<String>,
    pub submatches: Vec<Submatch>,
}

/// Byte range of a match within `text` (or within the path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submatch {
    pub start: u64,
    pub end: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Machine the server runs on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    pub os: String,
    pub family: String,
    pub arch: String,
    pub current_dir: String,
    pub separator: String,
    pub username: String,
    pub shell: String,
}

/// The server's version and what it can do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub server: String,
    pub protocol: (u16, u16),
    pub capabilities: Vec<String>,
}

/// Why an operation failed; mirrors the bridge API's `error.data.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    NotFound,
    PermissionDenied,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    /// A write precondition (etag) failed; nothing was written.
    Conflict,
    InvalidParams,
    Unsupported,
    Timeout,
    /// A per-session limit (processes, watches, handles) was reached.
    LimitExceeded,
    Other,
    /// A TCP connection was actively refused (nothing listens there).
    ConnectionRefused,
    /// The network or host cannot be reached.
    Unreachable,
}

/// A failed operation: what kind, and a sentence a person can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    pub message: String,
}

/// The answer to one [`Op`], or one element of a stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    Error(ErrorReply),
    Version(VersionInfo),
    SystemInfo(SystemInfo),

    FileChunk {
        offset: u64,
        data: Bytes,
    },
    /// Ends a `FileRead`: the stamp of the file as it was read.
    FileEnd(FileStamp),
    FileWritten(FileStamp),
    WriteHandle {
        handle: u64,
    },

    DirEntries {
        entries: Vec<DirEntry>,
        errors: Vec<PathError>,
    },
    Exists(bool),
    Metadata(Metadata),
    FoundUp(Option<String>),

    Watching {
        watch: u64,
    },
    Changes {
        watch: u64,
        changes: Vec<Change>,
    },
    /// Ends a watch stream (after `Unwatch`, or when the watch failed).
    Unwatched {
        watch: u64,
        error: Option<String>,
    },

    SearchStarted {
        search: u64,
    },
    SearchResults {
        search: u64,
        matches: Vec<SearchMatch>,
    },
    SearchDone {
        search: u64,
        truncated: bool,
        /// Stopped by `CancelSearch` before it finished: results are partial.
        #[serde(default)]
        cancelled: bool,
        error: Option<String>,
    },

    ProcSpawned {
        proc: u64,
        pid: u32,
    },
    ProcOutput {
        proc: u64,
        stream: OutputStream,
        data: Bytes,
    },
    ProcExit {
        proc: u64,
        code: Option<i32>,
        signal: Option<String>,
    },

    IndexStarted {
        index: u64,
    },
    /// A page of paths, relative to the root, `/` separated, in no order.
    IndexPaths {
        index: u64,
        paths: Vec<String>,
    },
    IndexDone {
        index: u64,
        /// Paths sent in all pages.
        count: u64,
        /// `max_paths` was reached: more paths exist.
        truncated: bool,
        /// Stopped by `CancelIndex` before it finished.
        cancelled: bool,
        error: Option<String>,
    },
    /// Opens a `TcpConnect` stream: the connection is made; `peer` is the
    /// address it reached (`"127.0.0.1:8000"`).
    TcpConnected {
        conn: u64,
        peer: String,
    },
    /// Bytes the remote service sent.
    TcpData {
        conn: u64,
        data: Bytes,
    },
    /// The remote service closed its sending side (after every `TcpData`).
    TcpEof {
        conn: u64,
    },
    /// Ends a `TcpConnect` stream: both directions are closed. `error` says
    /// why when it was not an orderly close (a reset, a failed write).
    TcpClosed {
        conn: u64,
        error: Option<ErrorReply>,
    },

    /// Opens a `DetectPorts` stream.
    DetectingPorts,
    /// Listeners a process of the session started since the last report.
    PortsListening {
        ports: Vec<ListeningPort>,
    },
}

/// A TCP listener found by `DetectPorts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListeningPort {
    pub port: u16,
    /// The address it is bound to (`"127.0.0.1"`, `"0.0.0.0"`, `"::"`).
    pub addr: String,
    /// The process holding the socket.
    pub pid: u32,
    /// Its command line, arguments joined by spaces (may be empty).
    pub command: String,
}

impl Reply {
    /// Builds an error reply.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Reply::Error(ErrorReply {
            kind,
            message: message.into(),
        })
    }

    /// True when no more replies will follow for the same origin: every
    /// reply except the opening and middle elements of a stream.
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            Reply::FileChunk { .. }
                | Reply::Watching { .. }
                | Reply::Changes { .. }
                | Reply::SearchStarted { .. }
                | Reply::SearchResults { .. }
                | Reply::ProcSpawned { .. }
                | Reply::ProcOutput { .. }
                | Reply::IndexStarted { .. }
                | Reply::IndexPaths { .. }
                | Reply::TcpConnected { .. }
                | Reply::TcpData { .. }
                | Reply::TcpEof { .. }
                | Reply::DetectingPorts
                | Reply::PortsListening { .. }
        )
    }
}

/// Capabilities this protocol version defines; a server lists those it
/// serves in [`VersionInfo::capabilities`].
pub const CAPABILITIES: &[&str] = &[
    "fs",
    "fs-chunked",
    "fs-etag",
    "fs-atomic",
    "find-up",
    "watch",
    "search",
    "proc",
    "pty",
    "lsp",
    "system-info",
    "index",
    "tcp",
    "detect-ports",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: &Message) {
        let bytes = m.encode().expect("encode");
        assert_eq!(&Message::decode(&bytes).expect("decode"), m);
    }

    #[test]
    fn requests_and_responses_round_trip() {
        round_trip(&Message::Request(Request {
            id: 7,
            payload: RequestPayload::Batch {
                ops: vec![
                    Op::Exists {
                        path: "/tmp".into(),
                    },
                    Op::FileWrite {
                        path: "/tmp/x".into(),
                        data: Bytes::from_static(b"\x00\xffbinary"),
                        options: WriteOptions::default(),
                    },
                ],
                sequential: true,
            },
        }));
        round_trip(&Message::Response(Response {
            id: 1,
            origin_id: 7,
            payload: ResponsePayload::Single(Reply::ProcOutput {
                proc: 3,
                stream: OutputStream::Stderr,
                data: Bytes::from_static(b"oops\n"),
            }),
        }));
    }

    #[test]
    fn binary_data_stays_binary_on_the_wire() {
        let data = vec![0xABu8; 4096];
        let m = Message::Request(Request {
            id: 1,
            payload: RequestPayload::Single(Op::ProcStdin {
                proc: 1,
                data: Bytes::from(data),
            }),
        });
        let bytes = m.encode().expect("encode");
        // msgpack bin32/bin16 header + raw bytes, not an array of integers.
        assert!(bytes.len() < 4096 + 64, "encoded {} bytes", bytes.len());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [&b""[..], b"\xc1", b"\x81\xa7Request\x80", &[0xff; 64]] {
            assert!(Message::decode(input).is_err());
        }
    }

    #[test]
    fn request_id_is_recovered_from_an_unknown_op() {
        // A request whose op this version does not know still yields its id.
        #[derive(Serialize)]
        enum FutureOp {
            Teleport { to: String },
        }
        #[derive(Serialize)]
        struct FutureRequest {
            id: u64,
            payload: FuturePayload,
        }
        #[derive(Serialize)]
        enum FuturePayload {
            Single(FutureOp),
        }
        #[derive(Serialize)]
        enum Envelope {
            Request(FutureRequest),
        }
        let bytes = rmp_serde::to_vec_named(&Envelope::Request(FutureRequest {
            id: 42,
            payload: FuturePayload::Single(FutureOp::Teleport { to: "mars".into() }),
        }))
        .expect("encode");
        assert!(Message::decode(&bytes).is_err());
        assert_eq!(Message::peek_request_id(&bytes), Some(42));
    }

    #[test]
    fn stream_openers_are_not_terminal() {
        assert!(!Reply::ProcSpawned { proc: 1, pid: 2 }.is_terminal());
        assert!(Reply::ProcExit {
            proc: 1,
            code: Some(0),
            signal: None
        }
        .is_terminal());
        assert!(Reply::Ok.is_terminal());
        assert!(!Reply::IndexStarted { index: 1 }.is_terminal());
        assert!(!Reply::IndexPaths {
            index: 1,
            paths: vec!["a".into()]
        }
        .is_terminal());
        assert!(Reply::IndexDone {
            index: 1,
            count: 1,
            truncated: false,
            cancelled: false,
            error: None
        }
        .is_terminal());
        assert!(Reply::SearchDone {
            search: 1,
            truncated: false,
            cancelled: false,
            error: None
        }
        .is_terminal());
    }
}

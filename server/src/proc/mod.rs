//! Processes of one session: spawning argv commands on pipes or a PTY, each
//! in its own process group; the bounded, ordered stdin queue; streaming
//! stdout/stderr as `ProcOutput` (raw chunks, or whole LSP messages with
//! [`OutputFraming::Lsp`]) followed by `ProcExit` strictly after the last
//! byte; signals to the whole group, PTY resize, and the kill-everything
//! cleanup when the session ends.

// Errors are the protocol's `Reply`, built once per request: boxing buys nothing.
#![allow(clippy::result_large_err)]

mod lsp;
mod pipes;
mod pty;

use crate::sync::lock;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use distant_protocol::msg::{ErrorKind, OutputFraming, OutputStream, PtySize, Reply, MAX_CHUNK};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

use crate::limits::Limits;
use crate::reply::ReplySink;

/// How long output readers keep going after the process itself exited while
/// nothing arrives: a background grandchild that inherited stdout must not
/// hold `ProcExit` back forever.
const ORPHAN_GRACE: Duration = Duration::from_millis(500);

/// How long [`Processes::shutdown`] waits after SIGTERM before SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Size of one read from a process's output (well under `MAX_CHUNK`).
const READ_CHUNK: usize = 64 * 1024;
const _: () = assert!(READ_CHUNK <= MAX_CHUNK);

/// Signals a client may send, by name (without the `SIG` prefix).
const SIGNALS: &[(&str, libc::c_int)] = &[
    ("TERM", libc::SIGTERM),
    ("KILL", libc::SIGKILL),
    ("INT", libc::SIGINT),
    ("HUP", libc::SIGHUP),
    ("QUIT", libc::SIGQUIT),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("STOP", libc::SIGSTOP),
    ("CONT", libc::SIGCONT),
    ("WINCH", libc::SIGWINCH),
    ("ALRM", libc::SIGALRM),
    ("ABRT", libc::SIGABRT),
    ("PIPE", libc::SIGPIPE),
    ("SEGV", libc::SIGSEGV),
];

/// Name (e.g. `TERM`) of a signal number, for `ProcExit`.
pub(crate) fn signal_name(sig: libc::c_int) -> String {
    SIGNALS
        .iter()
        .find(|(_, n)| *n == sig)
        .map(|(name, _)| (*name).to_string())
        .unwrap_or_else(|| format!("SIG{sig}"))
}

fn parse_signal(name: &str) -> Option<libc::c_int> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Ok(n) = bare.parse::<libc::c_int>() {
        return (1..=64).contains(&n).then_some(n);
    }
    SIGNALS.iter().find(|(s, _)| *s == bare).map(|(_, n)| *n)
}

/// The processes of one session.
pub struct Processes {
    shared: Arc<Shared>,
}

struct Shared {
    limits: Limits,
    table: Mutex<Table>,
    closing: AtomicBool,
}

#[derive(Default)]
struct Table {
    /// Last id handed out; ids start at 1.
    last_id: u64,
    /// Running processes plus spawns in progress (for the limit).
    active: usize,
    procs: HashMap<u64, Entry>,
    /// Processes that finished before `spawn` registered them.
    exited_early: HashSet<u64>,
}

struct Entry {
    /// Process id, which is also the process group id.
    pid: u32,
    stdin: Option<StdinQueue>,
    pty: Option<Arc<Mutex<Box<dyn portable_pty::MasterPty + Send>>>>,
}

/// The sending side of a process's stdin queue.
struct StdinQueue {
    tx: mpsc::UnboundedSender<StdinMsg>,
    /// Bytes queued and not yet written.
    queued: Arc<AtomicUsize>,
    /// Set once the process stopped reading (broken pipe).
    broken: Arc<AtomicBool>,
}

enum StdinMsg {
    Data(Bytes),
    Close,
}

/// What a spawn hands back to [`Processes`] to keep in its table.
struct Spawned {
    pid: u32,
    stdin: StdinQueue,
    pty: Option<Arc<Mutex<Box<dyn portable_pty::MasterPty + Send>>>>,
}

/// What the output and exit tasks of one process need.
#[derive(Clone)]
struct ProcCtx {
    id: u64,
    sink: ReplySink,
    shared: Arc<Shared>,
}

impl ProcCtx {
    /// Sends one reply; `false` when the session is gone.
    async fn send(&self, reply: Reply) -> bool {
        self.sink.send(reply).await
    }

    /// Forgets the process (it no longer counts against the limit).
    fn remove(&self) {
        let mut table = lock(&self.shared.table);
        if table.procs.remove(&self.id).is_some() {
            table.active = table.active.saturating_sub(1);
        } else {
            // `spawn` has not registered it yet; it will see this.
            table.exited_early.insert(self.id);
        }
    }
}

impl Processes {
    pub fn new(limits: Limits) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits,
                table: Mutex::new(Table::default()),
                closing: AtomicBool::new(false),
            }),
        }
    }

    /// Starts `cmd` (an argv, no shell). Returns `ProcSpawned` or an error;
    /// output and the final `ProcExit` then stream through `sink`.
    pub async fn spawn(
        &self,
        cmd: Vec<String>,
        cwd: Option<String>,
        env: BTreeMap<String, String>,
        pty: Option<PtySize>,
        framing: OutputFraming,
        sink: ReplySink,
    ) -> Reply {
        if self.shared.closing.load(Ordering::SeqCst) {
            return Reply::error(
                ErrorKind::Other,
                "the session is closing; no new process can be started",
            );
        }
        let Some(program) = cmd.first() else {
            return Reply::error(
                ErrorKind::InvalidParams,
                "cmd is empty: give the program to run followed by its arguments",
            );
        };
        if program.is_empty() {
            return Reply::error(ErrorKind::InvalidParams, "the program name in cmd is empty");
        }
        if cmd.iter().any(|a| a.contains('\0')) {
            return Reply::error(
                ErrorKind::InvalidParams,
                "cmd contains a NUL byte, which no program argument can hold",
            );
        }
        if env
            .iter()
            .any(|(k, v)| k.is_empty() || k.contains(['=', '\0']) || v.contains('\0'))
        {
            return Reply::error(
                ErrorKind::InvalidParams,
                "env has an invalid variable: names must be non-empty without '=' or NUL, values without NUL",
            );
        }
        let cwd = match cwd {
            Some(dir) => match std::fs::metadata(&dir) {
                Ok(m) if m.is_dir() => Some(PathBuf::from(dir)),
                Ok(_) => {
                    return Reply::error(
                        ErrorKind::NotADirectory,
                        format!("cannot use {dir} as the working directory: it is not a directory"),
                    )
                }
                Err(e) => {
                    return io_error(&e, &format!("cannot use {dir} as the working directory"))
                }
            },
            None => None,
        };

        // Reserve a slot and an id.
        let id = {
            let mut table = lock(&self.shared.table);
            let max = self.shared.limits.max_processes;
            if table.active >= max {
                return Reply::error(
                    ErrorKind::LimitExceeded,
                    format!(
                        "this session already runs {max} processes, the most allowed; \
                         wait for one to exit or kill one, or start the server with a \
                         higher --max-processes"
                    ),
                );
            }
            table.active += 1;
            table.last_id += 1;
            table.last_id
        };
        let ctx = ProcCtx {
            id,
            sink,
            shared: self.shared.clone(),
        };

        let result = match pty {
            None => pipes::spawn(&cmd, cwd.as_deref(), &env, framing, ctx.clone()),
            Some(size) => pty::spawn(&cmd, cwd.as_deref(), &env, size, framing, ctx.clone()),
        };
        match result {
            Ok(spawned) => {
                let pid = spawned.pid;
                let mut table = lock(&self.shared.table);
                if table.exited_early.remove(&id) {
                    table.active = table.active.saturating_sub(1);
                } else {
                    table.procs.insert(
                        id,
                        Entry {
                            pid,
                            stdin: Some(spawned.stdin),
                            pty: spawned.pty,
                        },
                    );
                }
                drop(table);
                tracing::debug!(proc = id, pid, cmd = ?cmd, "process started");
                Reply::ProcSpawned { proc: id, pid }
            }
            Err(reply) => {
                let mut table = lock(&self.shared.table);
                table.active = table.active.saturating_sub(1);
                reply
            }
        }
    }

    /// Queues `data` for the process's stdin (written in order).
    pub async fn stdin(&self, proc: u64, data: Bytes) -> Reply {
        let table = lock(&self.shared.table);
        let entry = match lookup(&table, proc) {
            Ok(e) => e,
            Err(reply) => return reply,
        };
        let Some(q) = &entry.stdin else {
            return Reply::error(
                ErrorKind::InvalidParams,
                format!("stdin of process {proc} is already closed"),
            );
        };
        if q.broken.load(Ordering::SeqCst) {
            return Reply::error(
                ErrorKind::Other,
                format!("process {proc} no longer reads its stdin (it closed it)"),
            );
        }
        if data.is_empty() {
            return Reply::Ok;
        }
        let max = self.shared.limits.max_stdin_buffer;
        let len = data.len();
        let fits = q
            .queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |queued| {
                (queued.saturating_add(len) <= max).then_some(queued + len)
            })
            .is_ok();
        if !fits {
            return Reply::error(
                ErrorKind::LimitExceeded,
                format!(
                    "stdin of process {proc} already holds {} unread bytes and the limit is {max}; \
                     wait for the process to read its input before sending more",
                    q.queued.load(Ordering::SeqCst)
                ),
            );
        }
        if q.tx.send(StdinMsg::Data(data)).is_err() {
            q.queued.fetch_sub(len, Ordering::SeqCst);
            return Reply::error(
                ErrorKind::Other,
                format!("process {proc} no longer reads its stdin (it closed it)"),
            );
        }
        Reply::Ok
    }

    /// Closes the process's stdin once everything queued has been written.
    pub async fn close_stdin(&self, proc: u64) -> Reply {
        let mut table = lock(&self.shared.table);
        let entry = match lookup_mut(&mut table, proc) {
            Ok(e) => e,
            Err(reply) => return reply,
        };
        if let Some(q) = entry.stdin.take() {
            let _ = q.tx.send(StdinMsg::Close);
        }
        Reply::Ok
    }

    /// Sends `signal` (default `TERM`) to the process's whole group.
    pub async fn kill(&self, proc: u64, signal: Option<String>) -> Reply {
        let name = signal.as_deref().unwrap_or("TERM");
        let Some(sig) = parse_signal(name) else {
            let known: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
            return Reply::error(
                ErrorKind::InvalidParams,
                format!("unknown signal {name:?}; use one of {}", known.join(", ")),
            );
        };
        let pid = {
            let table = lock(&self.shared.table);
            match lookup(&table, proc) {
                Ok(e) => e.pid,
                // Already exited: nothing left to signal.
                Err(_) if proc <= table.last_id && proc > 0 => return Reply::Ok,
                Err(reply) => return reply,
            }
        };
        match killpg(pid, sig) {
            Ok(()) => Reply::Ok,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Reply::Ok,
            Err(e) => io_error(&e, &format!("cannot signal process {proc}")),
        }
    }

    /// Changes the size of the process's PTY.
    pub async fn resize(&self, proc: u64, size: PtySize) -> Reply {
        if size.rows == 0 || size.cols == 0 {
            return Reply::error(
                ErrorKind::InvalidParams,
                "a PTY needs at least one row and one column",
            );
        }
        let master = {
            let table = lock(&self.shared.table);
            match lookup(&table, proc) {
                Ok(e) => match &e.pty {
                    Some(m) => m.clone(),
                    None => {
                        return Reply::error(
                            ErrorKind::Unsupported,
                            format!(
                                "process {proc} was not started on a PTY; only PTY processes can be resized"
                            ),
                        )
                    }
                },
                Err(reply) => return reply,
            }
        };
        let result = lock(&master).resize(portable_pty::PtySize {
            rows: size.rows,
            cols: size.cols,
            pixel_width: 0,
            pixel_height: 0,
        });
        match result {
            Ok(()) => Reply::Ok,
            Err(e) => Reply::error(
                ErrorKind::Other,
                format!("cannot resize the PTY of process {proc}: {e}"),
            ),
        }
    }

    /// The session ended: SIGTERM every process group, wait up to ~2 s,
    /// SIGKILL what is left, and wait for the exits to be collected.
    pub async fn shutdown(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        let pids = self.pids();
        if pids.is_empty() {
            return;
        }
        for &pid in &pids {
            let _ = killpg(pid, libc::SIGTERM);
        }
        if self.wait_empty(SHUTDOWN_GRACE).await {
            return;
        }
        let left = self.pids();
        tracing::info!(
            count = left.len(),
            "processes still running {SHUTDOWN_GRACE:?} after SIGTERM; sending SIGKILL"
        );
        for &pid in &left {
            let _ = killpg(pid, libc::SIGKILL);
        }
        if !self.wait_empty(Duration::from_secs(2)).await {
            tracing::warn!("some processes did not exit after SIGKILL");
        }
    }

    /// A handle listing the pids of the session's live processes, for work
    /// on other tasks (port detection).
    pub fn live_pids(&self) -> LivePids {
        LivePids(self.shared.clone())
    }

    fn pids(&self) -> Vec<u32> {
        lock(&self.shared.table)
            .procs
            .values()
            .map(|e| e.pid)
            .collect()
    }

    /// Waits until no process is left; `false` on timeout.
    async fn wait_empty(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if lock(&self.shared.table).procs.is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The pids of one session's live processes (see [`Processes::live_pids`]).
pub struct LivePids(Arc<Shared>);

impl LivePids {
    /// The pids running now (each the leader of its process group).
    pub fn get(&self) -> Vec<u32> {
        lock(&self.0.table).procs.values().map(|e| e.pid).collect()
    }
}

fn lookup(table: &Table, proc: u64) -> Result<&Entry, Reply> {
    match table.procs.get(&proc) {
        Some(e) => Ok(e),
        None => Err(missing(table, proc)),
    }
}

fn lookup_mut(table: &mut Table, proc: u64) -> Result<&mut Entry, Reply> {
    if !table.procs.contains_key(&proc) {
        return Err(missing(table, proc));
    }
    table.procs.get_mut(&proc).ok_or_else(|| {
        Reply::error(
            ErrorKind::InvalidParams,
            format!("no process {proc} in this session"),
        )
    })
}

fn missing(table: &Table, proc: u64) -> Reply {
    if proc > 0 && proc <= table.last_id {
        Reply::error(
            ErrorKind::InvalidParams,
            format!("process {proc} has already exited"),
        )
    } else {
        Reply::error(
            ErrorKind::InvalidParams,
            format!("no process {proc} in this session"),
        )
    }
}

fn killpg(pid: u32, sig: libc::c_int) -> std::io::Result<()> {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    };
    if pgid <= 1 {
        // Never signal our own group or everything.
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: killpg has no memory-safety preconditions.
    if unsafe { libc::killpg(pgid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// An error reply for an I/O failure, prefixed with what was being done.
fn io_error(e: &std::io::Error, what: &str) -> Reply {
    use std::io::ErrorKind as K;
    let (kind, why) = match e.kind() {
        K::NotFound => (ErrorKind::NotFound, "it does not exist".to_string()),
        K::PermissionDenied => (ErrorKind::PermissionDenied, "permission denied".to_string()),
        _ => (ErrorKind::Other, e.to_string()),
    };
    Reply::error(kind, format!("{what}: {why}"))
}

/// The error for a program that could not be started.
fn spawn_error(program: &str, e: &std::io::Error) -> Reply {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => Reply::error(
            ErrorKind::NotFound,
            format!("cannot run {program}: command not found"),
        ),
        K::PermissionDenied => Reply::error(
            ErrorKind::PermissionDenied,
            format!("cannot run {program}: permission denied (is it an executable file?)"),
        ),
        _ => Reply::error(ErrorKind::Other, format!("cannot run {program}: {e}")),
    }
}

/// Checks that `program` names an executable file, searching `PATH` (the
/// one in `env` if given) for a bare name, so both spawn modes fail alike.
fn resolve_program(
    program: &str,
    cwd: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<PathBuf, Reply> {
    use std::os::unix::fs::PermissionsExt;
    let check = |p: &Path| -> Result<PathBuf, std::io::Error> {
        let m = std::fs::metadata(p)?;
        if m.is_dir() || m.permissions().mode() & 0o111 == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        }
        Ok(p.to_path_buf())
    };
    if program.contains('/') {
        let path = match cwd {
            Some(dir) if !program.starts_with('/') => dir.join(program),
            _ => PathBuf::from(program),
        };
        return check(&path).map_err(|e| spawn_error(program, &e));
    }
    let path_var = env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_string());
    let mut denied = None;
    for dir in std::env::split_paths(&path_var) {
        let candidate = dir.join(program);
        match check(&candidate) {
            Ok(p) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => denied = Some(e),
            Err(_) => {}
        }
    }
    let e = denied.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound));
    Err(spawn_error(program, &e))
}

/// A receiver that completes [`ORPHAN_GRACE`] after the process exited.
async fn orphan_deadline(exited: &mut watch::Receiver<bool>) {
    let _ = exited.wait_for(|e| *e).await;
    tokio::time::sleep(ORPHAN_GRACE).await;
}

/// Turns raw output into `ProcOutput` replies (raw or LSP framed) and sends
/// them, waiting on the sink (backpressure). Once the session is gone the
/// output is still drained so the process never blocks on a full pipe.
struct OutputSender {
    ctx: ProcCtx,
    stream: OutputStream,
    framer: Option<lsp::LspFramer>,
    gone: bool,
}

impl OutputSender {
    fn new(ctx: ProcCtx, stream: OutputStream, framing: OutputFraming) -> Self {
        let framer = (stream == OutputStream::Stdout && framing == OutputFraming::Lsp)
            .then(lsp::LspFramer::default);
        Self {
            ctx,
            stream,
            framer,
            gone: false,
        }
    }

    async fn data(&mut self, data: Bytes) {
        if self.gone {
            return;
        }
        let chunks = match &mut self.framer {
            Some(f) => f.push(&data, self.ctx.id),
            None => vec![data],
        };
        for data in chunks {
            let ok = self
                .ctx
                .send(Reply::ProcOutput {
                    proc: self.ctx.id,
                    stream: self.stream,
                    data,
                })
                .await;
            if !ok {
                self.gone = true;
                return;
            }
        }
    }

    fn finish(&mut self) {
        if let Some(f) = &mut self.framer {
            f.finish(self.ctx.id);
        }
    }
}

/// Reads an async output pipe to its end (or until it is only held open by
/// orphans after the process exited) and sends it on.
async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    mut out: OutputSender,
    mut exited: watch::Receiver<bool>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            r = reader.read_buf(&mut buf) => r,
            _ = orphan_deadline(&mut exited) => {
                tracing::debug!(proc = out.ctx.id, "process exited but its output stays open (a background child?); no longer reading it");
                break;
            }
        };
        match read {
            Ok(0) => break,
            Ok(_) => {
                let data = buf.split().freeze();
                out.data(data).await;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(proc = out.ctx.id, "reading process output failed: {e}");
                break;
            }
        }
    }
    out.finish();
}

/// Exit status → (`code`, `signal`).
fn decode_wait_status(status: libc::c_int) -> (Option<i32>, Option<String>) {
    if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(signal_name(libc::WTERMSIG(status))))
    } else {
        (None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("sigkill"), Some(libc::SIGKILL));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("BOGUS"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(signal_name(libc::SIGINT), "INT");
    }
}

//! The manager: a daemon on a Unix socket that serves the bridge API to
//! every local client (editor bridges in `stdio` mode, CLI verbs, language
//! server proxies) from one shared [`Api`], so they all share one encrypted
//! connection per remote.
//!
//! # Files
//!
//! Everything lives in one private directory ([`ManagerPaths`]):
//! `$XDG_RUNTIME_DIR/distant/`; when `XDG_RUNTIME_DIR` is unset,
//! `$HOME/.local/state/distant/run/` (a place no other user can create
//! first, unlike a fixed name in `/tmp`); only without a usable `$HOME`
//! (unset, relative, or too long for a socket path) `/tmp/distant-<uid>/`.
//! The directory must be a real directory (not a symlink) owned by us with
//! mode `0700`; anything else is refused, with advice that fits (`chmod
//! 700` only for our own directory). In it:
//!
//! - `manager.sock`: the socket, created with mode `0600` (the umask is
//!   `0o177` around `bind`; it is never `chmod`ed afterwards);
//! - `manager.lock`: held (`flock`) by the live manager for its whole life,
//!   so two managers never serve one socket and a crashed manager's socket is
//!   recognisably stale (the kernel drops the lock when the process dies);
//! - `manager.pid`: the live manager's pid;
//! - `manager.log`: stderr of a manager started on demand.
//!
//! # Lifecycle
//!
//! Clients call [`connect_or_start`]: connect to the socket, or start
//! `distant-bridge manager --foreground` detached (`setsid`, output to the
//! log) and wait up to [`START_TIMEOUT`] for the socket. While serving, the
//! manager closes connections no attached client has used for the idle
//! timeout ([`Api::close_unused`]). It ([`bind`] then [`serve`]) exits
//! after it has been idle (no peers, no
//! server connections) for the idle timeout, on `SIGTERM`/`SIGINT`, or when
//! its socket file is removed or replaced (it could never be reached again).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UnixStream;

use crate::api::Api;

/// How long a client waits for a manager it started to open its socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle timeout of a manager started on demand, unless
/// `DISTANT_BRIDGE_MANAGER_IDLE_EXIT` (seconds) says otherwise.
pub const DEFAULT_IDLE_EXIT: Duration = Duration::from_secs(600);

/// Environment variable: idle timeout (seconds) given to managers started on
/// demand; `0` = never exit when idle.
pub const IDLE_EXIT_ENV: &str = "DISTANT_BRIDGE_MANAGER_IDLE_EXIT";

/// The log file is truncated when a manager is started and it is larger than
/// this.
const MAX_LOG_BYTES: u64 = 1024 * 1024;

/// Why the manager could not be reached or started.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// No runtime directory could be determined.
    #[error("cannot find a directory for the manager socket: {0}")]
    NoDir(String),
    /// The directory exists but others can read or enter it, or it is not
    /// ours.
    #[error(
        "{dir} is not private ({why}); the manager socket must live in a directory only you \
         can access: {advice}"
    )]
    NotPrivate {
        /// The directory.
        dir: String,
        /// What is wrong with it.
        why: String,
        /// What to do about it.
        advice: String,
    },
    /// Another manager holds the lock and answers on the socket.
    #[error("a manager is already running{} on {socket}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning {
        /// Its pid, when the pid file says.
        pid: Option<u32>,
        /// The socket.
        socket: String,
    },
    /// The manager did not come up.
    #[error("the manager did not start: {0}")]
    StartFailed(String),
    /// I/O error, with what we were doing.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ManagerError {
    let what = what.into();
    move |source| ManagerError::Io { what, source }
}

/// The manager's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerPaths {
    /// The private directory holding everything below.
    pub dir: PathBuf,
    /// The Unix socket.
    pub socket: PathBuf,
    /// The lock the live manager holds.
    pub lock: PathBuf,
    /// The live manager's pid.
    pub pid: PathBuf,
    /// Output of managers started on demand.
    pub log: PathBuf,
}

impl ManagerPaths {
    /// The default location: `$XDG_RUNTIME_DIR/distant/manager.sock`,
    /// else `$HOME/.local/state/distant/run/manager.sock`, else
    /// `/tmp/distant-<uid>/manager.sock` (module docs).
    pub fn default_location() -> Result<Self, ManagerError> {
        let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
        let home = std::env::var_os("HOME").filter(|d| !d.is_empty());
        Ok(Self::for_socket(
            default_dir(xdg.as_deref(), home.as_deref(), current_uid()).join("manager.sock"),
        ))
    }

    /// `--socket PATH`, or the default location.
    pub fn resolve(socket: Option<&Path>) -> Result<Self, ManagerError> {
        match socket {
            Some(s) => {
                let s = if s.is_absolute() {
                    s.to_path_buf()
                } else {
                    std::env::current_dir()
                        .map_err(io_err("cannot read the current directory"))?
                        .join(s)
                };
                Ok(Self::for_socket(s))
            }
            None => Self::default_location(),
        }
    }

    /// The files that go with `socket`: `NAME.sock` → `NAME.lock`,
    /// `NAME.pid`, `NAME.log` in the same directory.
    pub fn for_socket(socket: PathBuf) -> Self {
        let dir = socket
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let stem = socket
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "manager".into());
        Self {
            lock: dir.join(format!("{stem}.lock")),
            pid: dir.join(format!("{stem}.pid")),
            log: dir.join(format!("{stem}.log")),
            dir,
            socket,
        }
    }

    /// The pid in the pid file, if any.
    pub fn read_pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid).ok()?.trim().parse().ok()
    }
}

/// Longest socket path used (`sun_path` holds 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 100;

/// The manager's directory for these `XDG_RUNTIME_DIR`, `HOME` and uid.
fn default_dir(xdg: Option<&std::ffi::OsStr>, home: Option<&std::ffi::OsStr>, uid: u32) -> PathBuf {
    if let Some(d) = xdg {
        return PathBuf::from(d).join("distant");
    }
    if let Some(h) = home.map(PathBuf::from).filter(|h| h.is_absolute()) {
        let dir = h.join(".local/state/distant/run");
        if dir.join("manager.sock").as_os_str().len() <= MAX_SOCKET_PATH {
            tracing::debug!(
                "XDG_RUNTIME_DIR is unset; the manager lives in {}",
                dir.display()
            );
            return dir;
        }
    }
    PathBuf::from(format!("/tmp/distant-{uid}"))
}

fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `dir` with mode 0700 if it is missing; otherwise checks that it
/// is a directory (not a symlink) owned by us that nobody else can access.
pub fn ensure_private_dir(dir: &Path) -> Result<(), ManagerError> {
    // The parents of a directory under $HOME (~/.local/state/distant) are
    // the user's own; create them as ssh and others do.
    if let Some(parent) = dir
        .parent()
        .filter(|p| std::env::var_os("HOME").is_some_and(|h| !h.is_empty() && p.starts_with(&h)))
    {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err(format!("cannot create {}", parent.display())))?;
        }
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ManagerError::NoDir(format!(
                "the parent of {} does not exist (is XDG_RUNTIME_DIR set correctly?)",
                dir.display()
            )))
        }
        Err(e) => return Err(io_err(format!("cannot create {}", dir.display()))(e)),
    }
    let meta = std::fs::symlink_metadata(dir)
        .map_err(io_err(format!("cannot inspect {}", dir.display())))?;
    // Someone else's directory or link (e.g. pre-created in /tmp) can be
    // neither trusted nor fixed by us: go elsewhere.
    let elsewhere = "set XDG_RUNTIME_DIR (or HOME) to a directory of yours, or pass --socket \
                     PATH with PATH in a directory only you can access (mode 0700)";
    let not_private = |why: String, advice: String| ManagerError::NotPrivate {
        dir: dir.display().to_string(),
        why,
        advice,
    };
    if meta.file_type().is_symlink() {
        let owner = if meta.uid() == current_uid() {
            format!("remove the link (`rm {}`), or {elsewhere}", dir.display())
        } else {
            format!("another user (uid {}) made it; {elsewhere}", meta.uid())
        };
        return Err(not_private("it is a symbolic link".into(), owner));
    }
    if meta.uid() != current_uid() {
        return Err(not_private(
            format!(
                "it is owned by uid {}, not by you (uid {})",
                meta.uid(),
                current_uid()
            ),
            format!("another user made it, so it cannot be trusted; {elsewhere}"),
        ));
    }
    if !meta.is_dir() {
        return Err(not_private(
            "it is not a directory".into(),
            format!("remove it (`rm {}`), or {elsewhere}", dir.display()),
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(not_private(
            format!("its mode is {mode:04o}, not 0700"),
            format!("fix it with `chmod 700 {}`, or {elsewhere}", dir.display()),
        ));
    }
    Ok(())
}

/// A bound, locked manager socket, ready for [`serve`].
pub struct Bound {
    listener: std::os::unix::net::UnixListener,
    lock: File,
    paths: ManagerPaths,
    inode: u64,
}

impl Bound {
    /// The files in use.
    pub fn paths(&self) -> &ManagerPaths {
        &self.paths
    }
}

fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a valid, open descriptor.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Takes the manager lock, replaces a stale socket and binds a new one with
/// mode 0600. Synchronous: call it before starting the async runtime, since
/// it changes the process umask for the duration of `bind`.
///
/// When the lock is taken, retries for two seconds (a client's liveness
/// probe holds it for an instant; a manager may be shutting down), then
/// returns [`ManagerError::AlreadyRunning`].
pub fn bind(paths: &ManagerPaths) -> Result<Bound, ManagerError> {
    ensure_private_dir(&paths.dir)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&paths.lock)
        .map_err(io_err(format!("cannot open {}", paths.lock.display())))?;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if try_lock(&lock).map_err(io_err(format!("cannot lock {}", paths.lock.display())))? {
            break;
        }
        // Not "a listener answers, so give up": clients probe the lock for
        // an instant, and a killed manager's listener can still answer.
        if Instant::now() >= deadline {
            return Err(ManagerError::AlreadyRunning {
                pid: paths.read_pid(),
                socket: paths.socket.display().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // We hold the lock, so no live manager owns an existing socket file.
    if std::fs::symlink_metadata(&paths.socket).is_ok() {
        // A killed manager's listener can accept for a moment after its lock
        // is released: give it a second to go away.
        let grace = Instant::now() + Duration::from_secs(1);
        while std::os::unix::net::UnixStream::connect(&paths.socket).is_ok()
            && Instant::now() < grace
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        if std::os::unix::net::UnixStream::connect(&paths.socket).is_ok() {
            return Err(ManagerError::StartFailed(format!(
                "something that does not hold {} is listening on {}; stop it or remove the socket",
                paths.lock.display(),
                paths.socket.display()
            )));
        }
        tracing::info!("removing stale socket {}", paths.socket.display());
        std::fs::remove_file(&paths.socket).map_err(io_err(format!(
            "cannot remove stale {}",
            paths.socket.display()
        )))?;
    }

    // The pid file goes first: whoever can connect can also read it.
    let mut pid = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&paths.pid)
        .map_err(io_err(format!("cannot write {}", paths.pid.display())))?;
    writeln!(pid, "{}", std::process::id())
        .map_err(io_err(format!("cannot write {}", paths.pid.display())))?;

    // SAFETY: umask only swaps the process file-mode mask.
    let old = unsafe { libc::umask(0o177) };
    let bound = std::os::unix::net::UnixListener::bind(&paths.socket);
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|e| {
        let _ = std::fs::remove_file(&paths.pid);
        io_err(format!("cannot bind {}", paths.socket.display()))(e)
    })?;
    let inode = std::fs::symlink_metadata(&paths.socket)
        .map_err(io_err(format!("cannot inspect {}", paths.socket.display())))?
        .ino();

    Ok(Bound {
        listener,
        lock,
        paths: paths.clone(),
        inode,
    })
}

/// Why [`serve`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeExit {
    /// Idle for the idle timeout.
    Idle,
    /// `SIGTERM` or `SIGINT`.
    Signal,
    /// The socket file was removed or replaced.
    SocketGone,
}

/// Serves the API on the bound socket until idle for `idle_exit` (`None` =
/// never), a signal, or the socket file disappearing. On the way out the
/// socket and pid file are removed (while the lock is still held), then
/// connections already queued on the socket are still served to their end.
pub async fn serve(
    bound: Bound,
    api: Arc<Api>,
    idle_exit: Option<Duration>,
) -> Result<ServeExit, ManagerError> {
    let Bound {
        listener,
        lock,
        paths,
        inode,
    } = bound;
    listener
        .set_nonblocking(true)
        .map_err(io_err("cannot configure the socket"))?;
    let listener =
        tokio::net::UnixListener::from_std(listener).map_err(io_err("cannot use the socket"))?;
    let active = Arc::new(AtomicUsize::new(0));
    let tick_every = idle_exit
        .map(|d| (d / 4).clamp(Duration::from_millis(20), Duration::from_millis(500)))
        .unwrap_or(Duration::from_millis(500));
    let mut tick = tokio::time::interval(tick_every);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io_err("cannot install a SIGTERM handler"))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(io_err("cannot install a SIGINT handler"))?;
    let mut idle_since = Instant::now();
    tracing::info!(
        "manager (pid {}) listening on {}",
        std::process::id(),
        paths.socket.display()
    );

    let why = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => spawn_peer(&api, &active, stream),
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = tick.tick() => {
                if let Some(linger) = idle_exit {
                    api.close_unused(linger);
                }
                let busy = active.load(Ordering::SeqCst) > 0
                    || api.peer_count() > 0
                    || api.connection_count() > 0;
                if busy {
                    idle_since = Instant::now();
                } else if idle_exit.is_some_and(|d| idle_since.elapsed() >= d) {
                    break ServeExit::Idle;
                }
                match std::fs::symlink_metadata(&paths.socket) {
                    Ok(m) if m.ino() == inode => {}
                    _ => break ServeExit::SocketGone,
                }
            }
            _ = term.recv() => break ServeExit::Signal,
            _ = int.recv() => break ServeExit::Signal,
        }
    };
    tracing::info!("manager exiting: {why:?}");

    if why != ServeExit::SocketGone {
        let _ = std::fs::remove_file(&paths.socket);
    }
    if paths.read_pid() == Some(std::process::id()) {
        let _ = std::fs::remove_file(&paths.pid);
    }
    drop(lock);

    if why != ServeExit::Signal {
        // Clients that connected just before the socket was removed are in
        // the backlog: serve them rather than drop them.
        while let Ok(Ok((stream, _))) =
            tokio::time::timeout(Duration::from_millis(10), listener.accept()).await
        {
            spawn_peer(&api, &active, stream);
        }
        while active.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(why)
}

fn spawn_peer(api: &Arc<Api>, active: &Arc<AtomicUsize>, stream: UnixStream) {
    active.fetch_add(1, Ordering::SeqCst);
    let api = api.clone();
    let active = active.clone();
    tokio::spawn(async move {
        let (reader, writer) = stream.into_split();
        let end = api.serve(reader, writer).await;
        tracing::debug!("peer finished: {end:?}");
        active.fetch_sub(1, Ordering::SeqCst);
    });
}

/// How to start a manager on demand.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// The `distant-bridge` executable; default: this one.
    pub exe: Option<PathBuf>,
    /// Passed on as `--server-binary`.
    pub server_binary: Option<PathBuf>,
    /// Idle timeout; default: [`IDLE_EXIT_ENV`], else [`DEFAULT_IDLE_EXIT`].
    pub idle_exit: Option<Duration>,
}

/// The idle timeout for a manager started on demand.
pub fn on_demand_idle_exit() -> Duration {
    std::env::var(IDLE_EXIT_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_IDLE_EXIT)
}

/// Connects to the manager, starting one if none answers.
pub async fn connect_or_start(
    paths: &ManagerPaths,
    options: &StartOptions,
) -> Result<UnixStream, ManagerError> {
    ensure_private_dir(&paths.dir)?;
    // A listener whose manager does not hold the lock is dying (a killed
    // manager's socket can still accept for a moment): start a new one.
    if let Some(stream) = connect_live(paths).await {
        return Ok(stream);
    }
    tracing::info!("no manager on {}; starting one", paths.socket.display());
    let exited = start_detached(paths, options)?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(stream) = connect_live(paths).await {
            return Ok(stream);
        }
        if let Ok(status) = exited.try_recv() {
            // Exit 0 = another manager won the race: keep trying to connect.
            if !status.success() {
                return Err(ManagerError::StartFailed(format!(
                    "it exited with {status}; {}",
                    log_tail(&paths.log)
                )));
            }
        }
        if Instant::now() >= deadline {
            return Err(ManagerError::StartFailed(format!(
                "no socket at {} after {} s; {}",
                paths.socket.display(),
                START_TIMEOUT.as_secs(),
                log_tail(&paths.log)
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connects to the socket if a live manager (one holding the lock) serves it.
async fn connect_live(paths: &ManagerPaths) -> Option<UnixStream> {
    let stream = UnixStream::connect(&paths.socket).await.ok()?;
    manager_alive(paths).then_some(stream)
}

/// Starts `distant-bridge manager --foreground` in its own session with its
/// output going to the log file. Returns a channel that gets its exit status
/// (a thread reaps it, so it never lingers as a zombie).
pub fn start_detached(
    paths: &ManagerPaths,
    options: &StartOptions,
) -> Result<std::sync::mpsc::Receiver<std::process::ExitStatus>, ManagerError> {
    let exe = match &options.exe {
        Some(e) => e.clone(),
        None => std::env::current_exe().map_err(io_err("cannot find this executable"))?,
    };
    let log = open_log(&paths.log)?;
    let log2 = log
        .try_clone()
        .map_err(io_err(format!("cannot use {}", paths.log.display())))?;
    let idle = options.idle_exit.unwrap_or_else(on_demand_idle_exit);
    let mut cmd = Command::new(&exe);
    cmd.arg("manager")
        .arg("--foreground")
        .arg("--socket")
        .arg(&paths.socket)
        .arg("--idle-exit")
        .arg(idle.as_secs().to_string());
    if let Some(server) = &options.server_binary {
        cmd.arg("--server-binary").arg(server);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    // SAFETY: setsid is async-signal-safe; it detaches the manager from our
    // session and terminal so it outlives us and our terminal's signals.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(io_err(format!("cannot run {}", exe.display())))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            let _ = tx.send(status);
        }
    });
    Ok(rx)
}

fn open_log(path: &Path) -> Result<File, ManagerError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(format!("cannot open {}", path.display())))?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) > MAX_LOG_BYTES {
        let _ = file.set_len(0);
    }
    Ok(file)
}

/// The last lines of the log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(2048)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        text = String::from_utf8_lossy(&buf).into_owned();
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n  ");
    if tail.is_empty() {
        format!("see {}", path.display())
    } else {
        format!("its log ({}) ends with:\n  {tail}", path.display())
    }
}

/// Whether a live manager holds the lock of `paths` (probe: try to take
/// the lock; release it at once).
pub fn manager_alive(paths: &ManagerPaths) -> bool {
    let Ok(file) = OpenOptions::new().read(true).open(&paths.lock) else {
        return false;
    };
    !matches!(try_lock(&file), Ok(true))
}

//! `distant-server daemon`: the per-user server of ssh mode.
//!
//! One daemon per user (per [`RunDir`]) listens on a Unix socket in a
//! private directory and serves the full protocol — XChaCha20 encryption,
//! `static_key` authentication, resumable sessions — to clients whose
//! bytes arrive through `distant-server proxy` relays. No TCP port is
//! opened. Because the daemon outlives any one ssh connection, a client
//! whose ssh dropped re-runs ssh, gets a new proxy, and resumes its session
//! with processes and watches intact.
//!
//! Start-up, in order (everything before the fork reports errors on
//! stderr; after it, to `daemon.log`):
//!
//! 1. create or check the 0700 directory;
//! 2. take an exclusive `flock` on `daemon.lock`; while another process
//!    holds it, wait briefly, and exit 0 quietly once its socket answers —
//!    so two proxies racing to start a daemon are harmless;
//! 3. a socket file that answers `connect()` means a live daemon: exit 0
//!    quietly; one that refuses is stale and is removed;
//! 4. load or create the key (`server.key`, 0600);
//! 5. bind the socket with umask 0o177, so it is 0600 from creation (never
//!    chmod'ed afterwards);
//! 6. with `--detach`, fork: the parent exits 0 only now, so whoever
//!    started it can connect as soon as it returns;
//! 7. serve until no session has existed for `--idle-exit` seconds, then
//!    remove the socket and exit.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::rundir::{RunDir, LOCK, LOG, PID};
use super::ServeArgs;

/// How long a starting daemon waits for another one holding the lock.
const LOCK_WAIT: Duration = Duration::from_secs(4);
/// How often the idle timer looks at the session count.
const IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Args, Clone, Debug)]
pub struct DaemonArgs {
    /// Socket path. Default: $XDG_RUNTIME_DIR/distant/server.sock, else
    /// ~/.local/state/distant/run/server.sock. Its directory must be private.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Exit after this many seconds without any session (0 = never).
    #[arg(long, default_value_t = 3600)]
    pub idle_exit: u64,
    /// Fork into the background once the socket is ready (what `proxy` uses).
    #[arg(long)]
    pub detach: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Runs the daemon; `Ok` also when another daemon already serves.
pub fn run(args: DaemonArgs) -> Result<(), String> {
    let run = RunDir::locate(args.socket.as_deref())?;
    run.ensure_private()?;

    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(run.file(LOCK))
        .map_err(|e| format!("cannot open {}: {e}", run.file(LOCK).display()))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(format!("cannot lock {}: {err}", run.file(LOCK).display()));
        }
        // Another daemon is starting or running: done once it answers.
        if socket_is_live(&run) || Instant::now() >= deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    if run.socket.exists() || std::fs::symlink_metadata(&run.socket).is_ok() {
        if socket_is_live(&run) {
            return Ok(());
        }
        std::fs::remove_file(&run.socket).map_err(|e| {
            format!(
                "cannot remove the stale socket {}: {e}",
                run.socket.display()
            )
        })?;
    }
    let key = run.load_key(true)?;

    // SAFETY: umask only changes this process's file-creation mask; no
    // other thread exists yet to create files meanwhile.
    let old = unsafe { libc::umask(0o177) };
    let bound = std::os::unix::net::UnixListener::bind(&run.socket);
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|e| format!("cannot listen on {}: {e}", run.socket.display()))?;

    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(run.file(LOG))
        .map_err(|e| format!("cannot open the log {}: {e}", run.file(LOG).display()))?;

    if args.detach {
        super::daemonize()?;
    }
    let pid = std::process::id();
    let _ = std::fs::File::create(run.file(PID)).and_then(|mut f| writeln!(f, "{pid}"));
    super::init_file_logging(log);
    tracing::info!(pid, socket = %run.socket.display(), "daemon listening");
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot configure the listener: {e}"))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(async move {
        let listener = tokio::net::UnixListener::from_std(listener)
            .map_err(|e| format!("cannot configure the listener: {e}"))?;
        let server = super::start_server(&args.serve, key);
        let serving = server.clone();
        let serve = async move { serving.serve_unix(listener).await };
        let idle = idle_exit(&server, args.idle_exit);
        tokio::select! {
            r = serve => r.map_err(|e| format!("serving failed: {e}")),
            () = idle => Ok(()),
        }
    });
    // Remove the socket while still holding the lock, so a new daemon
    // never sees ours half gone.
    let _ = std::fs::remove_file(&run.socket);
    let _ = std::fs::remove_file(run.file(PID));
    tracing::info!("daemon exiting");
    drop(lock);
    // Sessions' tasks may still hold blocking threads; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

/// Completes once the server has had no session for `secs` seconds.
async fn idle_exit(server: &distant_protocol::driver::server::Server, secs: u64) {
    if secs == 0 {
        return std::future::pending().await;
    }
    let limit = Duration::from_secs(secs);
    let mut idle_since = Instant::now();
    loop {
        tokio::time::sleep(IDLE_CHECK.min(limit)).await;
        if server.session_count() > 0 {
            idle_since = Instant::now();
        } else if idle_since.elapsed() >= limit {
            tracing::info!("no session for {secs} s; exiting");
            return;
        }
    }
}

/// True when something accepts connections on the socket.
pub fn socket_is_live(run: &RunDir) -> bool {
    std::os::unix::net::UnixStream::connect(&run.socket).is_ok()
}

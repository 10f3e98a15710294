//! The command line's pieces that more than one subcommand shares: the
//! serving options (limits, grace period), logging setup, and the loop that
//! hands each authenticated session to [`distant_server::run_session`].
//!
//! - [`rundir`]: the private per-user directory of the ssh-mode daemon
//!   (socket, key, lock, log), created and checked with strict permissions.
//! - [`env`]: the environment kept for the server and its children (the
//!   key removed at start, per-login variables dropped in the daemon).
//! - [`daemon`]: `distant-server daemon`, the per-user server on a Unix socket.
//! - [`proxy`]: `distant-server proxy`, what ssh runs: relays stdio to the
//!   daemon, starting it when absent.

pub mod daemon;
pub mod env;
pub mod proxy;
pub mod rundir;

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use distant_protocol::auth::StaticKey;
use distant_protocol::driver::server::{NewSession, Server, ServerOptions};
use distant_protocol::handshake::ServerConfig;
use distant_server::limits::Limits;
use tokio::sync::mpsc;

/// Capacity of each session's request and response channels. A response
/// can be a whole file chunk (up to 1 MiB), and there is one typed and one
/// encoded channel per direction, so this bounds the memory one streaming
/// session holds outside the replay backup: the driver's default (256)
/// lets a fast file read park half a gigabyte in channels.
const CHANNEL_CAPACITY: usize = 16;

/// Options of a serving process (`listen` and `daemon`).
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Seconds a disconnected session (its processes, watches, unsent
    /// output) is kept for its client to come back.
    #[arg(long, default_value_t = 600)]
    pub session_ttl: u64,
    /// Sessions alive at once.
    #[arg(long, default_value_t = 64)]
    pub max_sessions: usize,
    /// Connections still authenticating at once; beyond it the oldest is
    /// closed to admit a new one.
    #[arg(long, default_value_t = 64)]
    pub max_unauthenticated: usize,
    /// Of those, from one source address; beyond it that source's oldest is
    /// closed.
    #[arg(long, default_value_t = 16)]
    pub max_unauthenticated_per_source: usize,
    /// Processes per session.
    #[arg(long, default_value_t = Limits::default().max_processes)]
    pub max_processes: usize,
    /// Watches per session.
    #[arg(long, default_value_t = Limits::default().max_watches)]
    pub max_watches: usize,
    /// Searches running at once per session.
    #[arg(long, default_value_t = Limits::default().max_searches)]
    pub max_searches: usize,
}

impl ServeArgs {
    /// The protocol driver's options for a server authenticating with `key`.
    pub fn server_options(&self, key: StaticKey) -> ServerOptions {
        let config = ServerConfig {
            static_key: Some(key),
            ..ServerConfig::default()
        };
        let mut options = ServerOptions::new(config);
        options.session_ttl = Duration::from_secs(self.session_ttl);
        options.max_sessions = self.max_sessions;
        options.max_unauthenticated = self.max_unauthenticated.max(1);
        options.max_unauthenticated_per_source = self.max_unauthenticated_per_source.max(1);
        options.channel_capacity = CHANNEL_CAPACITY;
        options
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_processes: self.max_processes,
            max_watches: self.max_watches,
            max_searches: self.max_searches,
            ..Limits::default()
        }
    }
}

/// Starts the server and the task that runs every new session; returns the
/// server, ready for `serve_tcp` / `serve_unix`.
pub fn start_server(args: &ServeArgs, key: StaticKey) -> Server {
    let (server, sessions) = Server::new(args.server_options(key));
    tokio::spawn(run_sessions(sessions, args.limits()));
    server
}

async fn run_sessions(mut sessions: mpsc::Receiver<NewSession>, limits: Limits) {
    let limits = Arc::new(limits);
    while let Some(session) = sessions.recv().await {
        tracing::info!(id = %session.id, "serving a new session");
        tokio::spawn(distant_server::session::run_session(
            session.requests,
            session.responses,
            (*limits).clone(),
        ));
    }
}

fn env_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// Logs to stderr (`RUST_LOG` respected, default `info`).
pub fn init_stderr_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Logs to an already opened file (`RUST_LOG` respected, default `info`).
pub fn init_file_logging(file: std::fs::File) {
    tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .init();
}

/// Detaches from the terminal: fork, let the parent exit with status 0,
/// start a new session, and point stdio at /dev/null. Must run before any
/// thread exists. Open file descriptors (a bound listener, a held `flock`)
/// carry over to the child.
pub fn daemonize() -> Result<(), String> {
    // SAFETY: called before the tokio runtime or any other thread starts, so
    // the child is a faithful single-threaded copy.
    match unsafe { libc::fork() } {
        -1 => return Err(format!("cannot fork: {}", std::io::Error::last_os_error())),
        0 => {}
        // `_exit`: the parent must not run destructors or flush buffers
        // that now belong to the child too.
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: plain syscalls on our own process.
    unsafe {
        libc::setsid();
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if devnull >= 0 {
            libc::dup2(devnull, 0);
            libc::dup2(devnull, 1);
            libc::dup2(devnull, 2);
            if devnull > 2 {
                libc::close(devnull);
            }
        }
    }
    Ok(())
}

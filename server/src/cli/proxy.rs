//! `distant-server proxy`: the remote end of the ssh transport.
//!
//! The bridge runs `ssh HOST distant-server proxy`. The proxy connects to
//! the user's daemon (see [`super::daemon`]) on its private Unix socket,
//! starting it when none answers, and then:
//!
//! 1. writes exactly one line to stdout, `DISTANT-PROXY 1 key=<64 hex>\n`:
//!    the protocol version of this greeting and the daemon's static key,
//!    read from its 0600 key file;
//! 2. relays stdin → socket and socket → stdout byte for byte. On stdin
//!    EOF the socket's write half is shut down; when the socket closes the
//!    proxy exits.
//!
//! **Why the key travels in the greeting.** The key is printed only to
//! stdout, which here is ssh's channel to the bridge: encrypted and bound
//! to a login the user already authenticated as this very account, i.e. to
//! someone who could read the 0600 key file anyway. It never appears in
//! argv, the environment, logs or error messages. The distant protocol
//! still runs end to end over the relay — the bridge authenticates to the
//! daemon with the key (never sending it) and encrypts with XChaCha20 — so
//! the proxy itself sees only ciphertext. PROTOCOL.md §6 describes it.
//!
//! Exit status: 0 when the relay ends normally; 2, with a message on
//! stderr, when the daemon cannot be reached or started; 1 for other
//! errors (an unsafe directory, for instance).

use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::unix::io::FromRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use super::rundir::{RunDir, LOG};

/// How long to wait for a daemon we started to answer.
const START_WAIT: Duration = Duration::from_secs(5);
/// Relay buffer size.
const BUF: usize = 64 * 1024;

#[derive(Args, Clone, Debug)]
pub struct ProxyArgs {
    /// The daemon's socket (default as for `daemon`).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// `--idle-exit` for a daemon this proxy starts.
    #[arg(long)]
    pub idle_exit: Option<u64>,
    /// `--session-ttl` for a daemon this proxy starts.
    #[arg(long)]
    pub session_ttl: Option<u64>,
}

/// How the proxy failed, mapped to its exit status.
pub enum ProxyError {
    /// The daemon could not be reached or started (exit 2).
    Daemon(String),
    /// Anything else (exit 1).
    Other(String),
}

pub fn run(args: ProxyArgs) -> Result<(), ProxyError> {
    let run = RunDir::locate(args.socket.as_deref()).map_err(ProxyError::Other)?;
    run.ensure_private().map_err(ProxyError::Other)?;
    let socket = connect_or_start(&run, &args)?;
    let key = run.load_key(false).map_err(ProxyError::Daemon)?;

    // stdout without Rust's line buffering; not closed on drop.
    // SAFETY: fd 1 is open for the life of the process.
    let mut stdout = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
    let greeting = format!("DISTANT-PROXY 1 key={}\n", &*key.to_hex());
    stdout
        .write_all(greeting.as_bytes())
        .map_err(|e| ProxyError::Other(format!("cannot write to stdout: {e}")))?;
    drop(greeting);

    let mut to_daemon = socket
        .try_clone()
        .map_err(|e| ProxyError::Other(format!("cannot duplicate the socket: {e}")))?;
    std::thread::spawn(move || {
        // SAFETY: fd 0 is open for the life of the process.
        let mut stdin = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
        let mut buf = vec![0u8; BUF];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if to_daemon.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = to_daemon.shutdown(std::net::Shutdown::Write);
    });

    let mut from_daemon = socket;
    let mut buf = vec![0u8; BUF];
    loop {
        match from_daemon.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if stdout.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// Connects to the daemon, starting a detached one when none answers.
fn connect_or_start(run: &RunDir, args: &ProxyArgs) -> Result<UnixStream, ProxyError> {
    if let Ok(s) = UnixStream::connect(&run.socket) {
        return Ok(s);
    }
    let exe = std::env::current_exe().map_err(|e| {
        ProxyError::Daemon(format!(
            "cannot find the distant-server binary to start the daemon: {e}"
        ))
    })?;
    let mut cmd = Command::new(&exe);
    cmd.arg("daemon").arg("--detach");
    // The daemon outlives this ssh login: it must not keep its agent
    // socket etc. for later sessions' processes (cli/env.rs).
    for name in super::env::PER_LOGIN {
        cmd.env_remove(name);
    }
    if let Some(socket) = &args.socket {
        cmd.arg("--socket").arg(socket);
    }
    if let Some(secs) = args.idle_exit {
        cmd.arg("--idle-exit").arg(secs.to_string());
    }
    if let Some(secs) = args.session_ttl {
        cmd.arg("--session-ttl").arg(secs.to_string());
    }
    // The daemon forks once the socket is bound and its parent exits then:
    // with this process as the grandparent, nothing is left to reap.
    let output = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            ProxyError::Daemon(format!("cannot start the daemon ({}): {e}", exe.display()))
        })?;
    if !output.status.success() {
        let detail = String::from_utf8_lossy(&output.stderr);
        return Err(ProxyError::Daemon(format!(
            "the daemon did not start ({}): {}",
            output.status,
            detail.trim()
        )));
    }
    let deadline = Instant::now() + START_WAIT;
    loop {
        match UnixStream::connect(&run.socket) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => {
                return Err(ProxyError::Daemon(format!(
                    "the daemon did not answer on {} within {} s ({e}); see its log {}",
                    run.socket.display(),
                    START_WAIT.as_secs(),
                    run.file(LOG).display()
                )))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

//! `distant-server`: the command line.
//!
//! - `listen`: TCP. Reads the key from a file or the environment (never
//!   from argv), binds, prints the one credentials line and serves sessions
//!   until killed.
//! - `daemon`: the per-user server of ssh mode on a private Unix socket
//!   ([`cli::daemon`]).
//! - `proxy`: what ssh runs on the remote; relays stdio to the daemon,
//!   starting it when absent ([`cli::proxy`]).

mod cli;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use distant_protocol::auth::StaticKey;

use cli::ServeArgs;

/// The static (musl) x86_64 server allocates with mimalloc: musl's malloc
/// serialises threads (about 12× slower on a tokio allocation benchmark).
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// This build's version as a byte string the bridge finds without running
/// the binary (it may be for another architecture): before uploading a
/// server, the bridge checks that it carries its own version's mark.
#[used]
static VERSION_MARK: &[u8] =
    concat!("DISTANT-SERVER-VERSION=", env!("CARGO_PKG_VERSION"), ";").as_bytes();

#[derive(Parser)]
#[command(
    name = "distant-server",
    version,
    about = "Serves files, processes, search, watches and language servers to distant clients"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Listen on TCP and print `distant://:KEY@HOST:PORT` on stdout.
    Listen(ListenArgs),
    /// Serve ssh-mode clients on a private per-user Unix socket.
    Daemon(cli::daemon::DaemonArgs),
    /// Relay stdio to the per-user daemon (starting it if absent); what ssh
    /// runs on the remote. Prints `DISTANT-PROXY 1 key=...` first.
    Proxy(cli::proxy::ProxyArgs),
}

#[derive(Args)]
struct ListenArgs {
    /// Address to bind. Use 0.0.0.0 only behind a firewall you control.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// File holding the key as 64 hex digits; must be yours and not
    /// readable by others (chmod 600). Without it the key comes from
    /// DISTANT_KEY (removed from the environment at start), or a fresh one
    /// is generated.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Detach into the background after printing the credentials line.
    #[arg(long)]
    daemon: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() {
    // First, while single-threaded: no process spawned later may read the
    // key (cli/env.rs).
    let env_key = cli::env::take_key();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Daemon(_)) {
        cli::env::forget_login();
    }
    let result = match cli.command {
        Command::Listen(args) => listen(args, env_key),
        Command::Daemon(args) => cli::daemon::run(args),
        Command::Proxy(args) => match cli::proxy::run(args) {
            Ok(()) => Ok(()),
            Err(cli::proxy::ProxyError::Daemon(message)) => {
                eprintln!("distant-server proxy: {message}");
                std::process::exit(2);
            }
            Err(cli::proxy::ProxyError::Other(message)) => Err(message),
        },
    };
    if let Err(message) = result {
        eprintln!("distant-server: {message}");
        std::process::exit(1);
    }
}

fn load_key(args: &ListenArgs, env_key: Option<String>) -> Result<StaticKey, String> {
    if let Some(path) = &args.key_file {
        check_key_file(path)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
        return StaticKey::from_hex(text.trim())
            .map_err(|e| format!("the key file {} is not usable: {e}", path.display()));
    }
    if let Some(text) = env_key {
        return StaticKey::from_hex(text.trim())
            .map_err(|e| format!("DISTANT_KEY is not usable: {e}"));
    }
    Ok(StaticKey::generate(&mut rand::rngs::OsRng))
}

/// A key file must be the user's own and private, as ssh demands of
/// private keys: another user who can read it can log in as this one.
fn check_key_file(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "the key file {} belongs to uid {}, not to you (uid {me}); use a key file of \
             your own (chmod 600)",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "the key file {} is readable by others (mode {:o}); anyone who reads it can \
             connect as you: run `chmod 600 {}` and make a new key",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        ));
    }
    Ok(())
}

fn listen(args: ListenArgs, env_key: Option<String>) -> Result<(), String> {
    let key = load_key(&args, env_key)?;
    let listener = std::net::TcpListener::bind((args.host.as_str(), args.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let host = match addr {
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
        SocketAddr::V4(a) => a.ip().to_string(),
    };
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "distant://:{}@{host}:{}",
            &*key.to_hex(),
            addr.port()
        )
        .and_then(|_| stdout.flush())
        .map_err(|e| format!("cannot print the credentials line: {e}"))?;
    }
    if args.daemon {
        cli::daemonize()?;
    }
    cli::init_stderr_logging();
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot configure the listener: {e}"))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("cannot configure the listener: {e}"))?;
        let server = cli::start_server(&args.serve, key);
        tracing::info!(%addr, "listening");
        server
            .serve_tcp(listener)
            .await
            .map_err(|e| format!("serving failed: {e}"))
    })
}

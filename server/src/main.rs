//! `distant-server`: the command line. Parses options, reads the key from a
//! file or the environment (never from argv), binds, prints the one
//! credentials line and serves sessions until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use distant_protocol::auth::StaticKey;
use distant_protocol::driver::server::{Server, ServerOptions};
use distant_protocol::handshake::ServerConfig;
use distant_server::limits::Limits;

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
}

#[derive(Args)]
struct ListenArgs {
    /// Address to bind. Use 0.0.0.0 only behind a firewall you control.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// File holding the key as 64 hex digits. Without it the key comes from
    /// DISTANT_KEY, or a fresh one is generated.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Detach into the background after printing the credentials line.
    #[arg(long)]
    daemon: bool,
    /// Seconds a disconnected session (its processes, watches, unsent
    /// output) is kept for its client to come back.
    #[arg(long, default_value_t = 600)]
    session_ttl: u64,
    /// Sessions alive at once.
    #[arg(long, default_value_t = 64)]
    max_sessions: usize,
    /// Processes per session.
    #[arg(long, default_value_t = Limits::default().max_processes)]
    max_processes: usize,
    /// Watches per session.
    #[arg(long, default_value_t = Limits::default().max_watches)]
    max_watches: usize,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Listen(args) => listen(args),
    };
    if let Err(message) = result {
        eprintln!("distant-server: {message}");
        std::process::exit(1);
    }
}

fn load_key(args: &ListenArgs) -> Result<StaticKey, String> {
    if let Some(path) = &args.key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
        return StaticKey::from_hex(text.trim())
            .map_err(|e| format!("the key file {} is not usable: {e}", path.display()));
    }
    if let Ok(text) = std::env::var("DISTANT_KEY") {
        return StaticKey::from_hex(text.trim())
            .map_err(|e| format!("DISTANT_KEY is not usable: {e}"));
    }
    Ok(StaticKey::generate(&mut rand::rngs::OsRng))
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn listen(args: ListenArgs) -> Result<(), String> {
    let key = load_key(&args)?;
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
        daemonize()?;
    }
    init_logging();
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
        let config = ServerConfig {
            static_key: Some(key),
            ..ServerConfig::default()
        };
        let mut options = ServerOptions::new(config);
        options.session_ttl = Duration::from_secs(args.session_ttl);
        options.max_sessions = args.max_sessions;
        let limits = Limits {
            max_processes: args.max_processes,
            max_watches: args.max_watches,
            ..Limits::default()
        };
        let (server, mut sessions) = Server::new(options);
        tracing::info!(%addr, "listening");
        let limits = Arc::new(limits);
        tokio::spawn(async move {
            while let Some(session) = sessions.recv().await {
                let limits = (*limits).clone();
                tokio::spawn(distant_server::session::run_session(
                    session.requests,
                    session.responses,
                    limits,
                ));
            }
        });
        server
            .serve_tcp(listener)
            .await
            .map_err(|e| format!("serving failed: {e}"))
    })
}

/// Detaches from the terminal: fork, let the parent exit, start a new
/// session, and point stdio at /dev/null. Runs before any thread exists.
fn daemonize() -> Result<(), String> {
    // SAFETY: called before the tokio runtime or any other thread starts, so
    // the child is a faithful single-threaded copy.
    match unsafe { libc::fork() } {
        -1 => return Err(format!("cannot fork: {}", std::io::Error::last_os_error())),
        0 => {}
        _ => std::process::exit(0),
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

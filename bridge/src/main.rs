//! `distant-bridge` binary entry point: the command line (clap), logging to
//! stderr (`RUST_LOG`, default `warn`; never stdout, which belongs to the
//! JSON-RPC peer in `stdio` mode), and dispatch to [`distant_bridge::stdio`],
//! [`distant_bridge::manager`], [`distant_bridge::cli`] and
//! [`distant_bridge::demo`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use distant_bridge::api::{Api, ApiOptions};
use distant_bridge::cli::{self, CliError, Options};
use distant_bridge::manager::{self, ManagerError, ManagerPaths, StartOptions};
use distant_bridge::stdio::{self, RelayEnd};

/// The local side of distant: editors spawn `distant-bridge stdio`; people
/// and scripts use the other verbs.
#[derive(Parser, Debug)]
#[command(name = "distant-bridge", version, about, long_about = None)]
struct Args {
    /// Connection to act on (default: the most recent live connection).
    #[arg(long, global = true, value_name = "ID")]
    connection: Option<String>,
    /// Do not use (or start) the manager: serve the API in this process.
    #[arg(long, global = true)]
    no_manager: bool,
    /// `distant-server` binary for the `local` destination (default: next to
    /// this executable, then $PATH).
    #[arg(long, global = true, value_name = "PATH")]
    server_binary: Option<PathBuf>,
    /// Manager socket (default: $XDG_RUNTIME_DIR/distant/manager.sock, else
    /// ~/.local/state/distant/run/manager.sock).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "DISTANT_BRIDGE_SOCKET"
    )]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// JSON-RPC bridge API on stdin/stdout (what editors spawn).
    Stdio,
    /// The connection-sharing daemon (normally started on demand).
    Manager {
        /// Close connections no attached client uses after this many seconds, and
        /// exit after this many seconds with no clients and no connections; 0 = never.
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        idle_exit: u64,
        /// Stay in the foreground (default: detach and print its pid).
        #[arg(long)]
        foreground: bool,
    },
    /// Connect to DEST (`local`, `distant://HOST:PORT`, `ssh://[USER@]HOST[:PORT]`);
    /// prints the connection id.
    Connect {
        /// `local`, `distant://HOST:PORT` (the key from --key-file or
        /// DISTANT_KEY, never here) or `ssh://[USER@]HOST[:PORT]`.
        destination: String,
        /// File holding the key (default: $DISTANT_KEY). A key inside DEST is
        /// refused: every local user can read a command line.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// ssh://: one more argument for ssh, repeatable and passed in order,
        /// e.g. `--ssh-arg=-J --ssh-arg=jumphost` or `--ssh-arg=-F --ssh-arg=CONFIG`.
        #[arg(long = "ssh-arg", value_name = "ARG", allow_hyphen_values = true)]
        ssh_args: Vec<String>,
        /// ssh://: the ssh client to run (default: `ssh` on PATH).
        #[arg(long, value_name = "PATH")]
        ssh_binary: Option<String>,
        /// ssh://: path of distant-server on the remote (skips the probe and the upload).
        #[arg(long, value_name = "PATH")]
        remote_server: Option<String>,
        /// ssh://: fail instead of uploading distant-server when the remote has none.
        #[arg(long)]
        no_upload: bool,
    },
    /// Remote files.
    Fs {
        #[command(subcommand)]
        command: FsCommand,
    },
    /// Run CMD remotely, streaming its output; exits with its exit status.
    Spawn {
        /// Run it in a pseudo-terminal.
        #[arg(long)]
        pty: bool,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// A remote shell (or CMD) in a pseudo-terminal in this terminal.
    Shell {
        /// Command to run instead of the remote login shell.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        cmd: Vec<String>,
    },
    /// Run a language server remotely, as if it were local (what an editor's
    /// LSP client spawns); rewrites SCHEME://AUTHORITY/P <-> file:///P URIs.
    Lsp {
        /// Connect to DEST (reusing a live connection to it) instead of
        /// using --connection or the most recent connection.
        #[arg(long, value_name = "DEST")]
        destination: Option<String>,
        /// Editor-side URI scheme.
        #[arg(long, value_name = "SCHEME", default_value = "distant")]
        scheme: String,
        /// The language server's working directory on the remote.
        #[arg(long, value_name = "DIR")]
        cwd: Option<String>,
        /// The language server command and its arguments (after `--`).
        #[arg(last = true, required = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// The manager and every connection with its state.
    Status,
    /// Forward a local port to a port the remote can reach (like `ssh -L`):
    /// `forward 8000`, `forward 9000:localhost:8000`; `--list`, `--close PORT`.
    Forward {
        /// PORT, LOCAL:REMOTE_PORT or LOCAL:HOST:REMOTE_PORT (LOCAL 0 = any free port).
        #[arg(value_name = "SPEC", required_unless_present_any = ["list", "close"])]
        spec: Option<String>,
        /// List the forwards of the connection.
        #[arg(long, conflicts_with_all = ["spec", "close"])]
        list: bool,
        /// Close the forward listening on this local port.
        #[arg(long, value_name = "LOCAL_PORT", conflicts_with = "spec")]
        close: Option<u16>,
    },
    /// A narrated session against a local server, each step timed.
    Demo,
}

#[derive(Subcommand, Debug)]
enum FsCommand {
    /// Print a remote file to stdout.
    Read {
        /// Remote path.
        path: String,
    },
    /// Write stdin to a remote file.
    Write {
        /// Remote path.
        path: String,
    },
    /// List a remote directory (default: the remote working directory).
    Ls {
        /// Remote path.
        path: Option<String>,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    // First, while single-threaded: no key stays in the environment.
    distant_bridge::secrets::take_env_key();
    let args = Args::parse();
    init_logging();
    let code = match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("distant-bridge: error: {e}");
            e.code
        }
    };
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // Exit at once: a blocking stdin read may still be parked in the runtime.
    std::process::exit(i32::from(code));
}

/// Runs `f` on a fresh runtime that is then shut down without waiting for
/// blocking reads (a parked stdin read would otherwise hold the process).
fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    let out = rt.block_on(f);
    rt.shutdown_background();
    Ok(out)
}

fn run(args: Args) -> Result<u8, CliError> {
    let options = Options {
        connection: args.connection,
        no_manager: args.no_manager,
        server_binary: args.server_binary,
        socket: args.socket,
    };
    let api_options = ApiOptions {
        server_binary: options.server_binary.clone(),
    };
    match args.command {
        Command::Manager {
            idle_exit,
            foreground,
        } => run_manager(&options, idle_exit, foreground),
        Command::Stdio => block_on(run_stdio(&options, api_options))?,
        Command::Demo => {
            block_on(distant_bridge::demo::run(api_options))??;
            Ok(0)
        }
        Command::Connect {
            destination,
            key_file,
            ssh_args,
            ssh_binary,
            remote_server,
            no_upload,
        } => {
            let ssh = cli::SshOptions {
                args: ssh_args,
                binary: ssh_binary,
                remote_server,
                upload: !no_upload,
            };
            block_on(cli::connect(
                &options,
                &destination,
                key_file.as_deref(),
                &ssh,
            ))??;
            Ok(0)
        }
        Command::Fs { command } => {
            match command {
                FsCommand::Read { path } => block_on(cli::fs_read(&options, &path))??,
                FsCommand::Write { path } => block_on(cli::fs_write(&options, &path))??,
                FsCommand::Ls { path } => block_on(cli::fs_ls(&options, path.as_deref()))??,
            }
            Ok(0)
        }
        Command::Spawn { pty, cmd } => block_on(cli::spawn(&options, &cmd, pty))?,
        Command::Shell { cmd } => block_on(cli::shell(&options, &cmd))?,
        Command::Lsp {
            destination,
            scheme,
            cwd,
            cmd,
        } => {
            let args = distant_bridge::lsp::LspArgs {
                destination,
                scheme,
                cwd,
                cmd,
            };
            block_on(distant_bridge::lsp::run(&options, args))?
        }
        Command::Status => {
            block_on(cli::status(&options))??;
            Ok(0)
        }
        Command::Forward { spec, list, close } => {
            use cli::forward::{self, Action};
            let action = match (spec, list, close) {
                (_, true, _) => Action::List,
                (_, _, Some(port)) => Action::Close(port),
                (Some(spec), ..) => Action::Open(forward::parse_spec(&spec)?),
                (None, ..) => {
                    return Err(CliError::new(
                        "forward: give a SPEC, --list or --close PORT",
                    ))
                }
            };
            block_on(forward::run(&options, action))??;
            Ok(0)
        }
    }
}

async fn run_stdio(options: &Options, api_options: ApiOptions) -> Result<u8, CliError> {
    if options.no_manager {
        stdio::serve_in_process(api_options).await;
        return Ok(0);
    }
    let paths = ManagerPaths::resolve(options.socket.as_deref())?;
    let start = StartOptions {
        server_binary: options.server_binary.clone(),
        ..StartOptions::default()
    };
    let stream = manager::connect_or_start(&paths, &start).await?;
    match stdio::relay_stdio(stream).await {
        RelayEnd::EditorClosed | RelayEnd::Exit => Ok(0),
        RelayEnd::ManagerGone(what) => {
            eprintln!("{}", stdio::manager_gone_message(&paths, &what));
            Ok(1)
        }
    }
}

fn run_manager(options: &Options, idle_exit: u64, foreground: bool) -> Result<u8, CliError> {
    let paths = ManagerPaths::resolve(options.socket.as_deref())?;
    let idle = (idle_exit > 0).then(|| Duration::from_secs(idle_exit));
    if !foreground {
        if std::os::unix::net::UnixStream::connect(&paths.socket).is_ok() {
            println!(
                "manager already running{} on {}",
                paths
                    .read_pid()
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default(),
                paths.socket.display()
            );
            return Ok(0);
        }
        let start = StartOptions {
            server_binary: options.server_binary.clone(),
            idle_exit: Some(Duration::from_secs(idle_exit)),
            ..StartOptions::default()
        };
        block_on(manager::connect_or_start(&paths, &start))??;
        println!(
            "manager started{} on {} (log: {})",
            paths
                .read_pid()
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default(),
            paths.socket.display(),
            paths.log.display()
        );
        return Ok(0);
    }
    // Bind before the runtime exists: `bind` changes the umask briefly.
    let bound = match manager::bind(&paths) {
        Ok(b) => b,
        Err(ManagerError::AlreadyRunning { pid, socket }) => {
            eprintln!(
                "distant-bridge: {}",
                ManagerError::AlreadyRunning { pid, socket }
            );
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    let api = Api::new(ApiOptions {
        server_binary: options.server_binary.clone(),
    });
    block_on(manager::serve(bound, api, idle))??;
    Ok(0)
}

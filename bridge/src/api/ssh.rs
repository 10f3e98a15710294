//! `ssh://[user@]host[:port]` destinations: the distant protocol over the
//! system's OpenSSH client, to `distant-server proxy` on the remote.
//!
//! **Why the system `ssh`.** It is what the user already configured:
//! `~/.ssh/config` aliases, `ProxyJump`, `IdentityFile`, agents,
//! `ControlMaster`, known hosts. We only add options that make it fit a
//! background transport (`-T`, `BatchMode=yes` so it never prompts,
//! `ServerAliveInterval=5`/`ServerAliveCountMax=3` so a dead path is seen
//! within ~15 s, `ConnectTimeout=10`); the editor's own `options.ssh`
//! arguments come first, and ssh keeps the first value it sees, so they
//! win. Nothing secret is ever put in argv.
//!
//! **Connecting** ([`open`]) takes one ssh run when the remote has our
//! server, three when it must be uploaded:
//!
//! 1. a POSIX `sh` snippet that `exec`s
//!    `~/.local/share/distant/bin/distant-server-<VERSION> proxy` (this
//!    bridge's version: versions never clash) when it is there — saying
//!    `DISTANT-PATH <path>` first — and otherwise prints a *probe*:
//!    `uname -s`, `uname -m`, the path;
//! 2. when it was missing and `options.upload` allows, an *upload* of the
//!    local `distant-server` (the configured one, else the one next to the
//!    bridge, else `$PATH`'s) after checking that its OS and architecture
//!    (read from its ELF / Mach-O header) match the remote's. The file is
//!    streamed on ssh's stdin into a temporary file, its size and SHA-256
//!    checked against ours, made 0700 and renamed into place: a
//!    half-written or corrupted binary is never run;
//! 3. then `ssh … -- exec '<path>' proxy`.
//!
//! The proxy greets with `DISTANT-PROXY 1 key=<64 hex>` (PROTOCOL.md
//! §6.2); ssh's stdout and stdin then carry the protocol, authenticated
//! with that key. `options.remoteServer` names the remote binary and skips
//! the probe and the upload.
//!
//! **Reconnecting.** [`SshDialer`] is the session's [`Dialer`]: every
//! redial runs ssh again (killing the previous ssh if it still runs). The
//! remote daemon kept the session, so it resumes and nothing is lost. A
//! failed redial's reason (ssh's stderr) becomes the `reconnecting`
//! detail; failures that waiting cannot fix (a proxy announcing another
//! key, a server binary that is gone and cannot be installed again) end
//! the connection at once as `lost` with that reason.
//!
//! **Errors.** ssh's stderr is kept (the last lines, bounded) and put into
//! every error, classified: `auth_failed` for "Permission denied" and host
//! key failures ("ssh authentication failed: …"), `timeout` for connect
//! timeouts, `other` for unreachable hosts, a remote shell that is not
//! POSIX, a missing binary or a failed upload; `unsupported` for a remote
//! of another OS or architecture (the message names the binary needed).

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use distant_protocol::auth::StaticKey;
use distant_protocol::driver::client::{DialFuture, Dialer, PermanentDialError};
use distant_protocol::driver::transport::BoxTransport;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, BufReader, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Notify;

use super::lock;
use super::servers::{self, Platform};
use crate::jsonrpc::{ErrorKind, RpcError};

/// This bridge's version: the remote server must be the same.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Deadline of one dial for the session driver (a little more than
/// the greeting deadline, so our own, clearer error wins).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline for ssh's connection, login and the proxy's greeting.
const GREETING_TIMEOUT: Duration = Duration::from_secs(25);
/// Deadline of an upload: generous, binaries are tens of megabytes.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a closed transport's ssh may take to exit before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for ssh's last stderr lines once it ended.
const STDERR_SETTLE: Duration = Duration::from_secs(2);
/// Lines of ssh's stderr kept for error messages.
const STDERR_LINES: usize = 40;
/// Longest stderr line kept.
const STDERR_LINE_MAX: usize = 500;
/// Output ahead of the proxy's greeting tolerated (a chatty login shell).
const GREETING_SLACK: usize = 16 * 1024;
/// The greeting's prefix (PROTOCOL.md §6.2).
const GREETING: &str = "DISTANT-PROXY 1 key=";
/// Where uploads go, under the remote user's home.
const INSTALL_DIR: &str = ".local/share/distant/bin";

/// ssh settings from `connect`'s `options`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshOptions {
    /// `options.ssh`: extra arguments for ssh, before ours.
    pub args: Vec<String>,
    /// `options.sshBinary`: the ssh client to run (default `ssh`).
    pub binary: Option<String>,
    /// `options.remoteServer`: the remote `distant-server`; skips the
    /// probe and the upload.
    pub remote_server: Option<String>,
    /// `options.upload` (default true): upload a server when the remote
    /// has none of our version.
    pub upload: bool,
    /// `options.serversDir`: a directory of `<os>-<arch>/distant-server`
    /// searched first for the server to upload (see [`super::servers`]).
    pub servers_dir: Option<PathBuf>,
}

impl Default for SshOptions {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            binary: None,
            remote_server: None,
            upload: true,
            servers_dir: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOptions {
    #[serde(default)]
    ssh: Option<Vec<String>>,
    #[serde(default)]
    ssh_binary: Option<String>,
    #[serde(default)]
    remote_server: Option<String>,
    #[serde(default)]
    upload: Option<bool>,
    #[serde(default)]
    allow_local_commands: Option<bool>,
    servers_dir: Option<String>,
}

impl SshOptions {
    /// Reads the ssh fields of `connect`'s `options` (others are ignored).
    pub fn from_value(options: Option<&Value>) -> Result<Self, RpcError> {
        let Some(value) = options.filter(|v| !v.is_null()) else {
            return Ok(Self::default());
        };
        if !value.is_object() {
            return Err(RpcError::invalid_params(
                "parameter `options` must be an object",
            ));
        }
        let field = |name: &str, want: &str| -> Result<(), RpcError> {
            match value.get(name) {
                None | Some(Value::Null) => Ok(()),
                Some(v) if want == "array" && v.is_array() => Ok(()),
                Some(v) if want == "string" && v.is_string() => Ok(()),
                Some(v) if want == "boolean" && v.is_boolean() => Ok(()),
                Some(_) => Err(RpcError::invalid_params(format!(
                    "parameter `options.{name}` must be a{} {want}",
                    if want == "array" { "n" } else { "" }
                ))),
            }
        };
        field("ssh", "array")?;
        field("sshBinary", "string")?;
        field("remoteServer", "string")?;
        field("upload", "boolean")?;
        field("allowLocalCommands", "boolean")?;
        field("serversDir", "string")?;
        let raw: RawOptions = serde_json::from_value(value.clone()).map_err(|_| {
            RpcError::invalid_params("parameter `options.ssh` must be an array of strings")
        })?;
        let args = raw.ssh.unwrap_or_default();
        if raw.allow_local_commands != Some(true) {
            if let Some(what) = super::ssh_args::local_exec_arg(&args) {
                return Err(RpcError::invalid_params(format!(
                    "parameter `options.ssh` has `{what}`, which can run or load something on \
                     this machine; settings a workspace can supply must not do that. Put it in \
                     your ~/.ssh/config, or allow it explicitly (VS Code: the user setting \
                     distant.allowSshCommands; API: options.allowLocalCommands)"
                )));
            }
        }
        let binary = raw.ssh_binary.filter(|s| !s.trim().is_empty());
        let remote_server = raw.remote_server.filter(|s| !s.trim().is_empty());
        Ok(Self {
            args,
            binary,
            remote_server,
            upload: raw.upload.unwrap_or(true),
            servers_dir: raw
                .servers_dir
                .filter(|s| !s.trim().is_empty())
                .map(PathBuf::from),
        })
    }
}

/// A parsed `ssh://[user@]host[:port]` destination with its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    /// Without IPv6 brackets, as ssh wants it.
    pub host: String,
    pub port: Option<u16>,
    pub options: SshOptions,
}

impl SshTarget {
    /// Parses what follows `ssh://`.
    pub fn parse(rest: &str) -> Result<Self, RpcError> {
        let bad = |why: &str| {
            RpcError::invalid_params(format!(
                "parameter `destination` must be ssh://[USER@]HOST[:PORT]: {why}"
            ))
        };
        let rest = rest.trim_end_matches('/');
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after `]`"))?),
            };
            (h, port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
            ),
        };
        let plain = |s: &str| {
            !s.is_empty()
                && !s.starts_with('-')
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "/\\'\"`$;&|<>".contains(c))
        };
        if !plain(host) {
            return Err(bad("the host is empty or has characters ssh would misread"));
        }
        if let Some(u) = user {
            if !plain(u) || u.contains(['@', ':']) {
                return Err(bad("the user is empty or has characters ssh would misread"));
            }
        }
        Ok(Self {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            options: SshOptions::default(),
        })
    }

    /// `ssh://[user@]host[:port]`, as shown to people.
    pub fn display(&self) -> String {
        let mut s = String::from("ssh://");
        if let Some(u) = &self.user {
            s.push_str(u);
            s.push('@');
        }
        if self.host.contains(':') {
            s.push_str(&format!("[{}]", self.host));
        } else {
            s.push_str(&self.host);
        }
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s
    }

    /// The ssh argv (without the program) that runs `remote` on the host.
    pub fn ssh_args(&self, remote: &str) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(p) = self.port {
            args.extend(["-p".to_owned(), p.to_string()]);
        }
        if let Some(u) = &self.user {
            args.extend(["-l".to_owned(), u.clone()]);
        }
        args.extend(self.options.args.iter().cloned());
        for a in [
            "-T",
            "-o",
            "BatchMode=yes",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "ConnectTimeout=10",
        ] {
            args.push(a.to_owned());
        }
        args.push(self.host.clone());
        args.push("--".to_owned());
        args.push(remote.to_owned());
        args
    }

    fn program(&self) -> &str {
        self.options.binary.as_deref().unwrap_or("ssh")
    }

    /// An ssh child running `remote`, stdio piped, killed with the bridge.
    fn command(&self, remote: &str) -> Command {
        let mut command = Command::new(self.program());
        command
            .args(self.ssh_args(remote))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        super::die_with_bridge(&mut command);
        command
    }

    fn spawn(&self, remote: &str) -> Result<Child, RpcError> {
        self.command(remote).spawn().map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::NotFound {
                "; install OpenSSH's client or set options.sshBinary"
            } else {
                ""
            };
            RpcError::new(
                ErrorKind::Other,
                format!("cannot run {}: {e}{hint}", self.program()),
            )
        })
    }
}

/// Quotes `s` for a POSIX shell (also right for fish and csh).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The last lines ssh wrote to stderr; also logged as they come.
#[derive(Clone, Default)]
struct StderrLog(Arc<Mutex<VecDeque<String>>>);

impl StderrLog {
    /// Collects `stderr` until it closes; the handle ends with it.
    fn collect(
        stderr: tokio::process::ChildStderr,
        pid: Option<u32>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let log = Self::default();
        let lines = log.clone();
        let task = tokio::spawn(async move {
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let mut line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                if line.is_empty() {
                    continue;
                }
                if line.len() > STDERR_LINE_MAX {
                    let mut cut = STDERR_LINE_MAX;
                    while !line.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    line.truncate(cut);
                    line.push('…');
                }
                tracing::info!(ssh_pid = pid, "ssh: {line}");
                let mut kept = lock(&lines.0);
                if kept.len() == STDERR_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        (log, task)
    }

    fn text(&self) -> String {
        lock(&self.0).iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Waits a little for the stderr reader to see ssh's last words.
async fn settle(task: tokio::task::JoinHandle<()>) {
    let _ = tokio::time::timeout(STDERR_SETTLE, task).await;
}

/// Turns a failed ssh run into an error a person can act on.
fn ssh_failure(shown: &str, status: Option<ExitStatus>, stderr: &str, what: &str) -> RpcError {
    let said = if stderr.trim().is_empty() {
        "ssh printed nothing".to_owned()
    } else {
        stderr.trim().to_owned()
    };
    let lower = said.to_lowercase();
    let ssh_failed = status.map(|s| s.code() == Some(255)).unwrap_or(true);
    if lower.contains("permission denied (")
        || lower.contains("too many authentication failures")
        || lower.contains("no more authentication methods")
    {
        return RpcError::new(
            ErrorKind::AuthFailed,
            format!("ssh authentication failed ({shown}): {said}"),
        );
    }
    if lower.contains("host key verification failed")
        || lower.contains("remote host identification has changed")
    {
        return RpcError::new(
            ErrorKind::AuthFailed,
            format!("ssh did not trust the host key of {shown}: {said}"),
        );
    }
    if ssh_failed
        && (lower.contains("connection timed out") || lower.contains("operation timed out"))
    {
        return RpcError::new(
            ErrorKind::Timeout,
            format!("could not reach {shown} (ssh timed out): {said}"),
        );
    }
    if ssh_failed {
        return RpcError::new(
            ErrorKind::Other,
            format!("could not reach {shown} over ssh: {said}"),
        );
    }
    let status = status.map_or_else(|| "was killed".to_owned(), |s| s.to_string());
    RpcError::new(
        ErrorKind::Other,
        format!("{what} on {shown} failed ({status}): {said}"),
    )
}

/// What the probe found on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Probe {
    os: String,
    arch: String,
    /// The versioned install path (absolute).
    path: String,
    /// Whether it is there and executable.
    installed: bool,
    /// Whether the remote has `gzip` (the upload is then compressed).
    gzip: bool,
    /// Why an installed server was not run (owner, mode, hash), if it was
    /// refused; the upload then replaces it.
    refused: Option<String>,
}

/// A `sh` function `sha FILE` printing the file's SHA-256 in hex, with
/// whichever tool the remote has; fails when it has none.
const SHA_FN: &str = r#"sha() { if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "$1" | cut -d' ' -f1
else return 1; fi; }
"#;

/// A `sh` function `check` that sets `bad` to why the installed server
/// `$f` must not be run, or to nothing: it must be a regular file (not a
/// symlink), it and its directory owned by the login user and writable by
/// no one else, executable; with `H=1` also its SHA-256 equal to the one
/// the upload recorded in `$f.sha256`.
const CHECK_FN: &str = r#"check() {
bad=
d=${f%/*}
if [ -h "$f" ] || [ ! -f "$f" ]; then bad="it is not a regular file"; return; fi
if [ ! -O "$f" ] || [ ! -O "$d" ] || [ -h "$d" ]; then bad="it or its directory is not owned by $(id -un)"; return; fi
for x in "$f" "$d"; do
case $(ls -ld "$x") in ?????w*|????????w*) bad="group or others may write $x"; return;; esac
done
if [ ! -x "$f" ]; then bad="it is not executable"; return; fi
if [ "$H" = 1 ]; then
want=$(cat "$f.sha256" 2>/dev/null) || want=
h=$(sha "$f") || h=
if [ -z "$h" ] || [ "$h" != "$want" ]; then bad="its SHA-256 is not the one recorded at upload"; fi
fi
}
"#;

/// The first dial, as run by the remote's `sh`: start the proxy when our
/// version is installed and passes `check` (saying where), else describe
/// the remote. `hash`: also check the installed server's SHA-256.
fn probe_or_exec_script(hash: bool) -> String {
    let h = u8::from(hash);
    format!(
        r#"H={h}
{SHA_FN}{CHECK_FN}f="$HOME/{INSTALL_DIR}/distant-server-{VERSION}"
bad=
if [ -e "$f" ] || [ -h "$f" ]; then check; if [ -z "$bad" ]; then echo "DISTANT-PATH $f"; exec "$f" proxy; fi; fi
echo "DISTANT-PROBE 1"
echo "os=$(uname -s)"
echo "arch=$(uname -m)"
echo "path=$f"
echo "installed=no"
if command -v gzip >/dev/null 2>&1; then echo "gzip=yes"; else echo "gzip=no"; fi
echo "refused=$bad"
"#
    )
}

/// A redial (or the dial right after an upload) of the installed server
/// at `path`: `check` (without the hash), then the proxy; a refusal is
/// said as `DISTANT-REFUSED <why>`.
fn checked_proxy_script(path: &str) -> String {
    format!(
        r#"H=0
{CHECK_FN}f={path}
check
if [ -n "$bad" ]; then echo "DISTANT-REFUSED $f: $bad"; exit 1; fi
exec "$f" proxy
"#,
        path = sh_quote(path)
    )
}

fn parse_probe(stdout: &str) -> Option<Probe> {
    let mut lines = stdout.lines().skip_while(|l| l.trim() != "DISTANT-PROBE 1");
    lines.next()?;
    let (mut os, mut arch, mut path, mut installed) = (None, None, None, None);
    let (mut gzip, mut refused) = (false, None);
    for line in lines {
        match line.split_once('=') {
            Some(("os", v)) => os = Some(v.trim().to_owned()),
            Some(("arch", v)) => arch = Some(v.trim().to_owned()),
            Some(("path", v)) => path = Some(v.to_owned()),
            Some(("installed", v)) => installed = Some(v.trim() == "yes"),
            Some(("gzip", v)) => gzip = v.trim() == "yes",
            Some(("refused", v)) if !v.trim().is_empty() => refused = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    Some(Probe {
        os: os.filter(|s| !s.is_empty())?,
        arch: arch.filter(|s| !s.is_empty())?,
        path: path.filter(|p| p.starts_with('/'))?,
        installed: installed?,
        gzip,
        refused,
    })
}

/// The upload, as run by the remote's `sh`, reading the binary on stdin
/// (gzip-compressed when `gzip`). The install directory must be the login
/// user's (it is made 0700); the file is written into a fresh private
/// directory (`mktemp -d`, else `mkdir` of a random name, which fails
/// rather than reuse what exists) with `noclobber`, so nobody can have
/// created or linked it beforehand; its size and SHA-256 are checked, the
/// hash recorded in `<server>.sha256`, and it is renamed into place.
fn upload_script(sha256: &str, size: u64, gzip: bool) -> String {
    let receive = if gzip { "gzip -dc" } else { "cat" };
    format!(
        r#"set -e
umask 077
{SHA_FN}d="$HOME/{INSTALL_DIR}"
f="$d/distant-server-{VERSION}"
mkdir -p "$d"
if [ -h "$d" ] || [ ! -d "$d" ] || [ ! -O "$d" ]; then echo "DISTANT-UPLOAD $d is not a directory owned by $(id -un)"; exit 3; fi
chmod 700 "$d"
w=$(mktemp -d "$d/.upload.XXXXXXXXXX" 2>/dev/null) || {{ w="$d/.upload.$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"; mkdir "$w"; }}
trap 'rm -rf "$w"' EXIT
t="$w/distant-server"
set -C
{receive} > "$t"
set +C
n=$(wc -c < "$t" | tr -d ' ')
if [ "$n" != "{size}" ]; then echo "DISTANT-UPLOAD short: $n of {size} bytes arrived"; exit 3; fi
h=$(sha "$t") || {{ echo "DISTANT-UPLOAD none of sha256sum, shasum or openssl is installed to check the upload"; exit 3; }}
if [ "$h" != "{sha256}" ]; then echo "DISTANT-UPLOAD the upload arrived corrupted (sha256 $h)"; exit 3; fi
chmod 700 "$t"
echo "$h" > "$w/sha256"
mv -f "$w/sha256" "$f.sha256"
mv -f "$t" "$f"
echo "DISTANT-UPLOAD ok"
"#
    )
}

/// Runs one short ssh command; returns its status, stdout and stderr. With
/// `input`, those bytes are written to its stdin.
async fn run_once(
    target: &SshTarget,
    remote: &str,
    input: Option<&[u8]>,
    timeout: Duration,
    what: &str,
) -> Result<(ExitStatus, String, String), RpcError> {
    let shown = target.display();
    let mut child = target.spawn(remote)?;
    let pid = child.id();
    tracing::debug!(ssh_pid = pid, "ssh started for {what}");
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (log, stderr_task) = StderrLog::collect(stderr, pid);
    let feed = async {
        match (input, stdin.take()) {
            (Some(bytes), Some(mut sink)) => {
                tokio::io::AsyncWriteExt::write_all(&mut sink, bytes).await?;
                tokio::io::AsyncWriteExt::shutdown(&mut sink).await?;
                Ok::<(), io::Error>(())
            }
            _ => Ok(()),
        }
    };
    let read = async {
        let mut out = Vec::new();
        // Bounded: the scripts print a few lines; a shell banner is junk.
        let _ = (&mut stdout).take(64 * 1024).read_to_end(&mut out).await;
        out
    };
    let work = async {
        let (fed, out) = tokio::join!(feed, read);
        let status = child.wait().await;
        (fed, out, status)
    };
    let (fed, out, status) = match tokio::time::timeout(timeout, work).await {
        Ok(done) => done,
        Err(_) => {
            settle(stderr_task).await;
            return Err(RpcError::new(
                ErrorKind::Timeout,
                format!(
                    "{what} on {shown} did not finish within {} s; ssh said: {}",
                    timeout.as_secs(),
                    non_empty(&log.text())
                ),
            ));
        }
    };
    settle(stderr_task).await;
    let status = status
        .map_err(|e| RpcError::new(ErrorKind::Other, format!("waiting for ssh ({what}): {e}")))?;
    let stdout = String::from_utf8_lossy(&out).into_owned();
    if let Err(e) = fed {
        if status.success() {
            return Err(RpcError::new(
                ErrorKind::Other,
                format!("{what} on {shown} failed: sending the file: {e}"),
            ));
        }
    }
    Ok((status, stdout, log.text()))
}

fn non_empty(s: &str) -> &str {
    if s.trim().is_empty() {
        "(nothing)"
    } else {
        s.trim()
    }
}

/// Destinations whose installed server's SHA-256 this process has checked
/// (`destination/version`): later connects check owner and mode only.
static HASH_CHECKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn hash_key(target: &SshTarget) -> String {
    format!("{}/{VERSION}", target.display())
}

fn hash_checked(target: &SshTarget) -> bool {
    lock(&HASH_CHECKED).contains(&hash_key(target))
}

fn set_hash_checked(target: &SshTarget) {
    let key = hash_key(target);
    let mut done = lock(&HASH_CHECKED);
    if !done.contains(&key) {
        done.push(key);
    }
}

/// Gzip at a level that takes a fraction of a second for a server binary.
fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::new(6),
    );
    encoder.write_all(data)?;
    encoder.finish()
}

/// Makes sure the remote has our server (uploading it when allowed and
/// needed); returns its path there.
async fn install(
    target: &SshTarget,
    probe: Probe,
    server_binary: Option<&Path>,
) -> Result<String, RpcError> {
    let shown = target.display();
    if probe.installed {
        tracing::info!(destination = %shown, "using distant-server {VERSION} at {}", probe.path);
        return Ok(probe.path);
    }
    if let Some(why) = &probe.refused {
        tracing::warn!(destination = %shown, "not running {}: {why}; replacing it", probe.path);
    }
    if !target.options.upload {
        let refused = probe
            .refused
            .as_ref()
            .map(|why| format!(" that it may run ({why})"))
            .unwrap_or_default();
        return Err(RpcError::new(
            ErrorKind::NotFound,
            format!(
                "{shown} has no distant-server {VERSION} at {}{refused} and uploading is off \
                 (options.upload: false); install it there, or name it in options.remoteServer",
                probe.path
            ),
        ));
    }
    let platform = Platform::from_uname(&probe.os, &probe.arch);
    let own = super::local::find_binary(server_binary).ok();
    let options_dir = target.options.servers_dir.clone();
    let found = {
        let platform = platform.clone();
        let compress = probe.gzip;
        tokio::task::spawn_blocking(move || {
            let binary = servers::find(&platform, options_dir.as_deref(), own)?;
            let wire = if compress {
                Some(gzip(&binary.data).map_err(|e| {
                    RpcError::internal(format!("compressing the server binary: {e}"))
                })?)
            } else {
                None
            };
            Ok::<_, RpcError>((binary, wire))
        })
        .await
        .map_err(|e| RpcError::internal(format!("reading the server binary: {e}")))?
    };
    let (binary, wire) = found.map_err(|e| {
        RpcError::new(
            e.kind,
            format!(
                "{shown} is {} and has no distant-server {VERSION}; {}",
                platform.shown(),
                e.message
            ),
        )
    })?;
    tracing::info!(
        destination = %shown,
        "uploading distant-server {VERSION} ({} bytes, {} on the wire{}, from {}) to {}",
        binary.size(),
        wire.as_ref().map_or(binary.data.len(), Vec::len),
        if wire.is_some() { ", gzip" } else { "" },
        binary.path.display(),
        probe.path
    );
    let started = Instant::now();
    let remote = format!(
        "sh -c {}",
        sh_quote(&upload_script(
            &binary.sha256,
            binary.size(),
            wire.is_some()
        ))
    );
    let (status, stdout, stderr) = run_once(
        target,
        &remote,
        Some(wire.as_deref().unwrap_or(&binary.data)),
        UPLOAD_TIMEOUT,
        "uploading distant-server",
    )
    .await?;
    if status.success() && stdout.lines().any(|l| l.trim() == "DISTANT-UPLOAD ok") {
        tracing::info!(destination = %shown, "uploaded in {:?}", started.elapsed());
        set_hash_checked(target);
        return Ok(probe.path);
    }
    if status.code() == Some(255) {
        return Err(ssh_failure(&shown, Some(status), &stderr, "uploading"));
    }
    let reason = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DISTANT-UPLOAD "))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{status}; ssh said: {}", non_empty(&stderr)));
    Err(RpcError::new(
        ErrorKind::Other,
        format!(
            "uploading distant-server to {shown}:{} failed: {reason}",
            probe.path
        ),
    ))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

/// The remote command that starts the proxy at `path`: checked (owner,
/// mode; see [`checked_proxy_script`]) when it is the server we installed,
/// as is when the user named it (`options.remoteServer`).
fn proxy_command(path: &str, checked: bool) -> String {
    if checked {
        format!("sh -c {}", sh_quote(&checked_proxy_script(path)))
    } else {
        format!("exec {} proxy", sh_quote(path))
    }
}

/// ssh's stdio as one byte stream. Dropping it closes ssh's stdin (the
/// proxy then ends the relay) and gives ssh two seconds to exit before
/// it is killed — at once if the dialer asked, because a newer ssh replaced
/// it.
pub struct SshTransport {
    stdout: ChildStdout,
    stdin: ChildStdin,
    child: Option<Child>,
    kill: Arc<Notify>,
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let kill = self.kill.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::select! {
                        _ = child.wait() => return,
                        _ = tokio::time::sleep(CLOSE_GRACE) => {}
                        _ = kill.notified() => {}
                    }
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                });
            }
            Err(_) => {
                let _ = child.start_kill();
            }
        }
    }
}

impl AsyncRead for SshTransport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshTransport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stdin).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_shutdown(cx)
    }
}

/// What a dial found.
enum Dialled {
    /// The proxy greeted: the transport, the key it announced, the handle
    /// that kills this ssh early, and where the server is (when the remote
    /// said).
    Proxy {
        transport: Box<SshTransport>,
        key: StaticKey,
        kill: Arc<Notify>,
        path: Option<String>,
    },
    /// The remote has no server of our version: what it is instead.
    Probe(Probe),
}

/// Runs ssh with `remote` (which starts the proxy, or probes) and reads
/// up to the proxy's greeting. `server` names the remote binary in errors.
async fn dial(target: &SshTarget, remote: &str, server: &str) -> Result<Dialled, RpcError> {
    let shown = target.display();
    let started = Instant::now();
    let mut child = target.spawn(remote)?;
    let pid = child.id();
    tracing::debug!(ssh_pid = pid, destination = %shown, "ssh started");
    let stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (log, stderr_task) = StderrLog::collect(stderr, pid);

    enum Read {
        Greeting(Result<StaticKey, ()>, Option<String>),
        Probe(String),
        Refused(String),
        Ended(Vec<u8>),
    }
    // Byte by byte: nothing after the greeting's newline is ours to read.
    let read = async {
        let mut before = Vec::new();
        let mut line = Vec::new();
        let mut path = None;
        loop {
            let Ok(b) = stdout.read_u8().await else {
                before.extend_from_slice(&line);
                return Read::Ended(before);
            };
            if b != b'\n' {
                line.push(b);
                if before.len() + line.len() > GREETING_SLACK {
                    before.extend_from_slice(&line);
                    return Read::Ended(before);
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_owned();
            if let Some(hex) = text.strip_prefix(GREETING) {
                return Read::Greeting(StaticKey::from_hex(hex.trim()).map_err(|_| ()), path);
            }
            if let Some(p) = text.strip_prefix("DISTANT-PATH ") {
                path = Some(p.to_owned());
            } else if let Some(why) = text.strip_prefix("DISTANT-REFUSED ") {
                return Read::Refused(why.to_owned());
            } else if text == "DISTANT-PROBE 1" {
                let mut rest = Vec::new();
                let _ = (&mut stdout)
                    .take(GREETING_SLACK as u64)
                    .read_to_end(&mut rest)
                    .await;
                return Read::Probe(format!("{text}\n{}", String::from_utf8_lossy(&rest)));
            } else {
                before.extend_from_slice(&line);
                before.push(b'\n');
            }
            line.clear();
        }
    };
    let outcome = tokio::time::timeout(GREETING_TIMEOUT, read).await;
    let printed = match outcome {
        Ok(Read::Greeting(Ok(key), path)) => {
            // The stderr reader keeps logging for as long as ssh runs.
            drop(stderr_task);
            tracing::debug!(ssh_pid = pid, "proxy greeted after {:?}", started.elapsed());
            let kill = Arc::new(Notify::new());
            return Ok(Dialled::Proxy {
                transport: Box::new(SshTransport {
                    stdout,
                    stdin,
                    child: Some(child),
                    kill: kill.clone(),
                }),
                key,
                kill,
                path,
            });
        }
        Ok(Read::Refused(why)) => {
            let _ = child.start_kill();
            settle(stderr_task).await;
            return Err(RpcError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{shown}: refusing to run the installed distant-server {why}; \
                     remove it (a new connect uploads it again) or fix its owner and mode"
                ),
            ));
        }
        Ok(Read::Greeting(Err(()), _)) => {
            let _ = child.start_kill();
            return Err(RpcError::new(
                ErrorKind::Other,
                format!("the distant-server proxy on {shown} sent a malformed key"),
            ));
        }
        Ok(Read::Probe(text)) => {
            drop(stdin);
            let _ = tokio::time::timeout(STDERR_SETTLE, child.wait()).await;
            let _ = child.start_kill();
            settle(stderr_task).await;
            tracing::debug!(ssh_pid = pid, "probed in {:?}", started.elapsed());
            return match parse_probe(&text) {
                Some(probe) => Ok(Dialled::Probe(probe)),
                None => Err(RpcError::new(
                    ErrorKind::Other,
                    format!(
                        "{shown}: the remote's answer to our sh probe is incomplete ({:?}); \
                         ssh said: {}",
                        truncate(&super::redact::redact_keys(text.trim()), 300),
                        non_empty(&log.text())
                    ),
                )),
            };
        }
        Err(_) => {
            let _ = child.start_kill();
            settle(stderr_task).await;
            return Err(RpcError::new(
                ErrorKind::Timeout,
                format!(
                    "{shown}: no greeting from the distant-server proxy within {} s; ssh said: {}",
                    GREETING_TIMEOUT.as_secs(),
                    non_empty(&log.text())
                ),
            ));
        }
        Ok(Read::Ended(printed)) => printed,
    };
    drop(stdin);
    let status = tokio::time::timeout(STDERR_SETTLE, child.wait())
        .await
        .ok()
        .and_then(Result::ok);
    if status.is_none() {
        let _ = child.start_kill();
    }
    settle(stderr_task).await;
    let stderr = log.text();
    // Quoted below: never with a key in it (a greeting of another version).
    let printed = super::redact::redact_keys(&String::from_utf8_lossy(&printed));
    let printed = printed.trim();
    if status.is_some_and(|s| s.code() == Some(255)) {
        return Err(ssh_failure(&shown, status, &stderr, "starting the proxy"));
    }
    if status.is_some_and(|s| matches!(s.code(), Some(126 | 127))) {
        return Err(RpcError::new(
            ErrorKind::NotFound,
            format!(
                "{shown} could not run {server}: {}; install distant-server {VERSION} there \
                 or let the bridge upload it",
                non_empty(&stderr)
            ),
        ));
    }
    let status_text = status.map_or_else(|| "still running".to_owned(), |s| s.to_string());
    let what = if printed.starts_with("DISTANT-PROXY") {
        "a greeting of another version (update distant on one side)".to_owned()
    } else if printed.is_empty() {
        "nothing".to_owned()
    } else {
        format!("{:?}", truncate(printed, 300))
    };
    Err(RpcError::new(
        ErrorKind::Other,
        format!(
            "{shown}: expected the greeting of `{server} proxy` but the remote sent {what} \
             ({status_text}); is the login shell POSIX-compatible and quiet? ssh said: {}",
            non_empty(&stderr)
        ),
    ))
}

/// Dials the proxy at `path` (`checked`: see [`proxy_command`]).
async fn dial_proxy(
    target: &SshTarget,
    path: &str,
    checked: bool,
) -> Result<(Box<SshTransport>, StaticKey, Arc<Notify>), RpcError> {
    match dial(target, &proxy_command(path, checked), path).await? {
        Dialled::Proxy {
            transport,
            key,
            kill,
            ..
        } => Ok((transport, key, kill)),
        Dialled::Probe(_) => Err(RpcError::internal("a probe answered a proxy dial")),
    }
}

/// Redials by running ssh again; the first transport, dialled while
/// connecting, is handed out first.
///
/// A redial that fails in a way waiting cannot fix ends the session at once
/// ([`PermanentDialError`]): the proxy announced a different key (its
/// daemon was restarted with a new key file, so the session is gone), or
/// the server binary vanished and installing it again was refused (uploads
/// off, another platform, no local binary, a failed upload). Anything else
/// (ssh's "Permission denied (publickey)" while an agent is away, an
/// unreachable host) is reported and retried.
pub struct SshDialer {
    target: SshTarget,
    remote_path: String,
    /// Whether `remote_path` is the server we installed (checked each dial).
    checked: bool,
    key: StaticKey,
    /// The local binary to upload if the remote one vanished.
    server_binary: Option<PathBuf>,
    first: Mutex<Option<Box<SshTransport>>>,
    /// Kills the ssh of the latest transport handed out.
    previous: Arc<Mutex<Option<Arc<Notify>>>>,
}

impl Dialer for SshDialer {
    fn dial(&self) -> DialFuture {
        if let Some(first) = lock(&self.first).take() {
            return Box::pin(async move { Ok(first as BoxTransport) });
        }
        // A previous ssh that still runs is of no more use.
        if let Some(previous) = lock(&self.previous).take() {
            previous.notify_one();
        }
        let target = self.target.clone();
        let path = self.remote_path.clone();
        let checked = self.checked;
        let key = self.key.clone();
        let server_binary = self.server_binary.clone();
        let previous = self.previous.clone();
        Box::pin(async move {
            let shown = target.display();
            let dialled = match dial_proxy(&target, &path, checked).await {
                // The installed binary is gone (a cleanup removed it) or its
                // check refuses it (`DISTANT-REFUSED`: not a regular file any
                // more, wrong owner or mode): find or upload it again, as the
                // first connect did.
                Err(e)
                    if matches!(e.kind, ErrorKind::NotFound | ErrorKind::PermissionDenied)
                        && target.options.remote_server.is_none() =>
                {
                    tracing::info!(destination = %shown, "the remote distant-server vanished or was refused: {}", e.message);
                    find_or_install(&target, server_binary.as_deref())
                        .await
                        .map(|(t, k, kill, _)| (t, k, kill))
                        .map_err(|e| {
                            PermanentDialError(format!(
                                "the distant-server on {shown} is gone and could not be installed \
                                 again, so the session cannot resume: {}",
                                e.message
                            ))
                            .into_io()
                        })?
                }
                Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Unsupported) => {
                    return Err(PermanentDialError(format!(
                        "{}; the session cannot resume",
                        e.message
                    ))
                    .into_io());
                }
                Err(e) => return Err(io::Error::other(e.message)),
                Ok(dialled) => dialled,
            };
            let (transport, announced, kill) = dialled;
            if announced != key {
                // Kill this ssh at once: nothing will be sent on it.
                kill.notify_one();
                drop(transport);
                return Err(PermanentDialError(format!(
                    "the distant-server on {shown} announced a different key than when this \
                     session started (its daemon was restarted with a new key file), so the \
                     session is gone; connect again"
                ))
                .into_io());
            }
            *lock(&previous) = Some(kill);
            Ok(transport as BoxTransport)
        })
    }
}

/// Runs the first ssh: the configured remote server, else the probe that
/// execs the installed server or reports what to upload, then the upload.
/// Returns the transport, the proxy's key, its kill switch and the remote
/// path.
async fn find_or_install(
    target: &SshTarget,
    server_binary: Option<&Path>,
) -> Result<(Box<SshTransport>, StaticKey, Arc<Notify>, String), RpcError> {
    let shown = target.display();
    if let Some(path) = &target.options.remote_server {
        let (t, k, kill) = dial_proxy(target, path, false).await?;
        return Ok((t, k, kill, path.clone()));
    }
    let hash = !hash_checked(target);
    let remote = format!("sh -c {}", sh_quote(&probe_or_exec_script(hash)));
    let server = format!("~/{INSTALL_DIR}/distant-server-{VERSION}");
    match dial(target, &remote, &server).await? {
        Dialled::Proxy {
            transport,
            key,
            kill,
            path,
        } => {
            let path = path.ok_or_else(|| {
                RpcError::new(
                    ErrorKind::Other,
                    format!("{shown}: the proxy started but the remote did not say where"),
                )
            })?;
            tracing::info!(destination = %shown, "using distant-server {VERSION} at {path}");
            if hash {
                set_hash_checked(target);
            }
            Ok((transport, key, kill, path))
        }
        Dialled::Probe(probe) => {
            let path = install(target, probe, server_binary).await?;
            let (t, k, kill) = dial_proxy(target, &path, true).await?;
            Ok((t, k, kill, path))
        }
    }
}

/// Connects to an ssh destination: finds or uploads the remote server,
/// runs the first ssh and reads the proxy's key. Returns the dialer (its
/// first dial hands out that ssh) and the key for `static_key`.
pub async fn open(
    target: &SshTarget,
    server_binary: Option<&Path>,
) -> Result<(Arc<SshDialer>, StaticKey), RpcError> {
    let started = Instant::now();
    let (transport, key, kill, path) = find_or_install(target, server_binary).await?;
    tracing::debug!(destination = %target.display(), "ssh transport up in {:?}", started.elapsed());
    let dialer = SshDialer {
        target: target.clone(),
        remote_path: path,
        checked: target.options.remote_server.is_none(),
        key: key.clone(),
        server_binary: server_binary.map(Path::to_path_buf),
        first: Mutex::new(Some(transport)),
        previous: Arc::new(Mutex::new(Some(kill))),
    };
    Ok((Arc::new(dialer), key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sha2::{Digest, Sha256};

    fn target(dest: &str, options: Value) -> SshTarget {
        let mut t = SshTarget::parse(dest.strip_prefix("ssh://").unwrap()).unwrap();
        t.options = SshOptions::from_value(Some(&options)).unwrap();
        t
    }

    #[test]
    fn ssh_argv_puts_the_editor_s_args_before_ours_and_the_host_last() {
        let t = target(
            "ssh://me@host:2200",
            json!({"ssh": ["-F", "/cfg", "-o", "ConnectTimeout=3"], "allowLocalCommands": true}),
        );
        let args = t.ssh_args("exec '/x' proxy");
        assert_eq!(&args[..4], ["-p", "2200", "-l", "me"]);
        assert_eq!(&args[4..8], ["-F", "/cfg", "-o", "ConnectTimeout=3"]);
        assert!(args.windows(2).any(|w| w == ["-o", "BatchMode=yes"]));
        assert!(args
            .windows(2)
            .any(|w| w == ["-o", "ServerAliveInterval=5"]));
        let n = args.len();
        assert_eq!(&args[n - 3..], ["host", "--", "exec '/x' proxy"]);
        assert_eq!(t.program(), "ssh");
        let alias = target("ssh://alias", json!({"sshBinary": "/opt/ssh"}));
        assert_eq!(alias.program(), "/opt/ssh");
        assert_eq!(alias.ssh_args("x")[0], "-T");
    }

    #[test]
    fn options_are_checked_and_default_to_uploading() {
        let o = SshOptions::from_value(None).unwrap();
        assert!(o.upload && o.args.is_empty() && o.remote_server.is_none());
        let o = SshOptions::from_value(Some(
            &json!({"upload": false, "remoteServer": "/r", "other": 1}),
        ))
        .unwrap();
        assert!(!o.upload);
        assert_eq!(o.remote_server.as_deref(), Some("/r"));
        for bad in [
            json!({"ssh": "-v"}),
            json!({"ssh": [1]}),
            json!({"upload": "yes"}),
            json!({"sshBinary": 3}),
            json!([1]),
        ] {
            let e = SshOptions::from_value(Some(&bad)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParams, "{bad}");
        }
    }

    #[test]
    fn quoting_survives_any_text() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", sh_quote("x'y\"$HOME`z`\n;")))
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"x'y\"$HOME`z`\n;");
    }

    /// A fresh fake `$HOME` for the remote scripts.
    fn fake_home(tag: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = std::env::temp_dir().join(format!("distant-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        tmp
    }

    /// Runs `script` in `sh` with `HOME=home` and `input` on stdin.
    fn run_sh(script: &str, home: &Path, input: &[u8]) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("HOME", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(input);
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap() + &String::from_utf8_lossy(&out.stderr)
    }

    #[test]
    fn the_probe_runs_in_sh_and_is_parsed() {
        let tmp = fake_home("probe");
        let text = run_sh(&probe_or_exec_script(true), &tmp, b"");
        let _ = std::fs::remove_dir_all(&tmp);
        let probe = parse_probe(&format!("motd junk\n{text}")).expect(&text);
        assert!(!probe.installed);
        assert_eq!(probe.refused, None);
        assert!(probe.path.ends_with(&format!("/distant-server-{VERSION}")));
        assert!(probe.path.starts_with(&tmp.display().to_string()));
        assert!(!probe.os.is_empty() && !probe.arch.is_empty());
        let has_gzip = std::process::Command::new("sh")
            .args(["-c", "command -v gzip"])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert_eq!(probe.gzip, has_gzip);
        assert_eq!(parse_probe("nothing here"), None);
        assert_eq!(parse_probe("DISTANT-PROBE 1\nos=Linux\n"), None);
    }

    /// A stand-in server: says it ran, and with which argument.
    const FAKE_SERVER: &[u8] = b"#!/bin/sh\necho \"FAKE-SERVER-RAN $1\"\n";

    #[test]
    fn the_upload_script_checks_size_and_hash() {
        let tmp = fake_home("upload");
        let data = FAKE_SERVER;
        let sha = hex::encode(Sha256::digest(data));
        let run = |sha: &str, size: u64| run_sh(&upload_script(sha, size, false), &tmp, data);
        let installed = tmp
            .join(INSTALL_DIR)
            .join(format!("distant-server-{VERSION}"));
        assert!(run(&"0".repeat(64), data.len() as u64).contains("corrupted"));
        assert!(!installed.exists());
        assert!(run(&sha, 99).contains("short"));
        assert!(!installed.exists());
        // A directory anyone may write is made private first.
        use std::os::unix::fs::PermissionsExt;
        let dir = installed.parent().unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(run(&sha, data.len() as u64).contains("DISTANT-UPLOAD ok"));
        assert_eq!(std::fs::read(&installed).unwrap(), data);
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let recorded = std::fs::read_to_string(format!("{}.sha256", installed.display())).unwrap();
        assert_eq!(recorded.trim(), sha);
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                format!("distant-server-{VERSION}"),
                format!("distant-server-{VERSION}.sha256")
            ],
            "no temporary file is left behind"
        );
        // Compressed on the wire: the same file arrives.
        std::fs::remove_file(&installed).unwrap();
        let packed = gzip(data).unwrap();
        let out = run_sh(&upload_script(&sha, data.len() as u64, true), &tmp, &packed);
        assert!(out.contains("DISTANT-UPLOAD ok"), "{out}");
        assert_eq!(std::fs::read(&installed).unwrap(), data);
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn an_installed_server_runs_only_when_its_owner_mode_and_hash_are_right() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = fake_home("check");
        let sha = hex::encode(Sha256::digest(FAKE_SERVER));
        let out = run_sh(
            &upload_script(&sha, FAKE_SERVER.len() as u64, false),
            &tmp,
            FAKE_SERVER,
        );
        assert!(out.contains("DISTANT-UPLOAD ok"), "{out}");
        let installed = tmp
            .join(INSTALL_DIR)
            .join(format!("distant-server-{VERSION}"));
        let path = installed.display().to_string();
        let probe = |hash: bool| run_sh(&probe_or_exec_script(hash), &tmp, b"");
        let refused = |text: &str| parse_probe(text).and_then(|p| p.refused);

        // As uploaded: run, hash checked or not.
        for hash in [true, false] {
            let out = probe(hash);
            assert!(out.contains(&format!("DISTANT-PATH {path}")), "{out}");
            assert!(out.contains("FAKE-SERVER-RAN proxy"), "{out}");
        }
        assert!(run_sh(&checked_proxy_script(&path), &tmp, b"").contains("FAKE-SERVER-RAN proxy"));

        // Changed bytes, same owner and mode: the hash check catches it
        // (once per version: a connect that skips the hash runs it).
        std::fs::write(&installed, b"#!/bin/sh\necho TAMPERED\n").unwrap();
        let out = probe(true);
        assert!(!out.contains("TAMPERED"), "{out}");
        assert!(refused(&out).unwrap().contains("SHA-256"), "{out}");
        std::fs::write(&installed, FAKE_SERVER).unwrap();
        assert!(probe(true).contains("FAKE-SERVER-RAN"));

        // Writable by the group: refused by the probe and by a redial.
        std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(0o770)).unwrap();
        let out = probe(false);
        assert!(!out.contains("FAKE-SERVER-RAN"), "{out}");
        assert!(
            refused(&out).unwrap().contains("group or others may write"),
            "{out}"
        );
        let out = run_sh(&checked_proxy_script(&path), &tmp, b"");
        assert!(out.starts_with("DISTANT-REFUSED "), "{out}");
        assert!(!out.contains("FAKE-SERVER-RAN"), "{out}");
        std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(0o700)).unwrap();

        // A symlink in its place (to a file that would pass) is refused.
        let elsewhere = tmp.join("elsewhere");
        std::fs::write(&elsewhere, FAKE_SERVER).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::remove_file(&installed).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &installed).unwrap();
        let out = probe(false);
        assert!(
            refused(&out).unwrap().contains("not a regular file"),
            "{out}"
        );
        // The upload replaces the link itself, not its target.
        let out = run_sh(
            &upload_script(&sha, FAKE_SERVER.len() as u64, false),
            &tmp,
            FAKE_SERVER,
        );
        assert!(out.contains("DISTANT-UPLOAD ok"), "{out}");
        assert!(!std::fs::symlink_metadata(&installed).unwrap().is_symlink());
        assert!(probe(true).contains("FAKE-SERVER-RAN"));

        // Owned by someone else (needs root to arrange; CI runs as root).
        if unsafe { libc::geteuid() } == 0 {
            let c = std::ffi::CString::new(path.clone()).unwrap();
            assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
            let out = probe(false);
            assert!(refused(&out).unwrap().contains("not owned by"), "{out}");
            // Nor is an install directory of someone else's used.
            let dir =
                std::ffi::CString::new(installed.parent().unwrap().display().to_string()).unwrap();
            assert_eq!(unsafe { libc::chown(dir.as_ptr(), 65534, 65534) }, 0);
            let out = run_sh(
                &upload_script(&sha, FAKE_SERVER.len() as u64, false),
                &tmp,
                FAKE_SERVER,
            );
            assert!(out.contains("is not a directory owned by"), "{out}");
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn ssh_failures_are_classified() {
        use std::os::unix::process::ExitStatusExt;
        let ssh_exit = Some(ExitStatus::from_raw(255 << 8));
        let e = ssh_failure(
            "ssh://h",
            ssh_exit,
            "me@h: Permission denied (publickey,password).",
            "x",
        );
        assert_eq!(e.kind, ErrorKind::AuthFailed);
        assert!(e.message.starts_with("ssh authentication failed"));
        assert!(e
            .message
            .contains("Permission denied (publickey,password)."));
        let e = ssh_failure("ssh://h", ssh_exit, "Host key verification failed.", "x");
        assert_eq!(e.kind, ErrorKind::AuthFailed);
        let e = ssh_failure(
            "ssh://h",
            ssh_exit,
            "ssh: connect to host h port 22: Connection timed out",
            "x",
        );
        assert_eq!(e.kind, ErrorKind::Timeout);
        let e = ssh_failure(
            "ssh://h",
            ssh_exit,
            "ssh: Could not resolve hostname h: Name or service not known",
            "x",
        );
        assert_eq!(e.kind, ErrorKind::Other);
        assert!(e.message.starts_with("could not reach ssh://h"));
        assert!(e.message.contains("Could not resolve hostname"));
    }
}

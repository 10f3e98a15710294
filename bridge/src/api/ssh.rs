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
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, BufReader, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Notify;

use super::lock;
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
}

impl Default for SshOptions {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            binary: None,
            remote_server: None,
            upload: true,
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
}

/// The first dial, as run by the remote's `sh`: start the proxy when our
/// version is installed (saying where), else describe the remote.
fn probe_or_exec_script() -> String {
    format!(
        r#"f="$HOME/{INSTALL_DIR}/distant-server-{VERSION}"
if [ -f "$f" ] && [ -x "$f" ]; then echo "DISTANT-PATH $f"; exec "$f" proxy; fi
echo "DISTANT-PROBE 1"
echo "os=$(uname -s)"
echo "arch=$(uname -m)"
echo "path=$f"
echo "installed=no"
"#
    )
}

fn parse_probe(stdout: &str) -> Option<Probe> {
    let mut lines = stdout.lines().skip_while(|l| l.trim() != "DISTANT-PROBE 1");
    lines.next()?;
    let (mut os, mut arch, mut path, mut installed) = (None, None, None, None);
    for line in lines {
        match line.split_once('=') {
            Some(("os", v)) => os = Some(v.trim().to_owned()),
            Some(("arch", v)) => arch = Some(v.trim().to_owned()),
            Some(("path", v)) => path = Some(v.to_owned()),
            Some(("installed", v)) => installed = Some(v.trim() == "yes"),
            _ => {}
        }
    }
    Some(Probe {
        os: os.filter(|s| !s.is_empty())?,
        arch: arch.filter(|s| !s.is_empty())?,
        path: path.filter(|p| p.starts_with('/'))?,
        installed: installed?,
    })
}

/// The upload, as run by the remote's `sh`, reading the binary on stdin.
fn upload_script(sha256: &str, size: u64) -> String {
    format!(
        r#"set -e
umask 077
d="$HOME/{INSTALL_DIR}"
f="$d/distant-server-{VERSION}"
t="$d/.distant-server-{VERSION}.upload.$$"
mkdir -p "$d"
trap 'rm -f "$t"' EXIT
cat > "$t"
n=$(wc -c < "$t" | tr -d ' ')
if [ "$n" != "{size}" ]; then echo "DISTANT-UPLOAD short: $n of {size} bytes arrived"; exit 3; fi
if command -v sha256sum >/dev/null 2>&1; then h=$(sha256sum "$t" | cut -d' ' -f1)
elif command -v shasum >/dev/null 2>&1; then h=$(shasum -a 256 "$t" | cut -d' ' -f1)
elif command -v openssl >/dev/null 2>&1; then h=$(openssl dgst -sha256 -r "$t" | cut -d' ' -f1)
else echo "DISTANT-UPLOAD none of sha256sum, shasum or openssl is installed to check the upload"; exit 3; fi
if [ "$h" != "{sha256}" ]; then echo "DISTANT-UPLOAD the upload arrived corrupted (sha256 $h)"; exit 3; fi
chmod 700 "$t"
mv -f "$t" "$f"
echo "DISTANT-UPLOAD ok"
"#
    )
}

/// An OS and architecture, normalised (`Linux`/`Darwin`/…, `x86_64`/
/// `aarch64`/…).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Platform {
    os: String,
    arch: String,
}

impl Platform {
    fn from_uname(os: &str, arch: &str) -> Self {
        let arch = match arch {
            "x86_64" | "amd64" => "x86_64",
            "aarch64" | "arm64" | "aarch64_be" => "aarch64",
            "i386" | "i486" | "i586" | "i686" | "x86" => "x86",
            a if a.starts_with("armv") || a == "arm" => "arm",
            a => a,
        };
        Self {
            os: os.to_owned(),
            arch: arch.to_owned(),
        }
    }

    /// Reads a binary's header (ELF or Mach-O); `None` if unrecognised.
    fn of_binary(header: &[u8]) -> Option<Self> {
        if header.len() >= 20 && header.starts_with(b"\x7fELF") {
            let le = header[5] == 1;
            let machine = if le {
                u16::from_le_bytes([header[18], header[19]])
            } else {
                u16::from_be_bytes([header[18], header[19]])
            };
            let arch = match machine {
                0x3e => "x86_64",
                0xb7 => "aarch64",
                0x03 => "x86",
                0x28 => "arm",
                0xf3 => "riscv64",
                0x15 => "ppc64",
                0x16 => "s390x",
                _ => return None,
            };
            let os = match header[7] {
                9 => "FreeBSD",
                12 => "OpenBSD",
                2 => "NetBSD",
                _ => "Linux",
            };
            return Some(Self::from_uname(os, arch));
        }
        if header.len() >= 8 && header[..4] == [0xcf, 0xfa, 0xed, 0xfe] {
            let cpu = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let arch = match cpu {
                0x0100_0007 => "x86_64",
                0x0100_000c => "aarch64",
                _ => return None,
            };
            return Some(Self::from_uname("Darwin", arch));
        }
        None
    }

    /// The Rust target to build for this platform.
    fn rust_target(&self) -> String {
        match (self.os.as_str(), self.arch.as_str()) {
            ("Linux", "arm") => "armv7-unknown-linux-gnueabihf".into(),
            ("Linux", "x86") => "i686-unknown-linux-gnu".into(),
            ("Linux", "riscv64") => "riscv64gc-unknown-linux-gnu".into(),
            ("Linux", a) => format!("{a}-unknown-linux-gnu"),
            ("Darwin", a) => format!("{a}-apple-darwin"),
            ("FreeBSD", a) => format!("{a}-unknown-freebsd"),
            (os, a) => format!("{a} {os}"),
        }
    }

    fn shown(&self) -> String {
        format!("{} {}", self.os, self.arch)
    }
}

/// A local binary to upload: path, size, SHA-256, platform.
struct LocalBinary {
    path: PathBuf,
    size: u64,
    sha256: String,
    platform: Option<Platform>,
}

fn inspect(path: &Path) -> io::Result<LocalBinary> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut header = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if header.len() < 64 {
            header.extend_from_slice(&buf[..n.min(64 - header.len())]);
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(LocalBinary {
        path: path.to_path_buf(),
        size,
        sha256: hex::encode(hasher.finalize()),
        platform: Platform::of_binary(&header),
    })
}

/// Runs one short ssh command; returns its status, stdout and stderr. With
/// `input`, that file is streamed to its stdin.
async fn run_once(
    target: &SshTarget,
    remote: &str,
    input: Option<&Path>,
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
            (Some(path), Some(mut sink)) => {
                let mut file = tokio::fs::File::open(path).await?;
                tokio::io::copy(&mut file, &mut sink).await?;
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
    if !target.options.upload {
        return Err(RpcError::new(
            ErrorKind::NotFound,
            format!(
                "{shown} has no distant-server {VERSION} at {} and uploading is off \
                 (options.upload: false); install it there, or name it in options.remoteServer",
                probe.path
            ),
        ));
    }
    let local = super::local::find_binary(server_binary).map_err(|e| {
        RpcError::new(
            e.kind,
            format!("{shown} has no distant-server {VERSION} to run and there is none here to upload: {}", e.message),
        )
    })?;
    let binary = {
        let path = local.clone();
        tokio::task::spawn_blocking(move || inspect(&path))
            .await
            .map_err(|e| RpcError::internal(format!("hashing the server binary: {e}")))?
            .map_err(|e| {
                RpcError::new(
                    ErrorKind::Other,
                    format!("cannot read {} to upload it: {e}", local.display()),
                )
            })?
    };
    let remote_platform = Platform::from_uname(&probe.os, &probe.arch);
    match &binary.platform {
        Some(p) if *p != remote_platform => {
            return Err(RpcError::new(
                ErrorKind::Unsupported,
                format!(
                    "{shown} is {remote}; this bridge's distant-server ({path}) is for {local}. \
                     Build distant-server {VERSION} for {triple} and pass it with \
                     --server-binary, or install it on the remote and name it in \
                     options.remoteServer",
                    remote = remote_platform.shown(),
                    path = binary.path.display(),
                    local = p.shown(),
                    triple = remote_platform.rust_target(),
                ),
            ));
        }
        Some(_) => {}
        None => tracing::warn!(
            "cannot tell which platform {} is for; uploading it to {shown} ({}) anyway",
            binary.path.display(),
            remote_platform.shown()
        ),
    }
    tracing::info!(
        destination = %shown,
        "uploading distant-server {VERSION} ({} bytes, from {}) to {}",
        binary.size,
        binary.path.display(),
        probe.path
    );
    let started = Instant::now();
    let remote = format!(
        "sh -c {}",
        sh_quote(&upload_script(&binary.sha256, binary.size))
    );
    let (status, stdout, stderr) = run_once(
        target,
        &remote,
        Some(&binary.path),
        UPLOAD_TIMEOUT,
        "uploading distant-server",
    )
    .await?;
    if status.success() && stdout.lines().any(|l| l.trim() == "DISTANT-UPLOAD ok") {
        tracing::info!(destination = %shown, "uploaded in {:?}", started.elapsed());
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

/// The remote command that starts the proxy.
fn proxy_command(path: &str) -> String {
    format!("exec {} proxy", sh_quote(path))
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

/// Dials the proxy at `path`.
async fn dial_proxy(
    target: &SshTarget,
    path: &str,
) -> Result<(Box<SshTransport>, StaticKey, Arc<Notify>), RpcError> {
    match dial(target, &proxy_command(path), path).await? {
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
        let key = self.key.clone();
        let server_binary = self.server_binary.clone();
        let previous = self.previous.clone();
        Box::pin(async move {
            let shown = target.display();
            let dialled = match dial_proxy(&target, &path).await {
                // The versioned binary is gone (a cleanup removed it): find
                // or upload it again, as the first connect did.
                Err(e)
                    if e.kind == ErrorKind::NotFound && target.options.remote_server.is_none() =>
                {
                    tracing::info!(destination = %shown, "the remote distant-server vanished: {}", e.message);
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
        let (t, k, kill) = dial_proxy(target, path).await?;
        return Ok((t, k, kill, path.clone()));
    }
    let remote = format!("sh -c {}", sh_quote(&probe_or_exec_script()));
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
            Ok((transport, key, kill, path))
        }
        Dialled::Probe(probe) => {
            let path = install(target, probe, server_binary).await?;
            let (t, k, kill) = dial_proxy(target, &path).await?;
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

    #[test]
    fn the_probe_runs_in_sh_and_is_parsed() {
        let tmp = std::env::temp_dir().join(format!("distant-probe-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(probe_or_exec_script())
            .env("HOME", &tmp)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&tmp);
        let text = String::from_utf8(out.stdout).unwrap();
        let probe = parse_probe(&format!("motd junk\n{text}")).expect(&text);
        assert!(!probe.installed);
        assert!(probe.path.ends_with(&format!("/distant-server-{VERSION}")));
        assert!(probe.path.starts_with(&tmp.display().to_string()));
        assert!(!probe.os.is_empty() && !probe.arch.is_empty());
        assert_eq!(parse_probe("nothing here"), None);
        assert_eq!(parse_probe("DISTANT-PROBE 1\nos=Linux\n"), None);
    }

    #[test]
    fn the_upload_script_checks_size_and_hash() {
        let tmp = std::env::temp_dir().join(format!("distant-upload-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let data = b"pretend binary";
        let sha = hex::encode(Sha256::digest(data));
        let run = |sha: &str, size: u64| {
            use std::io::Write;
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(upload_script(sha, size))
                .env("HOME", &tmp)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(data).unwrap();
            let out = child.wait_with_output().unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let installed = tmp
            .join(INSTALL_DIR)
            .join(format!("distant-server-{VERSION}"));
        assert!(run(&"0".repeat(64), data.len() as u64).contains("corrupted"));
        assert!(!installed.exists());
        assert!(run(&sha, 99).contains("short"));
        assert!(!installed.exists());
        assert!(run(&sha, data.len() as u64).contains("DISTANT-UPLOAD ok"));
        assert_eq!(std::fs::read(&installed).unwrap(), data);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let leftovers = std::fs::read_dir(installed.parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn platforms_from_uname_and_headers() {
        assert_eq!(
            Platform::from_uname("Linux", "amd64"),
            Platform::from_uname("Linux", "x86_64")
        );
        assert_eq!(Platform::from_uname("Darwin", "arm64").arch, "aarch64");
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[5] = 1;
        elf[18] = 0xb7;
        let p = Platform::of_binary(&elf).unwrap();
        assert_eq!(p, Platform::from_uname("Linux", "aarch64"));
        assert_eq!(p.rust_target(), "aarch64-unknown-linux-gnu");
        let mut macho = vec![0xcf, 0xfa, 0xed, 0xfe];
        macho.extend_from_slice(&0x0100_000cu32.to_le_bytes());
        let p = Platform::of_binary(&macho).unwrap();
        assert_eq!(p.rust_target(), "aarch64-apple-darwin");
        assert_eq!(Platform::of_binary(b"#!/bin/sh\n"), None);
        // This very test binary is for the machine running it.
        let me = inspect(&std::env::current_exe().unwrap()).unwrap();
        let uname = |flag: &str| {
            let out = std::process::Command::new("uname")
                .arg(flag)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        assert_eq!(
            me.platform,
            Some(Platform::from_uname(&uname("-s"), &uname("-m")))
        );
        assert_eq!(me.sha256.len(), 64);
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

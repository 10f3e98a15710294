//! A real OpenSSH server for the `ssh_*` tests: `/usr/sbin/sshd -D -e`
//! on 127.0.0.1 and a free port, with a host key, a client key and an
//! `authorized_keys` generated into a temporary directory, admitting only
//! the `distant-test` user that `.ci/setup-ssh.sh` creates. An ssh client
//! config (`ssh -F`) names it `distant-test-alias` (and
//! `distant-test-wrong-key`, `distant-test-closed` for the failure
//! tests), as a user's `~/.ssh/config` would.
//!
//! The remote user's `~/.local/share/distant` and its distant-server
//! daemon are shared by every test, so the tests of a binary take
//! [`serial`] first; [`Sshd::reset_remote`] puts the account back to "never
//! saw distant".

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::api_support::TempDir;
#[allow(unused_imports)]
pub use distant_testkit::children_named;

pub const USER: &str = "distant-test";
pub const ALIAS: &str = "distant-test-alias";
pub const WRONG_KEY_ALIAS: &str = "distant-test-wrong-key";
pub const CLOSED_ALIAS: &str = "distant-test-closed";
const SSHD: &str = "/usr/sbin/sshd";
const SETUP: &str =
    "run `sudo bash .ci/setup-ssh.sh` (installs openssh-server and the distant-test user)";

/// The static server the bridge under test uploads to this machine's
/// architecture (`scripts/build-servers`).
pub fn uploaded_server() -> PathBuf {
    distant_testkit::uploadable_server(std::env::consts::ARCH)
}

/// One ssh test at a time: they share the remote account.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The test user's uid and home, or a failure saying how to create it.
pub fn test_user() -> (u32, PathBuf) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.split(':').next() == Some(USER))
        .unwrap_or_else(|| panic!("there is no user {USER} on this machine: {SETUP}"));
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].parse().expect("uid"), PathBuf::from(fields[5]))
}

pub struct Sshd {
    child: Child,
    pub dir: TempDir,
    pub port: u16,
    /// The `ssh -F` config naming the aliases.
    pub config: PathBuf,
    pub uid: u32,
    pub home: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "distant-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen ({e}): {SETUP}"));
    assert!(status.success(), "ssh-keygen failed");
}

impl Sshd {
    /// Starts sshd; fails (never skips) when the machine is not set up.
    pub fn start() -> Self {
        assert!(Path::new(SSHD).exists(), "{SSHD} is missing: {SETUP}");
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, 0, "the ssh tests run sshd and must run as root");
        let (uid, home) = test_user();
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        // What the bridge uploads: the static build it finds in
        // target/servers/ (built here if missing or stale).
        uploaded_server();

        let dir = TempDir::new("sshd");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = |name: &str| dir.path().join(name);
        keygen(&p("host_key"));
        keygen(&p("client_key"));
        keygen(&p("wrong_key"));
        let authorized = p("authorized_keys");
        std::fs::copy(p("client_key.pub"), &authorized).unwrap();
        std::fs::set_permissions(&authorized, std::fs::Permissions::from_mode(0o644)).unwrap();

        for _attempt in 0..5 {
            let port = free_port();
            let sshd_config = p("sshd_config");
            std::fs::write(
                &sshd_config,
                format!(
                    "Port {port}\n\
                     ListenAddress 127.0.0.1\n\
                     HostKey {host_key}\n\
                     PidFile none\n\
                     UsePAM no\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     PubkeyAuthentication yes\n\
                     AuthorizedKeysFile {authorized}\n\
                     StrictModes no\n\
                     AllowUsers {USER}\n\
                     PrintMotd no\n\
                     PrintLastLog no\n\
                     MaxStartups 100\n\
                     MaxSessions 100\n\
                     LogLevel VERBOSE\n",
                    host_key = p("host_key").display(),
                    authorized = authorized.display(),
                ),
            )
            .unwrap();
            let log = std::fs::File::create(p("sshd.log")).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&sshd_config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {SSHD} ({e}): {SETUP}"));
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut up = false;
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if !up {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(p("sshd.log")).unwrap_or_default();
                if log.contains("Address already in use") {
                    continue;
                }
                panic!("sshd did not start:\n{log}");
            }
            let config = p("ssh_config");
            let closed = free_port();
            let host = |alias: &str, port: u16, key: &str| {
                format!(
                    "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {USER}\n  \
                     IdentityFile {}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
                     UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
                    p(key).display()
                )
            };
            std::fs::write(
                &config,
                host(ALIAS, port, "client_key")
                    + &host(WRONG_KEY_ALIAS, port, "wrong_key")
                    + &host(CLOSED_ALIAS, closed, "client_key"),
            )
            .unwrap();
            return Self {
                child,
                dir,
                port,
                config,
                uid,
                home,
            };
        }
        panic!("no free port for sshd after 5 attempts");
    }

    /// `options` for `connect` through this sshd's config (`-F` is allowed
    /// explicitly: it is the test's own config).
    pub fn options(&self) -> serde_json::Value {
        serde_json::json!({"ssh": ["-F", self.config.display().to_string()], "allowLocalCommands": true})
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The versioned server path uploads go to.
    pub fn remote_binary(&self) -> PathBuf {
        self.home.join(format!(
            ".local/share/distant/bin/distant-server-{}",
            env!("CARGO_PKG_VERSION")
        ))
    }

    /// The test user's `authorized_keys` (sshd reads it at every login).
    pub fn authorized_keys(&self) -> PathBuf {
        self.dir.path().join("authorized_keys")
    }

    /// Lets only `wrong_key` log in (`false`) or the client's key again.
    pub fn admit_client_key(&self, admit: bool) {
        let key = if admit {
            "client_key.pub"
        } else {
            "wrong_key.pub"
        };
        std::fs::copy(self.dir.path().join(key), self.authorized_keys()).unwrap();
    }

    /// Kills the test user's distant-server processes (the daemon and its
    /// proxies).
    pub fn kill_servers(&self) {
        kill_user_servers(self.uid);
    }

    /// Kills the test user's distant-server processes and removes
    /// `~/.local/share/distant`: a remote that never saw distant.
    pub fn reset_remote(&self) {
        kill_user_servers(self.uid);
        let _ = std::fs::remove_dir_all(self.home.join(".local/share/distant"));
        let _ = std::fs::remove_dir_all(self.home.join(".local/state/distant"));
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_user_servers(self.uid);
    }
}

/// Pids of processes of `uid` running a `distant-server*` binary.
pub fn user_servers(uid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for pid in distant_testkit::all_pids() {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let owner = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok());
        if owner != Some(uid) {
            continue;
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let name = exe
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("distant-server") {
            pids.push(pid);
        }
    }
    pids
}

fn kill_user_servers(uid: u32) {
    for pid in user_servers(uid) {
        // SAFETY: signalling a test user's server, started by these tests.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

/// Socket inodes held open by `pid`.
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Inodes of listening TCP sockets (IPv4 and IPv6), from /proc/net.
pub fn tcp_listen_inodes() -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if cols.len() > 9 && cols[3] == "0A" {
                if let Ok(inode) = cols[9].parse() {
                    inodes.push(inode);
                }
            }
        }
    }
    inodes
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

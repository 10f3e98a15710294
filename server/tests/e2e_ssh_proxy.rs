//! ssh mode without ssh: `distant-server proxy` children stand in for what
//! ssh would run, with HOME and XDG_RUNTIME_DIR in a temporary directory.
//! The proxy starts the per-user daemon, greets with the key, and relays;
//! the protocol driver talks through the child's stdio.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use distant_protocol::auth::StaticKey;
use distant_protocol::driver::client::{self, DialFuture, Dialer};
use distant_protocol::driver::rpc::RpcClient;
use distant_protocol::msg::{Op, OutputFraming, Reply};
use support::*;

const T: Duration = Duration::from_secs(20);

/// A temporary HOME/XDG_RUNTIME_DIR; kills the daemon it ran on drop.
struct Home {
    tmp: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("xdg")).unwrap();
        Self { tmp }
    }
    fn xdg(&self) -> PathBuf {
        self.tmp.path().join("xdg")
    }
    fn run_dir(&self) -> PathBuf {
        self.xdg().join("distant")
    }
    fn env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("HOME", self.tmp.path().to_path_buf()),
            ("XDG_RUNTIME_DIR", self.xdg()),
            // What an ssh login sets; stale for every later login.
            ("SSH_AUTH_SOCK", self.tmp.path().join("agent.sock")),
            ("SSH_CONNECTION", PathBuf::from("10.0.0.1 5000 10.0.0.2 22")),
        ]
    }
    fn daemon_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.run_dir().join("daemon.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }
    async fn proxy(&self) -> std::io::Result<(ChildTransport, StaticKey)> {
        let env = self.env();
        let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        ChildTransport::spawn_proxy(&["--idle-exit", "60"], &env).await
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Some(pid) = self.daemon_pid() {
            // SAFETY: signalling the daemon this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Connects through proxies: every dial spawns a new `proxy` child. Returns
/// the client and the pids of the proxies spawned so far.
async fn connect(home: &Arc<Home>) -> (RpcClient, Arc<Mutex<Vec<u32>>>) {
    let (_, key) = home.proxy().await.expect("first proxy");
    let pids = Arc::new(Mutex::new(Vec::new()));
    let (h, p, k) = (home.clone(), pids.clone(), key.clone());
    let dialer: Arc<dyn Dialer> = Arc::new(move || -> DialFuture {
        let (h, p, k) = (h.clone(), p.clone(), k.clone());
        Box::pin(async move {
            let (transport, key) = h.proxy().await?;
            assert_eq!(key, k, "every proxy announces the same key");
            p.lock().unwrap().push(transport.child.id().unwrap());
            Ok(Box::new(transport) as _)
        })
    });
    let session = client::connect(client_options(&key, Duration::from_secs(30)), dialer)
        .await
        .expect("connect through the proxy");
    (RpcClient::new(session), pids)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_proxy_starts_a_private_daemon_and_a_second_proxy_reuses_it() {
    let home = Arc::new(Home::new());
    let (rpc, _) = connect(&home).await;
    let dir = home.run_dir();
    assert_eq!(mode(&dir), 0o700, "daemon directory");
    assert_eq!(mode(&dir.join("server.sock")), 0o600, "socket");
    assert_eq!(mode(&dir.join("server.key")), 0o600, "key file");
    let pid = home.daemon_pid().expect("daemon.pid");
    assert!(pid_alive(pid));
    let inode = std::fs::metadata(dir.join("server.sock")).unwrap().ino();

    let file = home.tmp.path().join("f.txt");
    let r = rpc
        .call(Op::FileWrite {
            path: file.display().to_string(),
            data: Bytes::from_static(b"through ssh"),
            options: Default::default(),
        })
        .await
        .unwrap();
    assert!(matches!(r, Reply::FileWritten(_)), "{r:?}");
    assert_eq!(read_file(&rpc, &file).await, b"through ssh");

    // A second client through another proxy: same daemon.
    let (rpc2, _) = connect(&home).await;
    assert_eq!(read_file(&rpc2, &file).await, b"through ssh");
    assert_eq!(home.daemon_pid(), Some(pid));
    assert_eq!(
        std::fs::metadata(dir.join("server.sock")).unwrap().ino(),
        inode
    );

    // A daemon started by hand while one runs exits 0 and says nothing.
    let out = std::process::Command::new(BIN)
        .arg("daemon")
        .envs(home.env())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    assert_eq!(home.daemon_pid(), Some(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_stale_socket_is_replaced() {
    let home = Arc::new(Home::new());
    let dir = home.run_dir();
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A socket file nobody listens on any more.
    drop(std::os::unix::net::UnixListener::bind(dir.join("server.sock")).unwrap());
    let stale = std::fs::metadata(dir.join("server.sock")).unwrap().ino();
    let (rpc, _) = connect(&home).await;
    assert_eq!(
        rpc.call(Op::Exists { path: "/".into() }).await.unwrap(),
        Reply::Exists(true)
    );
    assert_ne!(
        std::fs::metadata(dir.join("server.sock")).unwrap().ino(),
        stale
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_an_open_directory_is_refused_with_advice() {
    let home = Home::new();
    let dir = home.run_dir();
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(BIN)
        .arg("proxy")
        .envs(home.env())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no greeting from an unsafe setup");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 700"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_killed_proxy_is_replaced_and_processes_survive() {
    let home = Arc::new(Home::new());
    let (rpc, pids) = connect(&home).await;
    let mut proc = rpc
        .stream(Op::ProcSpawn {
            cmd: vec!["cat".into()],
            cwd: None,
            env: BTreeMap::new(),
            pty: None,
            framing: OutputFraming::Raw,
        })
        .await
        .unwrap();
    let (id, pid) = match tokio::time::timeout(T, proc.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        Reply::ProcSpawned { proc, pid } => (proc, pid),
        other => panic!("{other:?}"),
    };

    // ssh dies: its proxy is gone mid-session.
    let first = pids.lock().unwrap()[0];
    // SAFETY: killing the proxy child this test spawned.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    wait_until("a new proxy", T, || pids.lock().unwrap().len() >= 2).await;
    wait_for_state(&rpc, "connected", T).await;
    assert!(pid_alive(pid), "the process survived the lost proxy");

    // The process still answers on the original stream.
    let r = rpc
        .call(Op::ProcStdin {
            proc: id,
            data: Bytes::from_static(b"after the cut\n"),
        })
        .await
        .unwrap();
    assert_eq!(r, Reply::Ok);
    let mut out = Vec::new();
    while out != b"after the cut\n" {
        match tokio::time::timeout(T, proc.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Reply::ProcOutput { data, .. } => out.extend_from_slice(&data),
            other => panic!("{other:?}"),
        }
    }
    rpc.call(Op::ProcKill {
        proc: id,
        signal: Some("KILL".into()),
    })
    .await
    .unwrap();
}

/// Issue 14, item 9: the per-user daemon outlives the ssh login that
/// started it; that login's agent socket and address never reach the
/// processes of any session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_the_daemon_does_not_hand_on_the_first_logins_environment() {
    let home = Arc::new(Home::new());
    let (rpc, _) = connect(&home).await;
    let daemon = home.daemon_pid().expect("daemon.pid");
    let (pid, _stream) = spawn_pid(&rpc, &["sleep", "300"], false).await;
    // Until exec, a forked child shows its parent's environment.
    wait_until("the child to exec sleep", T, || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    })
    .await;
    let env = environ(pid);
    assert!(env.iter().any(|v| v == "FROM_REQUEST=1"), "{env:?}");
    for v in &env {
        assert!(
            !v.starts_with("SSH_AUTH_SOCK=") && !v.starts_with("SSH_CONNECTION="),
            "{v} reached a spawned process"
        );
    }
    for v in environ(daemon) {
        assert!(!v.starts_with("SSH_AUTH_SOCK="), "the daemon kept {v}");
    }
    // SAFETY: ends the process this test spawned.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

//! Permission denied, for real. Root bypasses permission bits, so when the
//! suite runs as root the session runs in a child process (this test binary
//! re-executed) as `nobody`. Skipped only when running as root and the
//! child cannot be started as `nobody` (it says so on stderr).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::*;
use distant_protocol::msg::{ErrorKind, Op, WriteOptions};

const CHILD_ENV: &str = "DISTANT_TEST_PERMISSION_DIR";
const NOBODY: u32 = 65534;

/// Runs the denied operations in a session; returns one line per op.
fn denied_ops(dir: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::start();
        let mut out = Vec::new();
        let secret = format!("{dir}/secret.txt");
        match c.read(&secret).await {
            Err((k, m)) => out.push(format!("read {k:?} {m}")),
            Ok(_) => out.push("read succeeded".into()),
        }
        let r = c
            .write(&format!("{dir}/new.txt"), b"x", WriteOptions::default())
            .await;
        out.push(format!("write {:?} {}", err_kind(&r), err_msg(&r)));
        let r = c
            .call(Op::Remove {
                path: secret.clone(),
                force: false,
            })
            .await;
        out.push(format!("remove {:?} {}", err_kind(&r), err_msg(&r)));
        c.close().await;
        out
    })
}

#[test]
fn permission_denied_is_reported_with_the_path() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        for line in denied_ops(&dir) {
            println!("\nRESULT {line}");
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("locked");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("secret.txt"), b"s").unwrap();
    fs::set_permissions(root.join("secret.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    // Readable and searchable by everyone, writable by the owner only.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();

    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    let lines = if as_root {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "permission_denied_is_reported_with_the_path",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, s(&root))
            .uid(NOBODY)
            .gid(NOBODY)
            .output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_once("RESULT ").map(|(_, r)| r.to_string()))
                .collect::<Vec<_>>(),
            Ok(o) => panic!(
                "child as nobody failed: {}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => {
                eprintln!("SKIPPED: running as root and cannot run a child as nobody ({e})");
                return;
            }
        }
    } else {
        fs::set_permissions(&root, fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(root.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
        denied_ops(&s(&root))
    };
    eprintln!("{lines:#?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, op) in lines.iter().zip(["read", "write", "remove"]) {
        let want = format!("{op} {:?} ", ErrorKind::PermissionDenied);
        assert!(line.starts_with(&want), "{line}");
        assert!(line.contains(&s(&root)), "message names the path: {line}");
    }
    // Nothing changed.
    assert!(root.join("secret.txt").exists());
    assert!(!root.join("new.txt").exists());
}

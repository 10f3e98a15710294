//! The manager's socket and directory are private from creation, and a
//! directory others can access is refused with a clear message.

mod manager_support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use manager_support::*;

#[tokio::test]
async fn socket_is_0600_and_dir_0700_right_after_creation() {
    let env = Env::new("perm");
    let mut manager = env
        .command(&["manager", "--foreground", "--idle-exit", "30"])
        .spawn()
        .expect("spawn manager");
    let socket = env.socket();
    wait_until(Duration::from_secs(10), "the socket", || socket.exists()).await;
    assert_eq!(mode(&env.dir()), 0o700, "directory mode");
    assert_eq!(mode(&socket), 0o600, "socket mode");
    assert_eq!(mode(&env.dir().join("manager.lock")), 0o600);
    assert_eq!(mode(&env.pid_file()), 0o600);
    let pid = env.manager_pid().expect("pid file");
    assert_eq!(Some(pid), manager.id());
    manager.kill().await.expect("kill");
}

#[tokio::test]
async fn on_demand_manager_files_are_private() {
    let env = Env::new("perm2");
    let mut bridge = env.stdio(&[]);
    initialize(&bridge.client()).await;
    assert_eq!(mode(&env.dir()), 0o700);
    assert_eq!(mode(&env.socket()), 0o600);
    assert_eq!(mode(&env.dir().join("manager.log")), 0o600);
}

#[tokio::test]
async fn a_non_private_existing_dir_is_refused() {
    let env = Env::new("open");
    std::fs::create_dir(env.dir()).expect("mkdir");
    std::fs::set_permissions(env.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let (code, _, err) = env.run(&["manager", "--foreground"], b"").await;
    assert_ne!(code, 0);
    assert!(err.contains("is not private"), "{err}");
    assert!(
        err.contains("chmod 700"),
        "tells the user what to do: {err}"
    );

    let (code, out, err) = env.run(&["stdio"], b"").await;
    assert_ne!(code, 0);
    assert!(out.is_empty(), "nothing on stdout: {out}");
    assert!(err.contains("is not private"), "{err}");
    assert!(!env.socket().exists(), "no socket in a shared directory");
}

#[tokio::test]
async fn a_symlinked_dir_is_refused() {
    let env = Env::new("link");
    let elsewhere = TempDir::new("elsewhere");
    std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    std::os::unix::fs::symlink(elsewhere.path(), env.dir()).expect("symlink");
    let (code, _, err) = env.run(&["status"], b"").await;
    assert_ne!(code, 0);
    assert!(err.contains("symbolic link"), "{err}");
}

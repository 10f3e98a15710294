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

/// Issue 14, item 7: a directory another user made where ours should be is
/// refused with advice that fits (not `chmod`, which cannot work on it).
#[tokio::test]
async fn another_users_directory_is_refused_with_advice_that_fits() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to make a directory owned by another user");
        return;
    }
    let env = Env::new("theirs");
    std::fs::create_dir(env.dir()).expect("mkdir");
    std::fs::set_permissions(env.dir(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let name = std::ffi::CString::new("distant-test").unwrap();
    // SAFETY: getpwnam with a valid C string; the entry is read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "the user distant-test is missing: run .ci/setup-ssh.sh"
    );
    // SAFETY: non-null entry from getpwnam.
    let uid = unsafe { (*pw).pw_uid };
    std::os::unix::fs::chown(env.dir(), Some(uid), None).expect("chown");
    let (code, _, err) = env.run(&["status"], b"").await;
    assert_ne!(code, 0);
    assert!(
        err.contains("another user")
            && err.contains("XDG_RUNTIME_DIR")
            && !err.contains("chmod 700"),
        "{err}"
    );
    assert!(!env.socket().exists());
}

/// Issue 14, item 7: without XDG_RUNTIME_DIR the manager lives under
/// $HOME (which no other user can create first), in a 0700 directory.
#[tokio::test]
async fn without_xdg_runtime_dir_the_manager_lives_under_home() {
    let env = Env::new("home");
    let home = env.runtime.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let mut c = env.command(&["status"]);
    c.env_remove("XDG_RUNTIME_DIR").env("HOME", &home);
    let out = c.output().await.expect("run status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = home.join(".local/state/distant/run");
    // Stop the manager it started.
    if let Some(pid) = std::fs::read_to_string(dir.join("manager.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        // SAFETY: signalling the manager this test started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(&dir.join("manager.sock").display().to_string()),
        "{stdout}"
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("manager.sock")), 0o600);
}

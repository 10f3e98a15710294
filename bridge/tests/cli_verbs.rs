//! The human CLI verbs over the manager, against a real local server:
//! `status`, a missing connection's advice, connect, fs write/read/ls
//! (small, multi-range reads, a streamed write that keeps the file's mode),
//! spawn with exit codes and stdin. ssh flags: `ssh_connect.rs`.

mod manager_support;

use manager_support::*;

fn server_args() -> Vec<String> {
    let server = std::path::Path::new(BIN).with_file_name("distant-server");
    if server.exists() {
        vec![
            "--server-binary".into(),
            server.to_string_lossy().into_owned(),
        ]
    } else {
        Vec::new()
    }
}

#[tokio::test]
async fn status_with_no_connections() {
    let env = Env::new("status");
    let (code, out, err) = env.run(&["status"], b"").await;
    assert!(out.contains("manager: pid"), "{out}");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no connections"), "{out}");
}

#[tokio::test]
async fn verbs_without_a_connection_say_what_to_do() {
    let env = Env::new("noconn");
    let (code, _, err) = env.run(&["fs", "ls", "/"], b"").await;
    assert_ne!(code, 0);
    assert!(err.contains("distant-bridge connect"), "{err}");
}

#[tokio::test]
async fn connect_fs_spawn_status_round_trip() {
    let env = Env::new("verbs");
    let scratch = TempDir::new("verbs-files");
    let extra = server_args();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let with = |args: &[&str]| -> Vec<String> {
        extra.iter().chain(args).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>, stdin: &'static [u8]| {
        let env = &env;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            env.run(&args, stdin).await
        }
    };

    let (code, id, err) = run(with(&["connect", "local"]), b"").await;
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_owned();
    assert!(!id.is_empty());

    let file = scratch.path().join("a.txt").to_string_lossy().into_owned();
    let (code, _, err) = run(with(&["fs", "write", &file]), b"hello\x00bytes").await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(with(&["fs", "read", &file]), b"").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.as_bytes(), b"hello\x00bytes");
    let dir = scratch.path().to_string_lossy().into_owned();
    let (code, out, err) = run(with(&["--connection", &id, "fs", "ls", &dir]), b"").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "a.txt");

    // Bigger than one range (4 MiB) and not a multiple of it: the read is
    // assembled from several ranges in flight, in order, byte for byte.
    let big_text: String = (0..700_000).map(|i| format!("line {i:07}\n")).collect();
    let big = scratch.path().join("big.txt");
    std::fs::write(&big, &big_text).unwrap();
    let big = big.to_string_lossy().into_owned();
    let (code, out, err) = run(with(&["fs", "read", &big]), b"").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.len(), big_text.len(), "size differs");
    assert!(out == big_text, "content differs");

    // A write bigger than one piece streams into one chunked write: the
    // file is replaced whole, keeps its mode, and no temporary file stays.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
    let new_text: String = (0..900_000).map(|i| format!("new {i:08}\n")).collect();
    let new_bytes: &'static [u8] = new_text.clone().into_bytes().leak();
    let (code, _, err) = run(with(&["fs", "write", &big]), new_bytes).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::read_to_string(&big).unwrap() == new_text,
        "content differs"
    );
    let mode = std::fs::metadata(&big).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file keeps its mode");
    let leftovers: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".distant-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_file(&big).unwrap();

    let (code, out, err) = run(
        with(&["spawn", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]),
        b"",
    )
    .await;
    assert_eq!(code, 7, "{err}");
    assert_eq!(out, "out\n");
    assert!(err.contains("err"), "{err}");
    let (code, out, err) = run(with(&["spawn", "--", "cat"]), b"piped stdin").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "piped stdin");
    let (code, _, _) = run(with(&["spawn", "--", "sh", "-c", "kill -9 $$"]), b"").await;
    assert_eq!(code, 137, "128 + SIGKILL");

    let (code, out, err) = run(with(&["status"]), b"").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && out.contains("connected"), "{out}");
}

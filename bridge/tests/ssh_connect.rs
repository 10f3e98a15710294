//! `ssh://` destinations against a real sshd (see `ssh_support`), through
//! the real `distant-bridge stdio` as an editor drives it: a connect
//! through an ssh-config alias uploads the server once (checked by hash,
//! 0700, owned by the ssh user) and reuses it after; files, processes and
//! PTYs run as the ssh user; the remote server listens on no TCP port; a
//! key sshd does not accept, an unreachable host and a disabled upload
//! give errors a person can act on, quickly. The CLI connects over ssh
//! with its ssh flags.

mod api_support;
mod manager_support;
mod ssh_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use api_support::*;
use serde_json::{json, Value};
use ssh_support::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");

async fn connect(p: &Peer, sshd: &Sshd) -> (String, Duration) {
    p.call("initialize", json!({})).await;
    let started = Instant::now();
    let r = p
        .call(
            "connect",
            json!({"destination": format!("ssh://{ALIAS}"), "options": sshd.options()}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(
        r["server"]["version"],
        format!("distant-server {VERSION}"),
        "{r}"
    );
    (r["connection"].as_str().expect("id").to_owned(), took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_through_an_alias_uploads_once_then_reuses() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    sshd.reset_remote();
    let binary = sshd.remote_binary();
    assert!(!binary.exists());

    let p = stdio_peer();
    let (conn, first) = connect(&p, &sshd).await;
    eprintln!("connect over ssh with upload: {} ms", first.as_millis());
    assert_eq!(
        p.call("fs/exists", json!({"connection": conn, "path": "/"}))
            .await,
        Value::Bool(true)
    );

    // Uploaded: the static build's bytes, 0700, the ssh user's, at the
    // versioned path, with its hash recorded next to it.
    let meta = std::fs::metadata(&binary).expect("the server was uploaded");
    assert_eq!(sha256_file(&binary), sha256_file(&uploaded_server()));
    let recorded = std::fs::read_to_string(format!("{}.sha256", binary.display())).unwrap();
    assert_eq!(recorded.trim(), sha256_file(&binary));
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), sshd.uid);
    let leftovers: Vec<_> = std::fs::read_dir(binary.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| {
            let n = n.to_string_lossy();
            n != format!("distant-server-{VERSION}")
                && n != format!("distant-server-{VERSION}.sha256")
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A second bridge finds it and uploads nothing: same file, untouched.
    p.call("disconnect", json!({"connection": conn})).await;
    drop(p);
    let p = stdio_peer();
    let (conn, second) = connect(&p, &sshd).await;
    eprintln!(
        "connect over ssh, server installed: {} ms",
        second.as_millis()
    );
    let again = std::fs::metadata(&binary).unwrap();
    assert_eq!(again.ino(), meta.ino(), "the server was replaced");
    assert_eq!(again.mtime_nsec(), meta.mtime_nsec());
    assert_eq!(again.mtime(), meta.mtime());
    assert_eq!(
        p.call("fs/exists", json!({"connection": conn, "path": "/"}))
            .await,
        Value::Bool(true)
    );
    let list = p.call("connections", json!({})).await;
    assert_eq!(list[0]["destination"], format!("ssh://{ALIAS}"));
    assert_eq!(list[0]["state"], "connected");
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_processes_and_ptys_run_as_the_ssh_user() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    let mut p = stdio_peer();
    let (conn, _) = connect(&p, &sshd).await;

    // Files: written as the ssh user, in its home.
    let dir = sshd.home.join("distant-test-files");
    let _ = std::fs::remove_dir_all(&dir);
    let dir_s = dir.display().to_string();
    p.call("fs/createDir", json!({"connection": conn, "path": dir_s}))
        .await;
    let file = format!("{dir_s}/hello.txt");
    p.call(
        "fs/write",
        json!({"connection": conn, "path": file, "data": "hello over ssh\n"}),
    )
    .await;
    let meta = std::fs::metadata(&file).expect("written on the remote");
    assert_eq!(meta.uid(), sshd.uid, "owned by the ssh user");
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), sshd.uid);
    let read = p
        .call("fs/read", json!({"connection": conn, "path": file}))
        .await;
    assert_eq!(read["data"], "hello over ssh\n");
    let listing = p
        .call("fs/readDir", json!({"connection": conn, "path": dir_s}))
        .await;
    assert_eq!(listing["entries"][0]["path"], "hello.txt", "{listing}");
    // Root's files stay root's: the server has the ssh user's rights only.
    let e = p
        .fail(
            "fs/write",
            json!({"connection": conn, "path": "/root/distant-ssh-test", "data": "x"}),
        )
        .await;
    assert_eq!(e.kind.as_str(), "permission_denied", "{e:?}");

    // A process: runs as the ssh user, with its home.
    let r = p
        .call(
            "proc/spawn",
            json!({"connection": conn, "cmd": ["sh", "-c", "id -un; echo \"$HOME\""]}),
        )
        .await;
    let proc = r["proc"].as_str().unwrap().to_owned();
    let notes = p.proc_until_exit(&proc).await;
    assert_eq!(notes.last().unwrap().1["code"], 0);
    assert_eq!(
        String::from_utf8(stdout_of(&notes)).unwrap(),
        format!("{USER}\n{}\n", sshd.home.display())
    );

    // A PTY: a terminal, as the ssh user, that resizes.
    let r = p
        .call(
            "proc/spawn",
            json!({"connection": conn, "cmd": ["sh", "-c", "id -un; tty; stty size; read x; stty size"], "pty": {"rows": 24, "cols": 80}}),
        )
        .await;
    let proc = r["proc"].as_str().unwrap().to_owned();
    let mut out = String::new();
    while !out.contains("24 80") {
        let n = p.note("proc/output", |v| v["proc"] == proc.as_str()).await;
        out.push_str(n["data"].as_str().unwrap_or(""));
    }
    assert!(out.contains(USER), "{out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    p.call(
        "proc/resize",
        json!({"connection": conn, "proc": proc, "rows": 40, "cols": 100}),
    )
    .await;
    p.call(
        "proc/stdin",
        json!({"connection": conn, "proc": proc, "data": "go\n"}),
    )
    .await;
    let notes = p.proc_until_exit(&proc).await;
    let rest = String::from_utf8_lossy(&stdout_of(&notes)).into_owned();
    assert!(rest.contains("40 100"), "{rest:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_server_listens_on_no_tcp_port() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    let p = stdio_peer();
    let (conn, _) = connect(&p, &sshd).await;
    assert_eq!(
        p.call("fs/exists", json!({"connection": conn, "path": "/"}))
            .await,
        Value::Bool(true)
    );
    let servers = user_servers(sshd.uid);
    assert!(
        !servers.is_empty(),
        "no distant-server runs as {USER} while connected"
    );
    let listening = tcp_listen_inodes();
    let mut sockets = 0;
    for pid in &servers {
        for inode in socket_inodes(*pid) {
            sockets += 1;
            assert!(
                !listening.contains(&inode),
                "distant-server (pid {pid}) listens on a TCP port"
            );
        }
    }
    assert!(sockets > 0, "the daemon holds no socket at all?");
    // The daemon's socket is a Unix socket in a private directory.
    let run = sshd.home.join(".local/state/distant/run");
    let mode = std::fs::metadata(&run).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let sock = std::fs::metadata(run.join("server.sock")).unwrap();
    assert_eq!(sock.permissions().mode() & 0o777, 0o600);
    assert_eq!(sock.uid(), sshd.uid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sshd_does_not_accept_fails_with_ssh_s_message() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    let p = stdio_peer();
    let started = Instant::now();
    let e = p
        .fail(
            "connect",
            json!({"destination": format!("ssh://{WRONG_KEY_ALIAS}"), "options": sshd.options()}),
        )
        .await;
    let took = started.elapsed();
    eprintln!("wrong key, after {} ms: {}", took.as_millis(), e.message);
    assert_eq!(e.kind.as_str(), "auth_failed", "{e:?}");
    assert!(
        e.message.contains("ssh authentication failed"),
        "{}",
        e.message
    );
    assert!(e.message.contains("Permission denied"), "{}", e.message);
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_host_fails_quickly() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    let p = stdio_peer();
    let started = Instant::now();
    let e = p
        .fail(
            "connect",
            json!({"destination": format!("ssh://{CLOSED_ALIAS}"), "options": sshd.options()}),
        )
        .await;
    let took = started.elapsed();
    eprintln!("unreachable, after {} ms: {}", took.as_millis(), e.message);
    assert_eq!(e.kind.as_str(), "other", "{e:?}");
    assert!(
        e.message
            .contains(&format!("could not reach ssh://{CLOSED_ALIAS}")),
        "{}",
        e.message
    );
    assert!(e.message.contains("Connection refused"), "{}", e.message);
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_and_no_upload_or_a_wrong_path_say_what_to_do() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    sshd.reset_remote();
    let p = stdio_peer();
    let mut options = sshd.options();
    options["upload"] = Value::Bool(false);
    let e = p
        .fail(
            "connect",
            json!({"destination": format!("ssh://{ALIAS}"), "options": options}),
        )
        .await;
    eprintln!("upload off: {}", e.message);
    assert_eq!(e.kind.as_str(), "not_found", "{e:?}");
    assert!(e.message.contains("uploading is off"), "{}", e.message);
    assert!(
        e.message
            .contains(&sshd.remote_binary().display().to_string()),
        "{}",
        e.message
    );
    assert!(!sshd.remote_binary().exists());

    let mut options = sshd.options();
    options["remoteServer"] = Value::from("/nonexistent/distant-server");
    let e = p
        .fail(
            "connect",
            json!({"destination": format!("ssh://{ALIAS}"), "options": options}),
        )
        .await;
    eprintln!("wrong remoteServer: {}", e.message);
    assert_eq!(e.kind.as_str(), "not_found", "{e:?}");
    assert!(
        e.message.contains("/nonexistent/distant-server"),
        "{}",
        e.message
    );

    // An explicit remote server is used as is.
    std::fs::create_dir_all(sshd.home.join("bin-elsewhere")).unwrap();
    let elsewhere = sshd.home.join("bin-elsewhere/distant-server");
    std::fs::copy(server_binary(), &elsewhere).unwrap();
    let mut options = sshd.options();
    options["remoteServer"] = Value::from(elsewhere.display().to_string());
    let r = p
        .call(
            "connect",
            json!({"destination": format!("ssh://{ALIAS}"), "options": options}),
        )
        .await;
    assert!(r["connection"].is_string(), "{r}");
    assert!(!sshd.remote_binary().exists(), "nothing was uploaded");
    let _ = std::fs::remove_dir_all(sshd.home.join("bin-elsewhere"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_connects_over_ssh_with_its_ssh_flags() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    let env = manager_support::Env::new("ssh-cli");
    let config = sshd.options()["ssh"][1].as_str().unwrap().to_owned();
    let dest = format!("ssh://{ALIAS}");

    // Without the config the alias means nothing to ssh: ssh's own words.
    let (code, _, err) = env.run(&["connect", &dest], b"").await;
    assert_ne!(code, 0);
    assert!(err.contains("resolve"), "ssh's message is passed on: {err}");
    // ssh flags make no sense for other destinations.
    let (code, _, err) = env.run(&["connect", "local", "--ssh-arg=-v"], b"").await;
    assert_ne!(code, 0);
    assert!(err.contains("ssh:// destinations only"), "{err}");

    let config_arg = format!("--ssh-arg={config}");
    let (code, id, err) = env
        .run(&["connect", &dest, "--ssh-arg", "-F", &config_arg], b"")
        .await;
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_owned();
    let file = sshd.home.join("distant-cli-ssh.txt");
    let file_s = file.display().to_string();
    let (code, _, err) = env
        .run(&["--connection", &id, "fs", "write", &file_s], b"over ssh")
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"over ssh");
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), sshd.uid);
    let (code, out, err) = env.run(&["fs", "read", &file_s], b"").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "over ssh");
    let (code, out, _) = env.run(&["status"], b"").await;
    assert_eq!(code, 0);
    assert!(out.contains(&dest) && out.contains("connected"), "{out}");
    std::fs::remove_file(&file).unwrap();
}

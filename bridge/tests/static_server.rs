//! The servers the bridge uploads over ssh (`scripts/build-servers`,
//! found through `distant_testkit::uploadable_server`): the x86_64 one runs
//! in an empty root — a chroot holding that one file, no libc, no shell —
//! and serves the real bridge there; the aarch64 one, run under
//! `qemu-aarch64` (Debian's `qemu-user`, `.ci/setup-ssh.sh`), serves the
//! real bridge through files, processes and search.

mod api_support;

use std::path::Path;
use std::process::Command;

use api_support::*;
use serde_json::{json, Value};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const QEMU: &str = "/usr/bin/qemu-aarch64";

async fn connect(p: &Peer, server: &OwnServer) -> String {
    p.call("initialize", json!({})).await;
    let r = p
        .call(
            "connect",
            json!({"destination": format!("distant://{}", server.addr), "key": KEY_A}),
        )
        .await;
    assert_eq!(
        r["server"]["version"],
        format!("distant-server {VERSION}"),
        "{r}"
    );
    r["connection"].as_str().expect("id").to_owned()
}

/// `program args…` in `root` via chroot(8): its output and status.
fn chrooted(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new("chroot")
        .arg(root)
        .args(args)
        .output()
        .expect("run chroot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uploaded_server_runs_in_an_empty_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "chroot needs root (CI runs as root)"
    );
    let built = distant_testkit::uploadable_server("x86_64");
    let size = std::fs::metadata(&built).unwrap().len();
    eprintln!(
        "uploadable x86_64 server: {} ({size} bytes)",
        built.display()
    );
    assert!(size <= 10 * 1024 * 1024, "{size} bytes: over 10 MiB");

    let root = TempDir::new("empty-root");
    std::fs::copy(&built, root.path().join("distant-server")).unwrap();
    let everything: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(everything, ["distant-server"], "the root holds one file");

    let out = chrooted(root.path(), &["/distant-server", "--version"]);
    let said = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "chroot {} /distant-server --version: {} ({})",
        root.path().display(),
        said.trim(),
        out.status
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(said.trim(), format!("distant-server {VERSION}"));

    // It serves the real bridge from there: files and processes.
    let mut command = Command::new("chroot");
    command.arg(root.path()).arg("/distant-server");
    let server = OwnServer::start_with(command, KEY_A);
    let mut p = stdio_peer();
    let c = connect(&p, &server).await;
    let listing = p
        .call("fs/readDir", json!({"connection": c, "path": "/"}))
        .await;
    let names: Vec<_> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["distant-server"], "{listing}");
    p.call(
        "fs/write",
        json!({"connection": c, "path": "/note.txt", "data": "in the empty root\n"}),
    )
    .await;
    let read = p
        .call("fs/read", json!({"connection": c, "path": "/note.txt"}))
        .await;
    assert_eq!(read["data"], "in the empty root\n");
    assert_eq!(
        std::fs::read_to_string(root.path().join("note.txt")).unwrap(),
        "in the empty root\n"
    );
    // No shell in there: the server itself is the only program to run.
    let r = p
        .call(
            "proc/spawn",
            json!({"connection": c, "cmd": ["/distant-server", "--version"]}),
        )
        .await;
    let proc = r["proc"].as_str().unwrap().to_owned();
    let notes = p.proc_until_exit(&proc).await;
    assert_eq!(notes.last().unwrap().1["code"], 0);
    assert_eq!(
        String::from_utf8(stdout_of(&notes)).unwrap().trim(),
        format!("distant-server {VERSION}")
    );
    let e = p
        .fail(
            "proc/spawn",
            json!({"connection": c, "cmd": ["sh", "-c", "true"]}),
        )
        .await;
    eprintln!("spawning sh in the empty root: {}", e.message);
    drop(p);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aarch64_server_serves_the_bridge_under_qemu() {
    assert!(
        Path::new(QEMU).exists(),
        "{QEMU} is missing: run `sudo bash .ci/setup-ssh.sh` (installs qemu-user)"
    );
    let built = distant_testkit::uploadable_server("aarch64");
    let size = std::fs::metadata(&built).unwrap().len();
    eprintln!(
        "uploadable aarch64 server: {} ({size} bytes)",
        built.display()
    );
    assert!(size <= 10 * 1024 * 1024, "{size} bytes: over 10 MiB");
    let header = std::fs::read(&built).unwrap();
    assert_eq!(&header[..4], b"\x7fELF");
    assert_eq!(
        u16::from_le_bytes([header[18], header[19]]),
        0xb7,
        "EM_AARCH64"
    );

    let out = Command::new(QEMU)
        .arg(&built)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("distant-server {VERSION}")
    );

    let mut command = Command::new(QEMU);
    command.arg(&built);
    let server = OwnServer::start_with(command, KEY_A);
    let mut p = stdio_peer();
    let c = connect(&p, &server).await;
    let dir = TempDir::new("qemu");
    let d = dir.path().display().to_string();

    // Files: write, read (a big one in chunks), list, stat, rename, remove.
    let big: String = (0..40_000).map(|i| format!("line {i}\n")).collect();
    let file = format!("{d}/big.txt");
    p.call(
        "fs/write",
        json!({"connection": c, "path": file, "data": big}),
    )
    .await;
    let read = p
        .call("fs/read", json!({"connection": c, "path": file}))
        .await;
    assert_eq!(read["data"].as_str().unwrap().len(), big.len());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), big);
    let meta = p
        .call(
            "fs/metadata",
            json!({"connection": c, "path": file, "hash": true}),
        )
        .await;
    assert_eq!(meta["size"], big.len() as u64, "{meta}");
    assert_eq!(meta["type"], "file");
    p.call(
        "fs/rename",
        json!({"connection": c, "src": file, "dst": format!("{d}/moved.txt")}),
    )
    .await;
    let listing = p
        .call("fs/readDir", json!({"connection": c, "path": d}))
        .await;
    assert_eq!(listing["entries"][0]["path"], "moved.txt", "{listing}");

    // Search: the server's own threads walk and match.
    for i in 0..20 {
        std::fs::write(
            dir.path().join(format!("f{i}.txt")),
            format!("alpha\nneedle {i}\n"),
        )
        .unwrap();
    }
    let r = p
        .call(
            "search/start",
            json!({"connection": c, "query": {"target": "contents", "pattern": "needle \\d+", "paths": [d]}}),
        )
        .await;
    let search = r["search"].as_str().unwrap().to_owned();
    let mut matches = 0;
    loop {
        let n = p.notes.recv().await.unwrap();
        let params = n.params.unwrap_or(Value::Null);
        match n.method.as_str() {
            "search/results" if params["search"] == search.as_str() => {
                matches += params["matches"].as_array().unwrap().len();
            }
            "search/done" if params["search"] == search.as_str() => break,
            _ => {}
        }
    }
    assert_eq!(matches, 20);

    // Processes: pipes and a PTY.
    let r = p
        .call(
            "proc/spawn",
            json!({"connection": c, "cmd": ["sh", "-c", "read x; echo \"got $x\""]}),
        )
        .await;
    let proc = r["proc"].as_str().unwrap().to_owned();
    p.call(
        "proc/stdin",
        json!({"connection": c, "proc": proc, "data": "hello\n"}),
    )
    .await;
    let notes = p.proc_until_exit(&proc).await;
    assert_eq!(String::from_utf8(stdout_of(&notes)).unwrap(), "got hello\n");
    let r = p
        .call(
            "proc/spawn",
            json!({"connection": c, "cmd": ["sh", "-c", "tty; stty size"], "pty": {"rows": 24, "cols": 80}}),
        )
        .await;
    let proc = r["proc"].as_str().unwrap().to_owned();
    let notes = p.proc_until_exit(&proc).await;
    let out = String::from_utf8_lossy(&stdout_of(&notes)).into_owned();
    assert!(
        out.contains("/dev/pts/") && out.contains("24 80"),
        "{out:?}"
    );

    p.call(
        "fs/remove",
        json!({"connection": c, "path": format!("{d}/moved.txt")}),
    )
    .await;
    assert!(!dir.path().join("moved.txt").exists());
    drop(p);
    drop(server);
}

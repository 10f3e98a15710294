//! `ssh://` destinations against a real sshd (see `ssh_support`), through
//! the real `distant-bridge stdio` as an editor drives it: a connect
//! through an ssh-config alias uploads the server once (checked by hash,
//! 0700, owned by the ssh user) and reuses it after; files, processes and
//! PTYs run as the ssh user; the remote server listens on no TCP port; a
//! key sshd does not accept, an unreachable host and a disabled upload
//! give errors a person can act on, quickly.

mod api_support;
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

    // Uploaded: the same bytes, 0700, the ssh user's, at the versioned path.
    let meta = std::fs::metadata(&binary).expect("the server was uploaded");
    assert_eq!(sha256_file(&binary), sha256_file(&server_binary()));
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), sshd.uid);
    let leftovers: Vec<_> = std::fs::read_dir(binary.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy() != format!("distant-server-{VERSION}"))
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

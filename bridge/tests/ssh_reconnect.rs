//! A dropped ssh connection, as an editor sees it: the `ssh` child of the
//! real `distant-bridge stdio` is killed (twice) while a remote process
//! streams output. The bridge runs ssh again, the remote daemon still has
//! the session, and it resumes: every byte of output arrives exactly once,
//! in order, and the editor is told `reconnecting` then `connected`.
//!
//! And failures while redialling, as the editor sees them: a refused ssh
//! login is shown (`reconnecting` with ssh's words) and heals; a daemon with
//! a new key and a server that cannot be installed again end at once
//! (`lost` with the reason).

mod api_support;
mod ssh_support;

use std::time::Duration;

use api_support::*;
use serde_json::{json, Value};
use ssh_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_ssh_mid_stream_resumes_with_all_output_exactly_once() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    let mut p = stdio_peer();
    let bridge = p.pid().expect("the bridge's pid");
    p.call("initialize", json!({})).await;
    let r = p
        .call(
            "connect",
            json!({"destination": format!("ssh://{ALIAS}"), "options": sshd.options()}),
        )
        .await;
    let conn = r["connection"].as_str().unwrap().to_owned();

    // ~300 kB of output over about two seconds.
    let spawn = p
        .call(
            "proc/spawn",
            json!({"connection": conn, "cmd": ["sh", "-c", "for i in $(seq 1 30); do seq 1 2000; sleep 0.06; done"]}),
        )
        .await;
    let proc = spawn["proc"].as_str().unwrap().to_owned();

    // Kill the bridge's ssh twice while the output streams; each time a
    // new ssh must take its place.
    let killer = tokio::spawn(async move {
        let mut killed = Vec::new();
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let deadline = tokio::time::Instant::now() + WAIT;
            let ssh = loop {
                let live: Vec<u32> = children_named(bridge, "ssh")
                    .into_iter()
                    .filter(|pid| !killed.contains(pid))
                    .collect();
                if let [pid] = live[..] {
                    break pid;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the bridge has no single live ssh child: {live:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            // SAFETY: killing the ssh child of the bridge this test started.
            assert_eq!(unsafe { libc::kill(ssh as i32, libc::SIGKILL) }, 0);
            killed.push(ssh);
        }
        killed
    });

    let mut notes = Vec::new();
    let mut states = Vec::new();
    loop {
        let n = tokio::time::timeout(WAIT, p.notes.recv())
            .await
            .expect("the process did not finish in time")
            .expect("notification stream ended");
        let params = n.params.unwrap_or(Value::Null);
        if n.method == "connection/state" {
            assert_eq!(params["connection"], Value::from(conn.clone()));
            states.push(params["state"].as_str().unwrap_or_default().to_owned());
        } else if n.method.starts_with("proc/") && params["proc"] == proc.as_str() {
            let exit = n.method == "proc/exit";
            notes.push((n.method, params));
            if exit {
                break;
            }
        }
    }
    let killed = killer.await.unwrap();
    assert_eq!(killed.len(), 2);

    let exit = &notes.last().unwrap().1;
    assert_eq!(exit["code"], 0, "{exit}");
    let expected: String = (0..30)
        .flat_map(|_| (1..=2000).map(|n| format!("{n}\n")))
        .collect();
    let got = stdout_of(&notes);
    assert_eq!(got.len(), expected.len(), "output lost or duplicated");
    assert!(got == expected.as_bytes(), "output differs");

    let went = states.iter().position(|s| s == "reconnecting");
    let came_back = states.iter().rposition(|s| s == "connected");
    assert!(
        matches!((went, came_back), (Some(a), Some(b)) if a < b),
        "states seen: {states:?}"
    );
    assert!(
        states.iter().filter(|s| *s == "reconnecting").count() >= 1,
        "{states:?}"
    );

    // Still usable, over a third ssh.
    assert_eq!(
        p.call("fs/exists", json!({"connection": conn, "path": "/"}))
            .await,
        Value::Bool(true)
    );
    let now = children_named(bridge, "ssh");
    assert_eq!(now.len(), 1, "ssh children now: {now:?}");
    assert!(!killed.contains(&now[0]));
}

/// Connects the real bridge to the test sshd (uploading the server when
/// the remote has none) and proves the connection works.
async fn connect_ssh(sshd: &Sshd) -> (Peer, String) {
    let p = stdio_peer();
    p.call("initialize", json!({})).await;
    let r = p
        .call(
            "connect",
            json!({"destination": format!("ssh://{ALIAS}"), "options": sshd.options()}),
        )
        .await;
    let conn = r["connection"].as_str().unwrap().to_owned();
    assert_eq!(
        p.call("fs/exists", json!({"connection": conn, "path": "/"}))
            .await,
        Value::Bool(true)
    );
    (p, conn)
}

/// Kills the bridge's (single) ssh child: the link drops and the bridge
/// redials.
fn kill_ssh(p: &Peer) {
    let bridge = p.pid().expect("the bridge's pid");
    let ssh = children_named(bridge, "ssh");
    assert_eq!(ssh.len(), 1, "ssh children: {ssh:?}");
    // SAFETY: killing the ssh child of the bridge this test started.
    assert_eq!(unsafe { libc::kill(ssh[0] as i32, libc::SIGKILL) }, 0);
}

/// A redial that ssh refuses keeps its reason: the editor sees ssh's
/// "Permission denied (publickey)" as the `reconnecting` detail, and once
/// the key is admitted again the session resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_while_reconnecting_is_shown_then_heals() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    let (mut p, conn) = connect_ssh(&sshd).await;

    sshd.admit_client_key(false);
    kill_ssh(&p);
    let refused = p
        .note("connection/state", |s| {
            s["state"] == "reconnecting"
                && s["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("Permission denied (publickey)"))
        })
        .await;
    assert_eq!(refused["connection"], Value::from(conn.clone()));
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("ssh authentication failed"),
        "{refused}"
    );

    sshd.admit_client_key(true);
    p.note("connection/state", |s| s["state"] == "connected")
        .await;
    assert_eq!(
        p.call("fs/exists", json!({"connection": conn, "path": "/"}))
            .await,
        Value::Bool(true)
    );
}

/// The remote daemon was replaced by one with a new key (its key file was
/// deleted): the session is gone, and the bridge says so at once with
/// `lost` instead of redialling for ten minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_new_key_ends_the_retrying_at_once() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    let (mut p, conn) = connect_ssh(&sshd).await;

    let _ = std::fs::remove_dir_all(sshd.home.join(".local/state/distant"));
    sshd.kill_servers();
    let lost = p.note("connection/state", |s| s["state"] == "lost").await;
    assert_eq!(lost["connection"], Value::from(conn.clone()));
    let detail = lost["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("announced a different key"), "{lost}");
    let err = p
        .fail("fs/exists", json!({"connection": conn, "path": "/"}))
        .await;
    assert_eq!(
        err.kind,
        distant_bridge::jsonrpc::ErrorKind::ConnectionLost,
        "{err:?}"
    );
}

/// The server binary vanished from the remote and uploading it again is
/// refused (its directory cannot be created): `lost` at once, with the
/// reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reinstall_ends_the_retrying_at_once() {
    let _serial = serial().await;
    let sshd = Sshd::start();
    let (mut p, conn) = connect_ssh(&sshd).await;

    // Put the remote back however this test ends, for the tests that follow.
    struct Reset<'a>(&'a Sshd);
    impl Drop for Reset<'_> {
        fn drop(&mut self) {
            self.0.reset_remote();
        }
    }
    let reset = Reset(&sshd);
    let share = sshd.home.join(".local/share/distant");
    let _ = std::fs::remove_dir_all(&share);
    std::fs::create_dir_all(&share).unwrap();
    // A file where the bin directory should be: `mkdir -p` fails.
    std::fs::write(share.join("bin"), b"not a directory").unwrap();
    sshd.kill_servers();
    let lost = p.note("connection/state", |s| s["state"] == "lost").await;
    drop(reset);
    assert_eq!(lost["connection"], Value::from(conn.clone()));
    let detail = lost["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("is gone and could not be installed again"),
        "{lost}"
    );
}

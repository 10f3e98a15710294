//! A language server session through `distant-bridge lsp` survives a cut
//! connection: the proxy reaches a `distant-server listen` through a fault
//! proxy; the link is cut mid-session; the language server keeps running,
//! every request is answered exactly once and every message reaches it
//! exactly once, in order.

mod lsp_support;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use distant_testkit::FaultProxy;
use lsp_support::*;
use serde_json::json;

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// `distant-server listen` on a random port; killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start() -> Self {
        let mut child = Command::new(server_binary())
            .args(["listen", "--host", "127.0.0.1", "--port", "0"])
            .env("DISTANT_KEY", KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start distant-server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the server's url");
        let addr = line.trim().rsplit_once('@').expect("url").1.to_string();
        Self { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_log(ed: &Editor, needle: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ed.stderr_text().contains(needle) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never logged {needle:?}:\n{}",
            ed.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_lose_and_duplicate_nothing() {
    let server = Server::start();
    let proxy = FaultProxy::start(server.addr.parse().unwrap()).await;
    let project = Project::new("reconnect-fake");
    let (cmd, pidfile) = fake_ls(&project, "");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let dest = format!("distant://:{KEY}@{}", proxy.addr);
    let mut ed = Editor::start(ProxyCmd::local(&cmd).destination(dest));
    ed.initialize(&project.uri("", ""), "p").await;
    let pid = read_pid(&pidfile).await;
    assert_key_nowhere(&ed);

    // 200 requests in flight while the link is cut three times.
    let uri = project.uri("", "x.txt");
    let mut ids = Vec::new();
    let cutter = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                proxy.cut();
            }
        })
    };
    for seq in 0..200 {
        ids.push(
            ed.send_request("echo", json!({"seq": seq, "textDocument": {"uri": uri}}))
                .await,
        );
        if seq % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    cutter.await.unwrap();
    for (seq, id) in ids.iter().enumerate() {
        let r = ed.response(*id, "echo").await;
        assert_eq!(r.value["result"]["params"]["seq"], seq);
        assert_eq!(
            r.value["result"]["params"]["textDocument"]["uri"],
            uri.as_str()
        );
    }
    wait_for_log(&ed, "reconnecting").await;

    // One more cut, then a request: answered.
    proxy.cut();
    let stats = ed.request("stats", json!({})).await;
    let seen: Vec<u64> = stats["seq"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        seen,
        (0..200).collect::<Vec<_>>(),
        "each message reached the server once, in order"
    );
    assert!(
        ed.stray_responses.is_empty(),
        "duplicated answers: {:?}",
        ed.stray_responses
    );
    assert!(
        distant_testkit::pid_alive(pid),
        "the language server kept running"
    );

    ed.close_stdin();
    assert_eq!(ed.wait_exit(WAIT).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pylsp_answers_after_a_cut() {
    require("pylsp");
    let server = Server::start();
    let proxy = FaultProxy::start(server.addr.parse().unwrap()).await;
    let p = Project::new("reconnect-pylsp");
    let text = "def twice(x):\n    \"\"\"Double it.\"\"\"\n    return 2 * x\n\n\ny = twice(3)\n";
    p.write("m.py", text);
    let dest = format!("distant://:{KEY}@{}", proxy.addr);
    let mut ed = Editor::start(ProxyCmd::local(&["pylsp"]).destination(dest).cwd(p.path()));
    ed.initialize(&p.uri("", ""), "p").await;
    let m = p.uri("", "m.py");
    ed.did_open(&m, "python", text).await;
    let at = json!({"textDocument": {"uri": m}, "position": {"line": 5, "character": 5}});
    let before = ed.request("textDocument/hover", at.clone()).await;
    assert!(before.to_string().contains("Double it"), "{before}");
    let pid = ed.remote_pid().await;

    proxy.cut();
    wait_for_log(&ed, "reconnecting").await;
    let def = ed.request("textDocument/definition", at.clone()).await;
    let first = if def.is_array() {
        def[0].clone()
    } else {
        def.clone()
    };
    assert_eq!(first["uri"], m.as_str(), "{def}");
    let after = ed.request("textDocument/hover", at).await;
    assert_eq!(before, after, "same answer after the cut");
    assert!(distant_testkit::pid_alive(pid), "pylsp kept running");

    let ids: BTreeSet<String> = ed
        .stray_responses
        .iter()
        .map(|m| m.value["id"].to_string())
        .collect();
    assert!(ids.is_empty(), "duplicated answers: {ids:?}");
    ed.close_stdin();
    assert_eq!(ed.wait_exit(WAIT).await, Some(0));
}

/// Issue 14, item 4: no process's command line holds the key, and the
/// proxy's own environment no longer does either (read and scrubbed).
fn assert_key_nowhere(ed: &Editor) {
    // Every process this test started (other worktrees' tests may run
    // older code at the same time).
    let ours = |mut pid: u32| {
        for _ in 0..64 {
            if pid == std::process::id() {
                return true;
            }
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or_default();
            match after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                Some(ppid) if ppid > 1 => pid = ppid,
                _ => return false,
            }
        }
        false
    };
    let mine: Vec<u32> = distant_testkit::all_pids()
        .into_iter()
        .filter(|p| ours(*p))
        .collect();
    assert!(mine.contains(&ed.pid()), "{mine:?}");
    for pid in mine {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(KEY),
            "the key is on the command line of pid {pid}: {}",
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        );
    }
    let environ = std::fs::read(format!("/proc/{}/environ", ed.pid())).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains(KEY),
        "the key is still in the proxy's environment"
    );
    assert!(!ed.stderr_text().contains(KEY), "the key was logged");
}

/// Issue 14, item 4: a key inside `--destination` is refused without
/// echoing it, before anything connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_on_the_command_line_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_distant-bridge"))
        .args(["--no-manager", "lsp", "--destination"])
        .arg(format!("distant://:{KEY}@127.0.0.1:9"))
        .args(["--", "true"])
        .env_remove("DISTANT_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("DISTANT_KEY") && stderr.contains("distant://127.0.0.1:9"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_distant-bridge"))
        .args(["--no-manager", "connect"])
        .arg(format!("distant://:{KEY}@127.0.0.1:9"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("DISTANT_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY), "{stderr}");
}

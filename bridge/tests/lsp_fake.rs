//! `distant-bridge lsp` with a small scripted language server (python3)
//! run through a real `distant-server`: exact bytes both ways (URIs
//! rewritten, document text never), a banner and stray prints on the
//! language server's stdout, its stderr passed through, malformed editor
//! input skipped, and the lifecycle (shutdown on stdin EOF, kill after the
//! grace period, the server's own exit status).

mod lsp_support;

use std::time::Duration;

use lsp_support::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_bytes_banner_junk_and_stderr() {
    let project = Project::new("fake-bytes");
    let (cmd, _pidfile) = fake_ls(&project, "");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut ed = Editor::start(ProxyCmd::local(&cmd));
    let root = project.uri("", "");
    let init = ed.initialize(&root, "p").await;
    assert_eq!(
        init["serverInfo"]["name"], "fake",
        "initialize answered through the banner"
    );

    // A document whose text mentions URIs and `profile:`; only the value
    // that *is* a URI may change, and only it.
    let doc_uri = project.uri("", "notes.txt");
    let text = r#"profile: file:///etc/x distant://host/y \"distant:///q\" prodistant: ünïcode"#;
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":100,"method":"echo","params":{{"textDocument":{{"uri":"{doc_uri}"}},"text":"{text}","seq":0,  "spaced" : [ 1 , 2 ]}}}}"#
    );
    let expected_remote = body.replace(&doc_uri, &project.file_uri("notes.txt"));
    assert_ne!(expected_remote, body);
    ed.send_raw(body.as_bytes()).await;
    let answer = ed.response(100, "echo").await;
    assert_eq!(
        answer.value["result"]["raw"].as_str().unwrap(),
        expected_remote,
        "the language server got exactly the editor's bytes, URI rewritten"
    );
    let params = &answer.value["result"]["params"];
    assert_eq!(
        params["textDocument"]["uri"],
        doc_uri.as_str(),
        "URI mapped back"
    );
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        params["text"], sent["params"]["text"],
        "text unchanged both ways"
    );
    let raw_text =
        r#"profile: file:///etc/x distant://host/y \"distant:///q\" prodistant: ünïcode"#;
    assert!(
        contains(&answer.raw, raw_text.as_bytes()),
        "the text's bytes reach the editor unchanged: {}",
        String::from_utf8_lossy(&answer.raw)
    );

    // A notification from the server (after a stray print) with file:// URIs
    // in values and keys.
    let a = project.file_uri("a.py");
    ed.notify(
        "publish",
        json!({"uri": a, "diagnostics": [{"message": "see file:///etc/x", "relatedInformation": [{"location": {"uri": a}}]}], "changes": {a.clone(): []}}),
    )
    .await;
    let note = ed
        .notification("textDocument/publishDiagnostics", |_| true)
        .await;
    let editor_a = project.uri("", "a.py");
    assert_eq!(note.value["params"]["uri"], editor_a.as_str());
    assert_eq!(
        note.value["params"]["diagnostics"][0]["relatedInformation"][0]["location"]["uri"],
        editor_a.as_str()
    );
    assert!(
        note.value["params"]["changes"].get(&editor_a).is_some(),
        "keys rewritten"
    );
    assert_eq!(
        note.value["params"]["diagnostics"][0]["message"], "see file:///etc/x",
        "message text untouched"
    );

    // stderr of the language server reaches ours as it is.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !ed
        .stderr_text()
        .contains("fake-ls: starting up \u{1b}[1mbold\u{1b}[0m")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stderr not passed through: {}",
            ed.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ed.stray_responses.is_empty());
    ed.close_stdin();
    assert_eq!(ed.wait_exit(WAIT).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authority_of_the_first_uri_is_kept() {
    let project = Project::new("fake-authority");
    let (cmd, _pidfile) = fake_ls(&project, "");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut ed = Editor::start(ProxyCmd::local(&cmd));
    ed.initialize(&project.uri("my-box", ""), "p").await;
    let r = ed
        .request(
            "echo",
            json!({"uri": project.uri("my-box", "x.rs"), "seq": 1}),
        )
        .await;
    assert_eq!(r["params"]["uri"], project.uri("my-box", "x.rs").as_str());
    assert!(r["raw"]
        .as_str()
        .unwrap()
        .contains(&project.file_uri("x.rs")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_editor_input_is_skipped() {
    let project = Project::new("fake-malformed");
    let (cmd, _pidfile) = fake_ls(&project, "");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut ed = Editor::start(ProxyCmd::local(&cmd));
    ed.initialize(&project.uri("", ""), "p").await;
    // A broken header, garbage, then a body that is not JSON (forwarded
    // as it is), then a normal request.
    ed.send_bytes(b"Content-Length: abc\r\n\r\ngarbage garbage\r\n")
        .await;
    ed.send_raw(b"{not json distant:///x").await;
    let r = ed.request("echo", json!({"seq": 7})).await;
    assert_eq!(r["params"]["seq"], 7);
    let stats = ed.request("stats", json!({})).await;
    assert_eq!(stats["bad"], 1, "the non-JSON body was forwarded untouched");
    assert_eq!(stats["seq"], json!([7]));
    let log = ed.stderr_text();
    assert!(log.contains("malformed message from the editor"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_stdin_shuts_the_server_down() {
    let project = Project::new("fake-eof");
    let (cmd, pidfile) = fake_ls(&project, "");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut ed = Editor::start(ProxyCmd::local(&cmd));
    ed.initialize(&project.uri("", ""), "p").await;
    let pid = read_pid(&pidfile).await;
    assert!(distant_testkit::pid_alive(pid));
    let started = std::time::Instant::now();
    ed.close_stdin();
    // shutdown then exit: the fake server exits 0 (1 without shutdown).
    assert_eq!(ed.wait_exit(WAIT).await, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no waiting for the kill timer"
    );
    distant_testkit::wait_until("the language server is gone", WAIT, || {
        !distant_testkit::pid_alive(pid)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_exit_is_killed() {
    let project = Project::new("fake-stubborn");
    let (cmd, pidfile) = fake_ls(&project, "stubborn");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut ed = Editor::start(ProxyCmd::local(&cmd));
    ed.initialize(&project.uri("", ""), "p").await;
    let pid = read_pid(&pidfile).await;
    ed.close_stdin();
    let code = ed.wait_exit(WAIT).await;
    assert_eq!(code, Some(128 + 9), "killed after the grace period");
    assert!(
        !distant_testkit::pid_alive(pid),
        "the language server was killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_exits_with_the_servers_status() {
    let project = Project::new("fake-status");
    let (cmd, pidfile) = fake_ls(&project, "");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();

    // The editor's own shutdown + exit: status 0, stdin still open.
    let mut ed = Editor::start(ProxyCmd::local(&cmd).cwd(project.path()));
    ed.initialize(&project.uri("", ""), "p").await;
    assert_eq!(ed.request("shutdown", Value::Null).await, Value::Null);
    ed.notify("exit", Value::Null).await;
    assert_eq!(ed.wait_exit(WAIT).await, Some(0));
    let _ = std::fs::remove_file(&pidfile);

    // `exit` without `shutdown`: the server exits 1, so do we.
    let mut ed = Editor::start(ProxyCmd::local(&cmd));
    ed.initialize(&project.uri("", ""), "p").await;
    ed.notify("exit", Value::Null).await;
    assert_eq!(ed.wait_exit(WAIT).await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_share_the_managers_connection() {
    let project = Project::new("fake-manager");
    let runtime = project.path().join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    let (cmd, _pidfile) = fake_ls(&project, "");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();

    // The first proxy connects; the second uses the manager's most recent
    // connection (no --destination); both talk to their own server.
    let mut first = Editor::start(ProxyCmd::local(&cmd).via_manager(&runtime));
    first.initialize(&project.uri("", ""), "p").await;
    let mut second = Editor::start(
        ProxyCmd::local(&cmd)
            .via_manager(&runtime)
            .destination(String::new()),
    );
    second.initialize(&project.uri("", ""), "p").await;
    for (ed, seq) in [(&mut first, 1), (&mut second, 2)] {
        let r = ed
            .request("echo", json!({"seq": seq, "uri": project.uri("", "f")}))
            .await;
        assert_eq!(r["params"]["seq"], seq);
        assert_eq!(r["params"]["uri"], project.uri("", "f").as_str());
    }
    for ed in [&mut first, &mut second] {
        ed.close_stdin();
        assert_eq!(ed.wait_exit(WAIT).await, Some(0));
    }

    // Stop the manager this test started.
    let pid_file = runtime.join("distant/manager.pid");
    if let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        // SAFETY: sending a signal to the manager we started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        distant_testkit::wait_until("the manager exits", WAIT, || {
            !distant_testkit::pid_alive(pid as u32)
        })
        .await;
    }
}

/// Every string in `v`, keys included.
fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| all_strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            all_strings(x, out);
        }),
        _ => {}
    }
}

/// Issue 14, item 1: a hostile language server cannot make the editor touch
/// a local file. Every local `file:` form is rewritten; a network path, a
/// control character or a message too deep to check never reaches the
/// editor (a request is answered with an error, a response becomes an
/// error, a notification is dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_language_server_never_names_a_local_file() {
    let project = Project::new("fake-hostile");
    let (cmd, _pidfile) = fake_ls(&project, "");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut ed = Editor::start(ProxyCmd::local(&cmd));
    ed.initialize(&project.uri("", ""), "p").await;

    let edit = json!({"jsonrpc": "2.0", "id": 900, "method": "workspace/applyEdit", "params": {"edit": {
        "changes": {"file://localhost/home/u/.bashrc": []},
        "documentChanges": [
            {"kind": "create", "uri": "file:/home/u/.profile"},
            {"kind": "rename", "oldUri": "file:///home/u/has space", "newUri": "FILE://LocalHost/home/u/x"},
            {"kind": "delete", "uri": "file:home/u/y"}
        ]
    }}});
    ed.request("say", json!({"body": edit.to_string()})).await;
    let unc = json!({"jsonrpc": "2.0", "id": 901, "method": "workspace/applyEdit", "params": {"edit": {
        "changes": {"file://evil/share/x": []}
    }}});
    ed.request("say", json!({"body": unc.to_string()})).await;
    let newline = json!({"jsonrpc": "2.0", "method": "window/showDocument", "params": {"uri": "file:///home/u/a\n/../.bashrc"}});
    ed.request("say", json!({"body": newline.to_string()}))
        .await;
    let deep = format!(
        r#"{{"jsonrpc":"2.0","method":"deep","params":{}"file:///etc/passwd"{}}}"#,
        "[".repeat(600),
        "]".repeat(600)
    );
    ed.request("say", json!({"body": deep})).await;
    // A response to the editor carrying a network path becomes an error.
    let r = ed
        .request_full("echo", json!({"uri": "file://evil/x", "seq": 1}))
        .await;
    let message = r.value["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("refused") && message.contains("names a host"),
        "{}",
        r.value
    );

    // Only the rewritable request reached the editor, rewritten.
    assert_eq!(ed.server_requests.len(), 1, "{:?}", ed.server_requests);
    let mut strings = Vec::new();
    all_strings(&ed.server_requests[0].value, &mut strings);
    for s in &strings {
        assert!(!s.to_ascii_lowercase().starts_with("file:"), "{s:?} leaked");
    }
    for want in [
        "distant:///home/u/.bashrc",
        "distant:///home/u/.profile",
        "distant:///home/u/has%20space",
        "distant:///home/u/x",
        "distant:///home/u/y",
    ] {
        assert!(strings.iter().any(|s| s == want), "{want} in {strings:?}");
    }
    // Nothing else arrived before a marker sent afterwards.
    ed.notify("publish", json!({"uri": "file:///marker"})).await;
    ed.notification("textDocument/publishDiagnostics", |p| {
        p["uri"] == "distant:///marker"
    })
    .await;
    assert!(
        ed.backlog.is_empty() && ed.stray_responses.is_empty(),
        "refused messages reached the editor: {:?} {:?}",
        ed.backlog,
        ed.stray_responses
    );
    // The refused request got an error answer.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = ed.request("stats", json!({})).await;
        let answers = stats["answers"].as_array().cloned().unwrap_or_default();
        if let Some(a) = answers.iter().find(|a| a["id"] == 901) {
            assert_eq!(a["error"]["code"], -32600, "{a}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no error answer: {answers:?}"
        );
    }
    assert!(ed
        .stderr_text()
        .contains("refused a message from the language server"));
    ed.close_stdin();
    assert_eq!(ed.wait_exit(WAIT).await, Some(0));
}

//! python-lsp-server (`pylsp`) run remotely through `distant-bridge lsp`
//! and a real `distant-server`, spoken to with editor-side `distant://`
//! URIs: initialize, diagnostics, hover, definition in another file,
//! references, rename, text that mentions URIs, and shutdown.

mod lsp_support;

use std::time::Duration;

use lsp_support::*;
use serde_json::{json, Value};

const AUTH: &str = "devbox";

const B_PY: &str = r#"def greet(name):
    """Say hello.

    profile: file:///etc/x distant://host/y
    """
    return "hello " + name
"#;

const A_PY: &str = r#"import os
from b import greet

message = greet("world")
print(message)
"#;

fn project() -> Project {
    require("pylsp");
    let p = Project::new("pylsp");
    p.write("a.py", A_PY);
    p.write("b.py", B_PY);
    p
}

/// Every URI in `v` is an editor URI with our authority: no `file://` leaks.
fn assert_editor_uris(v: &Value, p: &Project) {
    assert!(
        strings_with_prefix(v, "file:").is_empty(),
        "a remote URI reached the editor: {v}"
    );
    for uri in strings_with_prefix(v, "distant:") {
        assert!(
            uri.starts_with(&p.uri(AUTH, "")),
            "unexpected URI {uri} in {v}"
        );
    }
}

async fn open_project(p: &Project) -> Editor {
    let mut ed = Editor::start(ProxyCmd::local(&["pylsp"]).cwd(p.path()));
    let init = ed.initialize(&p.uri(AUTH, ""), "proj").await;
    assert!(init["capabilities"]["hoverProvider"]
        .as_bool()
        .unwrap_or(false));
    ed.did_open(&p.uri(AUTH, "b.py"), "python", B_PY).await;
    ed.did_open(&p.uri(AUTH, "a.py"), "python", A_PY).await;
    ed
}

fn pos(p: &Project, rel: &str, line: u32, character: u32) -> Value {
    json!({"textDocument": {"uri": p.uri(AUTH, rel)}, "position": {"line": line, "character": character}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pylsp_navigation_diagnostics_and_rename() {
    let p = project();
    let mut ed = open_project(&p).await;
    let a = p.uri(AUTH, "a.py");

    // Diagnostics (pyflakes: `os` imported but unused) for the editor URI.
    let diags = ed
        .notification("textDocument/publishDiagnostics", |params| {
            params["uri"] == a.as_str()
                && params["diagnostics"].as_array().is_some_and(|d| {
                    d.iter()
                        .any(|d| d["message"].as_str().unwrap_or("").contains("os"))
                })
        })
        .await;
    assert_editor_uris(&diags.value, &p);

    // Hover on the call site.
    let hover = ed
        .request("textDocument/hover", pos(&p, "a.py", 3, 11))
        .await;
    assert!(hover.to_string().contains("greet"), "hover: {hover}");

    // Definition lands in the other file, as an editor URI.
    let def = ed
        .request("textDocument/definition", pos(&p, "a.py", 3, 11))
        .await;
    let first = if def.is_array() {
        def[0].clone()
    } else {
        def.clone()
    };
    assert_eq!(
        first["uri"],
        p.uri(AUTH, "b.py").as_str(),
        "definition: {def}"
    );
    assert_eq!(first["range"]["start"]["line"], 0);
    assert_editor_uris(&def, &p);

    // References across both files.
    let mut params = pos(&p, "b.py", 0, 5);
    params["context"] = json!({"includeDeclaration": true});
    let refs = ed.request("textDocument/references", params).await;
    let uris: Vec<&str> = refs
        .as_array()
        .expect("references list")
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert!(uris.contains(&a.as_str()), "references: {refs}");
    assert!(
        uris.contains(&p.uri(AUTH, "b.py").as_str()),
        "references: {refs}"
    );
    assert_editor_uris(&refs, &p);

    // Rename: a WorkspaceEdit keyed (or addressed) by editor URIs.
    let mut params = pos(&p, "a.py", 3, 11);
    params["newName"] = json!("salute");
    let edit = ed.request("textDocument/rename", params).await;
    let mut touched: Vec<String> = Vec::new();
    if let Some(changes) = edit["changes"].as_object() {
        touched.extend(changes.keys().cloned());
    }
    if let Some(dc) = edit["documentChanges"].as_array() {
        touched.extend(
            dc.iter()
                .filter_map(|c| c["textDocument"]["uri"].as_str().map(str::to_owned)),
        );
    }
    assert!(touched.contains(&a), "rename edit: {edit}");
    assert!(
        touched.contains(&p.uri(AUTH, "b.py")),
        "rename edit: {edit}"
    );
    assert_editor_uris(&edit, &p);
    assert!(edit.to_string().contains("salute"));
    assert!(ed.stray_responses.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pylsp_text_with_uris_round_trips_unaltered() {
    let p = project();
    let mut ed = open_project(&p).await;
    // The docstring came from the editor's didOpen text and comes back in
    // the hover: its URIs and `profile:` are text, never rewritten.
    let hover = ed
        .request_full("textDocument/hover", pos(&p, "b.py", 0, 5))
        .await;
    let text = hover.value["result"]["contents"].to_string();
    assert!(
        text.contains("profile: file:///etc/x distant://host/y"),
        "hover text altered: {text}"
    );
    // pylsp escapes `/` as `\/`; those bytes reach the editor as pylsp
    // wrote them (no re-serialisation on the way).
    let escaped = r"profile: file:\/\/\/etc\/x distant:\/\/host\/y";
    assert!(
        contains(&hover.raw, escaped.as_bytes()),
        "hover bytes altered: {}",
        String::from_utf8_lossy(&hover.raw)
    );
    assert!(!contains(&hover.raw, b"prodistant"));
    assert!(!contains(
        &hover.raw,
        format!("distant://{AUTH}/etc/x").as_bytes()
    ));

    // Document symbols name the function in the editor URI's document.
    let symbols = ed
        .request(
            "textDocument/documentSymbol",
            json!({"textDocument": {"uri": p.uri(AUTH, "b.py")}}),
        )
        .await;
    assert!(symbols.to_string().contains("greet"), "symbols: {symbols}");
    assert_editor_uris(&symbols, &p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_stdin_ends_remote_pylsp() {
    let p = project();
    let mut ed = open_project(&p).await;
    ed.request("textDocument/hover", pos(&p, "a.py", 3, 11))
        .await;
    let pid = ed.remote_pid().await;
    assert!(distant_testkit::pid_alive(pid), "pylsp runs (pid {pid})");
    ed.close_stdin();
    assert_eq!(
        ed.wait_exit(WAIT).await,
        Some(0),
        "pylsp shut down cleanly; stderr:\n{}",
        ed.stderr_text()
    );
    distant_testkit::wait_until("pylsp is gone", Duration::from_secs(5), || {
        !distant_testkit::pid_alive(pid)
    })
    .await;
    assert!(!ed.stderr_text().contains("did not exit in time"));
}

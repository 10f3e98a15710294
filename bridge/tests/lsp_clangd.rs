//! clangd run remotely through `distant-bridge lsp` and a real
//! `distant-server` on a small C project (`compile_flags.txt`): diagnostics
//! arrive for the editor URI, and a definition in another file comes back
//! as a `distant://` URI.

mod lsp_support;

use lsp_support::*;
use serde_json::{json, Value};

const MAIN_C: &str = r#"#include "util.h"

int main(void) {
    int unused = 3;
    return add(1, 2) + undefined_thing;
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clangd_definition_across_files_and_diagnostics() {
    require("clangd");
    let p = Project::new("clangd");
    p.write("compile_flags.txt", "-Wall\n-std=c11\n");
    p.write(
        "util.h",
        "#ifndef UTIL_H\n#define UTIL_H\nint add(int a, int b);\n#endif\n",
    );
    p.write(
        "util.c",
        "#include \"util.h\"\nint add(int a, int b) { return a + b; }\n",
    );
    p.write("main.c", MAIN_C);

    let mut ed = Editor::start(
        ProxyCmd::local(&["clangd", "--log=error", "--background-index=false"]).cwd(p.path()),
    );
    let init = ed.initialize(&p.uri("", ""), "cproj").await;
    assert!(
        init["capabilities"]["definitionProvider"] != Value::Null,
        "{init}"
    );
    let main = p.uri("", "main.c");
    ed.did_open(&main, "c", MAIN_C).await;

    // Diagnostics: the undeclared identifier (and the unused variable).
    let diags = ed
        .notification("textDocument/publishDiagnostics", |params| {
            params["uri"] == main.as_str()
                && params["diagnostics"].as_array().is_some_and(|d| {
                    d.iter().any(|d| {
                        d["message"]
                            .as_str()
                            .unwrap_or("")
                            .contains("undefined_thing")
                    })
                })
        })
        .await;
    assert!(
        strings_with_prefix(&diags.value, "file:").is_empty(),
        "{}",
        diags.value
    );

    // Definition of `add` (line 4, `return add(…`) is in another file.
    let def = ed
        .request(
            "textDocument/definition",
            json!({"textDocument": {"uri": main}, "position": {"line": 4, "character": 12}}),
        )
        .await;
    let first = if def.is_array() {
        def[0].clone()
    } else {
        def.clone()
    };
    let uri = first["uri"]
        .as_str()
        .unwrap_or_else(|| panic!("definition: {def}"));
    assert!(
        uri == p.uri("", "util.h") || uri == p.uri("", "util.c"),
        "definition should be in util.h/util.c as a distant:// URI: {def}"
    );
    assert!(strings_with_prefix(&def, "file:").is_empty(), "{def}");

    ed.close_stdin();
    assert_eq!(
        ed.wait_exit(WAIT).await,
        Some(0),
        "clangd shut down cleanly"
    );
}

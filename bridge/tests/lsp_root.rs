//! Root detection for language servers: an editor that opens a remote file
//! asks `fs/findUp` (through the real `distant-bridge stdio`) for the
//! nearest directory holding a project marker, starting from the *file*,
//! and uses it as the `rootUri` / `--cwd` of `distant-bridge lsp`.

mod api_support;

use api_support::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_up_from_an_open_file_finds_the_project_root() {
    let dir = TempDir::new("lsp-root");
    let root = dir.path().join("proj");
    std::fs::create_dir_all(root.join("src/pkg")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join("pyproject.toml"), "").unwrap();
    std::fs::write(root.join("src/compile_flags.txt"), "-Wall\n").unwrap();
    std::fs::write(root.join("src/pkg/mod.py"), "x = 1\n").unwrap();
    std::fs::write(root.join("src/pkg/main.c"), "int main(void){return 0;}\n").unwrap();
    let p = stdio_peer();
    let c = p.connect_local().await;
    let find = |path: String, names: Value| json!({"connection": c, "path": path, "names": names});
    let root_s = root.display().to_string();
    let src_s = root.join("src").display().to_string();

    // From a file, with markers that are files or directories.
    let py = dir.join("proj/src/pkg/mod.py");
    let r = p
        .call(
            "fs/findUp",
            find(py.clone(), json!(["pyproject.toml", "setup.py"])),
        )
        .await;
    assert_eq!(r, json!({"path": root_s}));
    let r = p.call("fs/findUp", find(py, json!([".git"]))).await;
    assert_eq!(r, json!({"path": root_s}));
    // The nearest marker wins (clangd's compile_flags.txt in src/).
    let c_file = dir.join("proj/src/pkg/main.c");
    let r = p
        .call(
            "fs/findUp",
            find(
                c_file,
                json!(["compile_commands.json", "compile_flags.txt", ".git"]),
            ),
        )
        .await;
    assert_eq!(r, json!({"path": src_s}));
    // None: null, so the editor falls back to the file's directory.
    let r = p
        .call(
            "fs/findUp",
            find(
                dir.join("proj/src/pkg/mod.py"),
                json!(["no-marker-here-xyz"]),
            ),
        )
        .await;
    assert_eq!(r, Value::Null);
}

//! `distant-bridge demo` runs end to end against a local server.
//!
//! Needs the full bridge API (engineer E's): under the placeholder API
//! (`initialize` lists no capabilities) it checks only that the demo fails
//! with a clear message, and says SKIPPED.

mod manager_support;

use manager_support::*;

#[tokio::test]
async fn demo_runs() {
    let env = Env::new("demo");
    let server = std::path::Path::new(BIN).with_file_name("distant-server");
    let server = server.to_string_lossy().into_owned();
    let mut args = vec!["demo"];
    if std::path::Path::new(&server).exists() {
        args.extend(["--server-binary", server.as_str()]);
    }
    let (code, out, err) = env.run(&args, b"").await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for step in [
        "connect",
        "write",
        "read",
        "list",
        "search",
        "spawn",
        "tick 3",
        "metadata",
        "disconnect",
        "total",
    ] {
        assert!(out.contains(step), "missing step {step}:\n{out}");
    }
    assert!(out.contains(" ms"), "{out}");
    assert!(env.manager_pid().is_none(), "the demo needs no manager");
}

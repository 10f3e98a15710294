//! `distant-bridge stdio`: relaying through the manager (malformed input
//! answered, the session goes on; `exit` ends it cleanly) and `--no-manager`.

mod manager_support;

use std::time::Duration;

use distant_bridge::framing::frame;
use manager_support::*;
use serde_json::json;

async fn malformed_then_initialize(mut bridge: Bridge) {
    let mut raw = Raw::new(&mut bridge);
    // Not JSON.
    raw.send(&frame(b"{this is not json")).await;
    let reply = raw.recv().await;
    assert_eq!(reply["error"]["code"], json!(-32700), "{reply}");
    assert!(reply["id"].is_null());
    // JSON, but not a JSON-RPC message.
    raw.send(&frame(br#"{"jsonrpc":"2.0","id":7}"#)).await;
    let reply = raw.recv().await;
    assert_eq!(reply["error"]["code"], json!(-32600), "{reply}");
    // A broken header.
    raw.send(b"Content-Length: lots\r\n\r\n").await;
    let reply = raw.recv().await;
    assert!(reply.get("error").is_some(), "{reply}");
    // The session goes on.
    raw.send(&frame(
        br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
    ))
    .await;
    let reply = raw.recv().await;
    assert_eq!(reply["id"], json!(1), "{reply}");
    assert!(reply["result"]["version"].is_string(), "{reply}");
    // shutdown + exit: the bridge exits with 0.
    raw.send(&frame(br#"{"jsonrpc":"2.0","id":2,"method":"shutdown"}"#))
        .await;
    assert_eq!(raw.recv().await["id"], json!(2));
    raw.send(&frame(br#"{"jsonrpc":"2.0","method":"exit"}"#))
        .await;
    let (code, err) = bridge.finish(Duration::from_secs(10)).await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("went away"), "{err}");
}

#[tokio::test]
async fn malformed_message_through_the_manager_gets_an_error_and_the_session_goes_on() {
    let env = Env::new("malformed");
    let bridge = env.stdio(&[]);
    malformed_then_initialize(bridge).await;
    assert!(
        env.manager_pid().is_some_and(alive),
        "the manager is still up"
    );
}

#[tokio::test]
async fn no_manager_serves_in_process() {
    let env = Env::new("nomgr");
    let bridge = env.stdio(&["--no-manager"]);
    malformed_then_initialize(bridge).await;
    assert!(!env.socket().exists(), "no manager was started");
    assert!(env.manager_pid().is_none());
}

#[tokio::test]
async fn closing_stdin_ends_the_relay_quietly() {
    let env = Env::new("eof");
    let mut bridge = env.stdio(&[]);
    let mut raw = Raw::new(&mut bridge);
    raw.send(&frame(br#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#))
        .await;
    assert_eq!(raw.recv().await["id"], json!(1));
    drop(raw); // closes the bridge's stdin (as an editor that quits)
    let (code, err) = bridge.finish(Duration::from_secs(10)).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "no noise on stderr: {err}");
}

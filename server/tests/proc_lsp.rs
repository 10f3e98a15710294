//! LSP framing of a real child's stdout: banner and junk skipped, messages
//! split across writes reassembled, one whole message per ProcOutput.

use std::collections::BTreeMap;
use std::time::Duration;

use distant_protocol::msg::{OutputFraming, OutputStream, Reply, ResponsePayload};
use distant_server::limits::Limits;
use distant_server::proc::Processes;
use distant_server::reply::ReplySink;
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread")]
async fn framed_messages_only() {
    let script = r#"
printf 'Starting language server v1.0\n'
printf 'Content-Len'
sleep 0.05
printf 'gth: 8\r\n\r\n{"id"'
sleep 0.05
printf ':1}Content-Length: 8\r\n\r\n{"id":2}'
printf 'junk: not a message\n\n'
printf 'log line on stderr\n' >&2
printf 'Content-Length: 8\r\n\r\n{"id":3}'
"#;
    let p = Processes::new(Limits::default());
    let (sink, mut rx) = ReplySink::channel(1, 64);
    let r = p
        .spawn(
            vec!["sh".into(), "-c".into(), script.into()],
            None,
            BTreeMap::new(),
            None,
            OutputFraming::Lsp,
            sink,
        )
        .await;
    assert!(matches!(r, Reply::ProcSpawned { .. }), "{r:?}");
    let mut messages = Vec::new();
    let mut stderr = Vec::new();
    loop {
        let resp = timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no exit in time")
            .expect("stream ended early");
        let ResponsePayload::Single(reply) = resp.payload else {
            panic!("batch")
        };
        match reply {
            Reply::ProcOutput {
                stream: OutputStream::Stdout,
                data,
                ..
            } => messages.push(String::from_utf8(data.to_vec()).unwrap()),
            Reply::ProcOutput { data, .. } => stderr.extend_from_slice(&data),
            Reply::ProcExit { code, .. } => {
                assert_eq!(code, Some(0));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let expect: Vec<String> = (1..=3)
        .map(|i| format!("Content-Length: 8\r\n\r\n{{\"id\":{i}}}"))
        .collect();
    assert_eq!(messages, expect);
    assert_eq!(stderr, b"log line on stderr\n");
}

//! `distant-bridge demo`: the README's first command. Starts an in-process
//! bridge API, connects to `local` (a `distant-server` the API starts on
//! 127.0.0.1, reached through the full protocol: handshake, key exchange,
//! authentication, encrypted session), and narrates a short session —
//! connect, write, read, list, search, spawn with streamed output, metadata,
//! disconnect — printing each step with its time in milliseconds.
//!
//! Any failure ends the demo with a message naming the step and a nonzero
//! exit status. The scratch directory (under the system temp dir) is removed
//! at the end.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::ApiOptions;
use crate::cli::{decode_data, CliError, Session};
use crate::jsonrpc::Notification;

/// How long the demo waits for search results and process output.
const STREAM_TIMEOUT: Duration = Duration::from_secs(20);

fn ms(since: Instant) -> String {
    format!("{:>8.1} ms", since.elapsed().as_secs_f64() * 1000.0)
}

fn step(started: Instant, name: &str, detail: &str) {
    println!("{}  {name:<10} {detail}", ms(started));
}

fn fail(name: &str, e: CliError) -> CliError {
    CliError::new(format!("demo failed at step `{name}`: {}", e.message))
}

/// Waits for a notification matching `pick`, within [`STREAM_TIMEOUT`].
async fn next_note(
    session: &mut Session,
    what: &str,
    mut pick: impl FnMut(&Notification) -> bool,
) -> Result<Notification, CliError> {
    let deadline = tokio::time::Instant::now() + STREAM_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, session.notes.recv()).await {
            Ok(Some(n)) if pick(&n) => return Ok(n),
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(CliError::new(format!(
                    "the bridge API closed while waiting for {what}"
                )))
            }
            Err(_) => {
                return Err(CliError::new(format!(
                    "no {what} within {} s",
                    STREAM_TIMEOUT.as_secs()
                )))
            }
        }
    }
}

fn param<'a>(n: &'a Notification, key: &str) -> Option<&'a Value> {
    n.params.as_ref()?.get(key)
}

/// Runs the demo; prints the narration to stdout.
pub async fn run(api_options: ApiOptions) -> Result<(), CliError> {
    let total = Instant::now();
    println!("distant demo: a local distant-server, reached through the full protocol\n");

    let t = Instant::now();
    let mut session = Session::in_process(api_options)
        .await
        .map_err(|e| fail("initialize", e))?;
    step(t, "initialize", "bridge API started in-process");

    let t = Instant::now();
    let connected = session
        .call("connect", json!({"destination": "local"}))
        .await
        .map_err(|e| fail("connect", e))?;
    let connection = connected
        .get("connection")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("connect", CliError::new("no connection id in the answer")))?
        .to_owned();
    let server_version = connected
        .pointer("/server/version")
        .and_then(Value::as_str)
        .unwrap_or("?");
    step(
        t,
        "connect",
        &format!(
            "local server, handshake + auth done: connection {connection}, server {server_version}"
        ),
    );

    let dir = std::env::temp_dir().join(format!(
        "distant-demo-{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    ));
    let dir = dir.to_string_lossy().into_owned();
    let file = format!("{dir}/hello.txt");
    let result = run_steps(&mut session, &connection, &dir, &file).await;

    // Clean up whatever happened.
    let _ = session
        .call(
            "fs/remove",
            json!({"connection": connection, "path": dir, "force": true}),
        )
        .await;
    result?;

    let t = Instant::now();
    session
        .call("disconnect", json!({"connection": connection}))
        .await
        .map_err(|e| fail("disconnect", e))?;
    step(
        t,
        "disconnect",
        "scratch directory removed, connection closed",
    );
    println!("\n{}  total", ms(total));
    Ok(())
}

async fn run_steps(
    session: &mut Session,
    connection: &str,
    dir: &str,
    file: &str,
) -> Result<(), CliError> {
    let text = "hello from distant\nedit remote files as if they were local\n";

    let t = Instant::now();
    session
        .call(
            "fs/createDir",
            json!({"connection": connection, "path": dir, "all": true}),
        )
        .await
        .map_err(|e| fail("mkdir", e))?;
    let written = session
        .call(
            "fs/write",
            json!({"connection": connection, "path": file, "data": text, "encoding": "utf-8"}),
        )
        .await
        .map_err(|e| fail("write", e))?;
    step(
        t,
        "write",
        &format!(
            "{file} ({} bytes, atomic)",
            written.get("size").and_then(Value::as_u64).unwrap_or(0)
        ),
    );

    let t = Instant::now();
    let read = session
        .call("fs/read", json!({"connection": connection, "path": file}))
        .await
        .map_err(|e| fail("read", e))?;
    let bytes = decode_data(&read).map_err(|e| fail("read", e))?;
    if bytes != text.as_bytes() {
        return Err(fail(
            "read",
            CliError::new("the content read back differs from what was written"),
        ));
    }
    step(
        t,
        "read",
        &format!(
            "{} bytes back, identical; etag {}",
            bytes.len(),
            read.get("etag").map(Value::to_string).unwrap_or_default()
        ),
    );

    let t = Instant::now();
    session
        .call(
            "fs/write",
            json!({"connection": connection, "path": format!("{dir}/notes.md"), "data": "# notes\n", "encoding": "utf-8"}),
        )
        .await
        .map_err(|e| fail("list", e))?;
    let listing = session
        .call("fs/readDir", json!({"connection": connection, "path": dir}))
        .await
        .map_err(|e| fail("list", e))?;
    let names: Vec<&str> = listing
        .get("entries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("path").and_then(Value::as_str))
        .collect();
    step(t, "list", &format!("{dir}: {}", names.join(", ")));

    let t = Instant::now();
    let started = session
        .call(
            "search/start",
            json!({"connection": connection, "query": {
                "target": "contents", "pattern": "remote", "regex": false, "paths": [dir]}}),
        )
        .await
        .map_err(|e| fail("search", e))?;
    let search = started.get("search").cloned().unwrap_or(Value::Null);
    let mut hits = Vec::new();
    loop {
        let n = next_note(session, "search results", |n| {
            (n.method == "search/results" || n.method == "search/done")
                && param(n, "search") == Some(&search)
        })
        .await
        .map_err(|e| fail("search", e))?;
        if n.method == "search/done" {
            break;
        }
        for m in param(&n, "matches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            hits.push(format!(
                "{}:{}",
                m.get("path").and_then(Value::as_str).unwrap_or("?"),
                m.get("line").map(Value::to_string).unwrap_or_default()
            ));
        }
    }
    step(
        t,
        "search",
        &format!("\"remote\": {} match(es) {}", hits.len(), hits.join(" ")),
    );

    let t = Instant::now();
    let spawned = session
        .call(
            "proc/spawn",
            json!({"connection": connection, "cwd": dir,
                   "cmd": ["sh", "-c", "for i in 1 2 3; do echo \"tick $i\"; sleep 0.05; done"]}),
        )
        .await
        .map_err(|e| fail("spawn", e))?;
    let proc_id = spawned.get("proc").cloned().unwrap_or(Value::Null);
    step(
        t,
        "spawn",
        &format!(
            "sh -c 'for i in 1 2 3; do echo tick $i; …' (pid {})",
            spawned.get("pid").map(Value::to_string).unwrap_or_default()
        ),
    );
    loop {
        let n = next_note(session, "process output", |n| {
            (n.method == "proc/output" || n.method == "proc/exit")
                && param(n, "proc") == Some(&proc_id)
        })
        .await
        .map_err(|e| fail("spawn", e))?;
        if n.method == "proc/exit" {
            let code = param(&n, "code").and_then(Value::as_i64);
            step(
                t,
                "exit",
                &format!("code {}", code.map(|c| c.to_string()).unwrap_or("?".into())),
            );
            if code != Some(0) {
                return Err(fail(
                    "spawn",
                    CliError::new("the process did not exit with 0"),
                ));
            }
            break;
        }
        if let Some(params) = n.params.as_ref() {
            let data = decode_data(params).map_err(|e| fail("spawn", e))?;
            for line in String::from_utf8_lossy(&data).lines() {
                step(t, "  output", line);
            }
        }
    }

    let t = Instant::now();
    let meta = session
        .call(
            "fs/metadata",
            json!({"connection": connection, "path": file, "hash": true}),
        )
        .await
        .map_err(|e| fail("metadata", e))?;
    step(
        t,
        "metadata",
        &format!(
            "{}: {} bytes, mode {}, sha256 {}",
            meta.get("type").and_then(Value::as_str).unwrap_or("?"),
            meta.get("size").and_then(Value::as_u64).unwrap_or(0),
            meta.get("mode")
                .and_then(Value::as_u64)
                .map(|m| format!("{m:o}"))
                .unwrap_or("?".into()),
            meta.get("sha256")
                .and_then(Value::as_str)
                .map(|s| &s[..s.len().min(16)])
                .unwrap_or("?")
        ),
    );
    Ok(())
}

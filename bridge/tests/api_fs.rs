//! The bridge API's lifecycle, connection and `fs/*` methods over the real
//! stack: an [`Api`] served over an in-memory pipe, a real `distant-server`
//! (`local`, and one started by hand for `distant://`), real files.

mod api_support;

use api_support::*;
use base64::Engine as _;
use distant_bridge::api::ServeEnd;
use distant_bridge::jsonrpc::{codes, ErrorKind};
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_connect_local_list_disconnect_exit() {
    let api = new_api();
    let p = peer(&api);
    let init = p
        .call(
            "initialize",
            json!({"clientName": "test", "clientVersion": "1"}),
        )
        .await;
    assert_eq!(init["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(init["protocolVersion"], "1.0");
    assert!(init["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("proc")));

    let r = p.call("connect", json!({"destination": "local"})).await;
    let id = r["connection"].as_str().unwrap().to_string();
    assert!(r["server"]["version"].is_string());
    assert!(r["server"]["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("fs")));
    assert_eq!(api.connection_count(), 1);
    // Same destination again: the same connection.
    let again = p.call("connect", json!({"destination": "local"})).await;
    assert_eq!(again["connection"], id);

    let list = p.call("connections", json!({})).await;
    assert_eq!(
        list,
        json!([{"connection": id, "destination": "local", "state": "connected"}])
    );

    let info = p.call("system/info", json!({"connection": id})).await;
    for field in [
        "os",
        "family",
        "arch",
        "currentDir",
        "separator",
        "username",
        "shell",
    ] {
        assert!(info[field].is_string(), "{field} in {info}");
    }

    assert_eq!(
        p.call("disconnect", json!({"connection": id})).await,
        Value::Null
    );
    assert_eq!(api.connection_count(), 0);
    assert_eq!(p.call("connections", json!({})).await, json!([]));
    let e = p
        .fail("fs/exists", json!({"connection": id, "path": "/"}))
        .await;
    assert_eq!(e.kind, ErrorKind::NotConnected);
    assert!(e.message.contains("connect first"), "{}", e.message);
    let e = p.fail("disconnect", json!({"connection": id})).await;
    assert_eq!(e.kind, ErrorKind::NotConnected);

    assert_eq!(p.call("shutdown", json!({})).await, Value::Null);
    p.client.notify("exit", json!({})).await.unwrap();
    assert_eq!(p.ended().await, ServeEnd::Exit);
    assert_eq!(api.peer_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn distant_url_key_param_redaction_and_auth_failure() {
    let server = OwnServer::start(KEY_A);
    let mut p = stdio_peer();

    let r = p.call("connect", json!({"destination": server.url})).await;
    let id = r["connection"].as_str().unwrap().to_string();
    // The key may come in `key`; same destination and key → same connection.
    let dest = format!("distant://{}", server.addr);
    let r2 = p
        .call("connect", json!({"destination": dest, "key": KEY_A}))
        .await;
    assert_eq!(r2["connection"], id);

    let list = p.call("connections", json!({})).await;
    assert_eq!(list[0]["destination"], dest);
    assert!(!list.to_string().contains(KEY_A), "key leaked: {list}");

    // A wrong key: auth_failed, and the key is not echoed.
    let e = p
        .fail("connect", json!({"destination": dest, "key": KEY_B}))
        .await;
    assert_eq!(e.kind, ErrorKind::AuthFailed, "{}", e.message);
    assert!(!e.message.contains(KEY_B) && !e.message.contains(KEY_A));

    // Bad keys and destinations: invalid_params, never echoing the input.
    let e = p
        .fail(
            "connect",
            json!({"destination": format!("distant://:{}zz@{}", &KEY_A[..60], server.addr)}),
        )
        .await;
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    assert!(!e.message.contains(&KEY_A[..60]));
    let e = p.fail("connect", json!({"destination": dest})).await;
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    assert!(e.message.contains("key"), "{}", e.message);
    let e = p.fail("connect", json!({"destination": "ftp://x"})).await;
    assert_eq!(e.kind, ErrorKind::InvalidParams);

    // ssh destinations and options are checked before ssh runs (the
    // ssh_*.rs tests connect for real).
    let e = p
        .fail("connect", json!({"destination": "ssh://-oProxyCommand=x"}))
        .await;
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    let e = p
        .fail(
            "connect",
            json!({"destination": "ssh://me@example.com:22", "options": {"ssh": "-v"}}),
        )
        .await;
    assert_eq!(e.kind, ErrorKind::InvalidParams);
    assert!(e.message.contains("options.ssh"), "{}", e.message);

    // Disconnecting tells every peer.
    p.call("disconnect", json!({"connection": id})).await;
    let state = p
        .note("connection/state", |v| v["connection"] == id.as_str())
        .await;
    assert_eq!(state["state"], "disconnected");
}

#[tokio::test(flavor = "multi_thread")]
async fn files_round_trip_with_every_method() {
    let dir = TempDir::new("fs");
    let p = stdio_peer();
    let c = p.connect_local().await;
    let a = dir.join("a.txt");

    // write + read, utf-8
    let w = p
        .call(
            "fs/write",
            json!({"connection": c, "path": a, "data": "héllo\n", "encoding": "utf-8"}),
        )
        .await;
    assert_eq!(w["size"], 7);
    assert!(w["etag"].is_string() && w["mtime"].as_u64().unwrap() > 1_600_000_000_000);
    let r = p.call("fs/read", json!({"connection": c, "path": a})).await;
    assert_eq!(r["data"], "héllo\n");
    assert_eq!(r["encoding"], "utf-8");
    assert_eq!(r["size"], 7);
    assert_eq!(r["etag"], w["etag"]);
    // asked for base64
    let r = p
        .call(
            "fs/read",
            json!({"connection": c, "path": a, "encoding": "base64"}),
        )
        .await;
    assert_eq!(r["encoding"], "base64");
    assert_eq!(r["data"], b64("héllo\n".as_bytes()));

    // binary: base64 in, base64 out
    let bin = dir.join("b.bin");
    let bytes = [0u8, 0xff, 0xfe, b'x', 0x80];
    p.call(
        "fs/write",
        json!({"connection": c, "path": bin, "data": b64(&bytes), "encoding": "base64"}),
    )
    .await;
    assert_eq!(std::fs::read(&bin).unwrap(), bytes);
    let r = p
        .call("fs/read", json!({"connection": c, "path": bin}))
        .await;
    assert_eq!(r["encoding"], "base64");
    assert_eq!(r["data"], b64(&bytes));
    let e = p
        .fail(
            "fs/read",
            json!({"connection": c, "path": bin, "encoding": "utf-8"}),
        )
        .await;
    assert_eq!(e.kind, ErrorKind::InvalidParams);

    // append
    let ap = p
        .call(
            "fs/append",
            json!({"connection": c, "path": a, "data": "more\n", "encoding": "utf-8"}),
        )
        .await;
    assert_eq!(ap["size"], 12);
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "héllo\nmore\n");

    // createDir, readDir (sorted, relative, depth), exists
    let deep = dir.join("d/e/f");
    p.call(
        "fs/createDir",
        json!({"connection": c, "path": deep, "all": true}),
    )
    .await;
    std::fs::write(dir.path().join("d/e/f/g.txt"), "g").unwrap();
    let rd = p
        .call("fs/readDir", json!({"connection": c, "path": dir.join("")}))
        .await;
    let names: Vec<&str> = rd["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "b.bin", "d"]);
    assert_eq!(rd["entries"][2]["type"], "dir");
    assert_eq!(rd["entries"][0]["type"], "file");
    assert_eq!(rd["entries"][0]["depth"], 1);
    assert_eq!(rd["errors"], json!([]));
    let rd = p
        .call(
            "fs/readDir",
            json!({"connection": c, "path": dir.join("d"), "depth": 0, "absolute": true}),
        )
        .await;
    let all: Vec<&str> = rd["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(all.contains(&dir.join("d/e/f/g.txt").as_str()), "{all:?}");
    assert_eq!(
        p.call("fs/exists", json!({"connection": c, "path": deep}))
            .await,
        true
    );
    assert_eq!(
        p.call(
            "fs/exists",
            json!({"connection": c, "path": dir.join("nope")})
        )
        .await,
        false
    );

    // metadata, camelCase, ms
    let m = p
        .call(
            "fs/metadata",
            json!({"connection": c, "path": a, "hash": true}),
        )
        .await;
    assert_eq!(m["type"], "file");
    assert_eq!(m["size"], 12);
    assert!(m["mtime"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(m["readonly"], false);
    assert_eq!(m["sha256"].as_str().unwrap().len(), 64);
    std::os::unix::fs::symlink(&a, dir.path().join("link")).unwrap();
    let m = p
        .call(
            "fs/metadata",
            json!({"connection": c, "path": dir.join("link")}),
        )
        .await;
    assert_eq!(m["type"], "symlink");
    assert_eq!(m["symlinkTarget"], a);
    let m = p
        .call(
            "fs/metadata",
            json!({"connection": c, "path": dir.join("link"), "followSymlinks": true}),
        )
        .await;
    assert_eq!(m["type"], "file");

    // setPermissions
    p.call(
        "fs/setPermissions",
        json!({"connection": c, "path": a, "mode": 0o600}),
    )
    .await;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let m = p
        .call("fs/metadata", json!({"connection": c, "path": a}))
        .await;
    assert_eq!(m["mode"].as_u64().unwrap() & 0o777, 0o600);

    // copy, rename, remove
    let copy = dir.join("copy.txt");
    p.call("fs/copy", json!({"connection": c, "src": a, "dst": copy}))
        .await;
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "héllo\nmore\n");
    let moved = dir.join("moved.txt");
    p.call(
        "fs/rename",
        json!({"connection": c, "src": copy, "dst": moved}),
    )
    .await;
    assert!(!std::path::Path::new(&copy).exists());
    p.call("fs/remove", json!({"connection": c, "path": moved}))
        .await;
    assert!(!std::path::Path::new(&moved).exists());
    p.call(
        "fs/remove",
        json!({"connection": c, "path": dir.join("d"), "force": true}),
    )
    .await;
    assert!(!dir.path().join("d").exists());

    // findUp
    std::fs::create_dir_all(dir.path().join("proj/src/deep")).unwrap();
    std::fs::write(dir.path().join("proj/Cargo.toml"), "").unwrap();
    let f = p
        .call(
            "fs/findUp",
            json!({"connection": c, "path": dir.join("proj/src/deep"), "names": ["Cargo.toml", ".git"]}),
        )
        .await;
    assert_eq!(f, json!({"path": dir.join("proj")}));
    let f = p
        .call(
            "fs/findUp",
            json!({"connection": c, "path": dir.join("proj/src"), "names": ["no-such-marker-file-xyz"]}),
        )
        .await;
    assert_eq!(f, Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_kind_reachable_from_fs() {
    let dir = TempDir::new("errors");
    let p = stdio_peer();
    let c = p.connect_local().await;
    let a = dir.join("a.txt");
    std::fs::write(&a, "original").unwrap();
    std::fs::create_dir_all(dir.path().join("full/sub")).unwrap();

    let kind = |e: distant_bridge::jsonrpc::RpcError| (e.kind, e.code, e.message);

    let (k, code, msg) = kind(
        p.fail(
            "fs/read",
            json!({"connection": c, "path": dir.join("missing")}),
        )
        .await,
    );
    assert_eq!(k, ErrorKind::NotFound);
    assert_eq!(code, codes::REQUEST_FAILED);
    assert!(!msg.is_empty());

    let (k, ..) = kind(
        p.fail(
            "fs/write",
            json!({"connection": c, "path": a, "data": "x", "encoding": "utf-8", "overwrite": false}),
        )
        .await,
    );
    assert_eq!(k, ErrorKind::AlreadyExists);
    let (k, ..) = kind(
        p.fail(
            "fs/createDir",
            json!({"connection": c, "path": dir.join("full")}),
        )
        .await,
    );
    assert_eq!(k, ErrorKind::AlreadyExists);
    let (k, ..) = kind(
        p.fail(
            "fs/write",
            json!({"connection": c, "path": dir.join("new"), "data": "x", "create": false}),
        )
        .await,
    );
    assert_eq!(k, ErrorKind::NotFound);

    let (k, ..) = kind(
        p.fail(
            "fs/remove",
            json!({"connection": c, "path": dir.join("full")}),
        )
        .await,
    );
    assert_eq!(k, ErrorKind::DirectoryNotEmpty);

    // conflict: the etag moved on; nothing is written
    let r = p.call("fs/read", json!({"connection": c, "path": a})).await;
    let etag = r["etag"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&a, "changed by someone else").unwrap();
    let (k, ..) = kind(
        p.fail(
            "fs/write",
            json!({"connection": c, "path": a, "data": "mine", "ifEtag": etag}),
        )
        .await,
    );
    assert_eq!(k, ErrorKind::Conflict);
    assert_eq!(
        std::fs::read_to_string(&a).unwrap(),
        "changed by someone else"
    );
    // with the current etag it goes through
    let r = p.call("fs/read", json!({"connection": c, "path": a})).await;
    p.call(
        "fs/write",
        json!({"connection": c, "path": a, "data": "mine", "ifEtag": r["etag"]}),
    )
    .await;
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "mine");

    let (k, ..) = kind(
        p.fail(
            "fs/write",
            json!({"connection": c, "path": dir.join("full"), "data": "x"}),
        )
        .await,
    );
    assert_eq!(k, ErrorKind::IsADirectory);
    let (k, ..) = kind(
        p.fail(
            "fs/write",
            json!({"connection": c, "path": format!("{a}/under-a-file"), "data": "x"}),
        )
        .await,
    );
    assert_eq!(k, ErrorKind::NotADirectory);

    // invalid_params: missing and mistyped fields are named
    let (k, code, msg) = kind(p.fail("fs/read", json!({"connection": c})).await);
    assert_eq!(k, ErrorKind::InvalidParams);
    assert_eq!(code, codes::INVALID_PARAMS);
    assert!(msg.contains("`path`"), "{msg}");
    let (k, _, msg) = kind(
        p.fail(
            "fs/readDir",
            json!({"connection": c, "path": "/", "depth": "deep"}),
        )
        .await,
    );
    assert_eq!(k, ErrorKind::InvalidParams);
    assert!(msg.contains("`depth`"), "{msg}");
    let (k, _, msg) = kind(
        p.fail(
            "fs/write",
            json!({"connection": c, "path": a, "data": "***", "encoding": "base64"}),
        )
        .await,
    );
    assert_eq!(k, ErrorKind::InvalidParams);
    assert!(msg.contains("`data`"), "{msg}");
    let (k, _, msg) = kind(
        p.fail(
            "search/start",
            json!({"connection": c, "query": {"target": "contents", "paths": ["/"]}}),
        )
        .await,
    );
    assert_eq!(k, ErrorKind::InvalidParams);
    assert!(msg.contains("`query.pattern`"), "{msg}");

    // not_connected
    let (k, ..) = kind(
        p.fail("fs/read", json!({"connection": "nope", "path": a}))
            .await,
    );
    assert_eq!(k, ErrorKind::NotConnected);

    // unknown method
    let e = p.fail("fs/teleport", json!({})).await;
    assert_eq!(e.code, codes::METHOD_NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_get_errors_and_the_session_goes_on() {
    let p = stdio_peer();
    p.client.send_raw(b"{not json".to_vec()).await.unwrap();
    p.client
        .send_raw(br#"{"jsonrpc":"2.0","id":99,"params":{}}"#.to_vec())
        .await
        .unwrap();
    let init = p.call("initialize", json!({})).await;
    assert!(init["version"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_mib_write_and_read_take_the_chunked_path() {
    let dir = TempDir::new("big");
    let p = stdio_peer();
    let c = p.connect_local().await;
    let path = dir.join("big.bin");
    let mut bytes = vec![0u8; 20 * 1024 * 1024];
    let mut x: u32 = 12345;
    for b in bytes.iter_mut() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let w = p
        .call(
            "fs/write",
            json!({"connection": c, "path": path, "data": b64(&bytes), "encoding": "base64"}),
        )
        .await;
    assert_eq!(w["size"], bytes.len() as u64);
    assert!(std::fs::read(&path).unwrap() == bytes, "content differs");
    let r = p
        .call("fs/read", json!({"connection": c, "path": path}))
        .await;
    assert_eq!(r["encoding"], "base64");
    assert_eq!(r["size"], bytes.len() as u64);
    assert_eq!(r["etag"], w["etag"]);
    let back = base64::engine::general_purpose::STANDARD
        .decode(r["data"].as_str().unwrap())
        .unwrap();
    assert!(back == bytes, "read content differs");
}

/// Names in `dir` that look like a write's temporary file.
fn temp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".distant-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_writes_are_atomic_owned_and_aborted_with_their_peer() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("chunked");
    let api = new_api();
    let p = peer(&api);
    let other = peer(&api);
    let c = p.connect_local().await;
    let path = dir.join("target.bin");
    std::fs::write(&path, b"old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let etag = p
        .call("fs/read", json!({"connection": c, "path": path}))
        .await["etag"]
        .clone();

    // 9 MiB in three pieces sent last first: nothing shows until finish,
    // then all of it, with the file's mode kept.
    let bytes: Vec<u8> = (0..9u32 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let w = p
        .call(
            "fs/writeStart",
            json!({"connection": c, "path": path, "ifEtag": etag}),
        )
        .await;
    let write = w["write"].as_str().unwrap().to_string();
    let e = other
        .fail(
            "fs/writeChunk",
            json!({"connection": c, "write": write, "offset": 0, "data": "x"}),
        )
        .await;
    assert_eq!(e.kind, ErrorKind::NotFound, "{}", e.message);
    let piece = bytes.len() / 3;
    for i in (0..3).rev() {
        let part = &bytes[i * piece..(i + 1) * piece];
        let r = p
            .call(
                "fs/writeChunk",
                json!({"connection": c, "write": write, "offset": i * piece, "data": b64(part), "encoding": "base64"}),
            )
            .await;
        assert_eq!(r, Value::Null);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }
    let done = p
        .call("fs/writeFinish", json!({"connection": c, "write": write}))
        .await;
    assert_eq!(done["size"], bytes.len() as u64);
    assert!(std::fs::read(&path).unwrap() == bytes, "content differs");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let e = p
        .fail("fs/writeFinish", json!({"connection": c, "write": write}))
        .await;
    assert_eq!(e.kind, ErrorKind::NotFound, "a finished write is gone");

    // Changed behind the write: finishing is a conflict and writes nothing.
    let etag = done["etag"].clone();
    let w = p
        .call(
            "fs/writeStart",
            json!({"connection": c, "path": path, "ifEtag": etag}),
        )
        .await;
    let write = w["write"].as_str().unwrap().to_string();
    p.call(
        "fs/writeChunk",
        json!({"connection": c, "write": write, "offset": 0, "data": "mine"}),
    )
    .await;
    std::fs::write(&path, b"theirs").unwrap();
    let e = p
        .fail("fs/writeFinish", json!({"connection": c, "write": write}))
        .await;
    assert_eq!(e.kind, ErrorKind::Conflict, "{}", e.message);
    assert_eq!(std::fs::read(&path).unwrap(), b"theirs");

    // Bad data is the caller's error; abort leaves the file alone.
    let w = p
        .call("fs/writeStart", json!({"connection": c, "path": path}))
        .await;
    let write = w["write"].as_str().unwrap().to_string();
    let e = p
        .fail(
            "fs/writeChunk",
            json!({"connection": c, "write": write, "offset": 0, "data": "!!", "encoding": "base64"}),
        )
        .await;
    assert_eq!(e.kind, ErrorKind::InvalidParams, "{}", e.message);
    p.call(
        "fs/writeChunk",
        json!({"connection": c, "write": write, "offset": 0, "data": "never"}),
    )
    .await;
    p.call("fs/writeAbort", json!({"connection": c, "write": write}))
        .await;
    assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());

    // A peer that leaves mid-write has its write aborted on the server.
    let fresh = dir.join("fresh.bin");
    let w = other
        .call("fs/writeStart", json!({"connection": c, "path": fresh}))
        .await;
    let write = w["write"].as_str().unwrap().to_string();
    other
        .call(
            "fs/writeChunk",
            json!({"connection": c, "write": write, "offset": 0, "data": "half"}),
        )
        .await;
    assert_eq!(temp_files(dir.path()).len(), 1, "the write is in progress");
    other.hang_up().await;
    distant_testkit::wait_until("the leaving peer's write aborted", WAIT, || {
        temp_files(dir.path()).is_empty()
    })
    .await;
    assert!(!std::path::Path::new(&fresh).exists());
}

/// Issue 14, item 2: ssh options that run a local command (as a workspace
/// setting could supply them) are refused before ssh runs; with
/// `allowLocalCommands` (an explicit local choice) they go through.
#[tokio::test(flavor = "multi_thread")]
async fn ssh_options_that_run_local_commands_are_refused_unless_allowed() {
    let api = new_api();
    let p = peer(&api);
    let dir = TempDir::new("sshcmd");
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    for ssh in [
        json!([format!("-oProxyCommand={touch}")]),
        json!([
            "-o",
            format!("LocalCommand={touch}"),
            "-o",
            "PermitLocalCommand=yes"
        ]),
        json!(["-vo", format!("KnownHostsCommand={touch}")]),
        json!(["-F", dir.path().join("cfg").display().to_string()]),
    ] {
        let e = p
            .fail(
                "connect",
                json!({"destination": "ssh://127.0.0.1:9", "options": {"ssh": ssh}}),
            )
            .await;
        assert_eq!(e.kind, ErrorKind::InvalidParams, "{}", e.message);
        assert!(
            e.message.contains("run or load something on this machine")
                && e.message.contains("allowSshCommands"),
            "{}",
            e.message
        );
        assert!(!marker.exists(), "ssh ran a local command for {ssh}");
    }
    // Explicitly allowed: ssh runs, and so does its ProxyCommand (the
    // connect then fails: the command is no proxy).
    let _ = p
        .fail(
            "connect",
            json!({"destination": "ssh://127.0.0.1:9", "options": {
                "ssh": [format!("-oProxyCommand={touch}"), "-oConnectTimeout=5"],
                "allowLocalCommands": true
            }}),
        )
        .await;
    assert!(
        marker.exists(),
        "allowLocalCommands did not let the option through"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_overwrite_flag_replaces_or_refuses_and_a_failed_copy_keeps_the_destination() {
    let dir = TempDir::new("copy-overwrite");
    let a = dir.join("a.txt");
    let b = dir.join("b.txt");
    std::fs::write(&a, "new\n").unwrap();
    std::fs::write(&b, "old\n").unwrap();
    let p = stdio_peer();
    let c = p.connect_local().await;
    let e = p
        .fail(
            "fs/copy",
            json!({"connection": c, "src": a, "dst": b, "overwrite": false}),
        )
        .await;
    assert_eq!(e.kind.as_str(), "already_exists", "{e:?}");
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "old\n");
    let e = p
        .fail(
            "fs/copy",
            json!({"connection": c, "src": a, "dst": b, "overwrite": "yes"}),
        )
        .await;
    assert_eq!(e.kind.as_str(), "invalid_params", "{e:?}");
    // A copy that fails half-way keeps the destination.
    let e = p
        .fail(
            "fs/copy",
            json!({"connection": c, "src": "/proc/self/mem", "dst": b, "overwrite": true}),
        )
        .await;
    eprintln!("failed copy: {}", e.message);
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "old\n");
    p.call(
        "fs/copy",
        json!({"connection": c, "src": a, "dst": b, "overwrite": true}),
    )
    .await;
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "new\n");
    // A directory over a file, with overwrite.
    std::fs::create_dir_all(dir.path().join("d")).unwrap();
    std::fs::write(dir.path().join("d/x"), "x").unwrap();
    p.call(
        "fs/copy",
        json!({"connection": c, "src": dir.join("d"), "dst": b, "overwrite": true}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b.txt/x")).unwrap(),
        "x"
    );
}

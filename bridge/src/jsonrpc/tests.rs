//! Tests for the JSON-RPC message model.

use super::*;
use serde_json::json;

fn parse_str(s: &str) -> Result<Message, Invalid> {
    parse(s.as_bytes())
}

fn reparse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn request_with_number_and_string_ids() {
    let m =
        parse_str(r#"{"jsonrpc":"2.0","id":7,"method":"fs/read","params":{"path":"/a"}}"#).unwrap();
    assert_eq!(
        m,
        Message::Request(Request {
            id: Id::from(7),
            method: "fs/read".into(),
            params: Some(json!({"path":"/a"}))
        })
    );
    let m = parse_str(r#"{"jsonrpc":"2.0","id":"x-1","method":"shutdown"}"#).unwrap();
    assert_eq!(
        m,
        Message::Request(Request {
            id: Id::from("x-1"),
            method: "shutdown".into(),
            params: None
        })
    );
}

#[test]
fn ids_are_kept_exactly() {
    for raw in [
        "0",
        "-5",
        "18446744073709551615",
        "-9223372036854775808",
        "\"\"",
        "\"0\"",
        "\"é😀\"",
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{raw},"method":"m"}}"#);
        let Ok(Message::Request(r)) = parse(body.as_bytes()) else {
            panic!("{raw}");
        };
        let out = result_response(&r.id, &Value::Null);
        let expected = format!(r#"{{"jsonrpc":"2.0","id":{raw},"result":null}}"#);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}

#[test]
fn notification_and_params_array() {
    let m = parse_str(r#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":[1]}"#).unwrap();
    assert_eq!(
        m,
        Message::Notification(Notification {
            method: "$/cancelRequest".into(),
            params: Some(json!([1]))
        })
    );
}

#[test]
fn responses() {
    let m = parse_str(r#"{"jsonrpc":"2.0","id":3,"result":{"a":1}}"#).unwrap();
    assert_eq!(
        m,
        Message::Response(Response {
            id: Some(Id::from(3)),
            outcome: Ok(json!({"a":1}))
        })
    );
    let m = parse_str(
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32803,"message":"gone","data":{"kind":"not_found","detail":{"path":"/x"}}}}"#,
    )
    .unwrap();
    let Message::Response(Response {
        id: None,
        outcome: Err(e),
    }) = m
    else {
        panic!("{m:?}");
    };
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(e.detail, Some(json!({"path":"/x"})));
    // Foreign error data without our kind: kept whole, kind other.
    let m = parse_str(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m","data":[1]}}"#)
        .unwrap();
    let Message::Response(Response {
        outcome: Err(e), ..
    }) = m
    else {
        panic!();
    };
    assert_eq!((e.kind, e.detail), (ErrorKind::Other, Some(json!([1]))));
}

#[test]
fn parse_error_has_null_id() {
    let e = parse_str("{not json").unwrap_err();
    assert_eq!(e.id, None);
    assert_eq!(e.error.code, codes::PARSE_ERROR);
    let resp = reparse(&e.response().unwrap());
    assert_eq!(resp["id"], Value::Null);
    assert_eq!(resp["error"]["code"], json!(-32700));
    assert_eq!(resp["jsonrpc"], json!("2.0"));
}

#[test]
fn invalid_requests_recover_the_id() {
    let cases: &[(&str, i64, Option<Id>, bool)] = &[
        (r#"[]"#, codes::INVALID_REQUEST, None, true),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"m"}]"#,
            codes::INVALID_REQUEST,
            None,
            true,
        ),
        (r#"42"#, codes::INVALID_REQUEST, None, true),
        (
            r#"{"id":5,"method":"m"}"#,
            codes::INVALID_REQUEST,
            Some(Id::from(5)),
            true,
        ),
        (
            r#"{"jsonrpc":"1.0","id":"a","method":"m"}"#,
            codes::INVALID_REQUEST,
            Some(Id::from("a")),
            true,
        ),
        (
            r#"{"jsonrpc":"2.0","id":5,"method":7}"#,
            codes::INVALID_REQUEST,
            Some(Id::from(5)),
            true,
        ),
        (
            r#"{"jsonrpc":"2.0","id":{"x":1},"method":"m"}"#,
            codes::INVALID_REQUEST,
            None,
            true,
        ),
        (
            r#"{"jsonrpc":"2.0","id":true,"method":"m"}"#,
            codes::INVALID_REQUEST,
            None,
            true,
        ),
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"m"}"#,
            codes::INVALID_REQUEST,
            None,
            true,
        ),
        (
            r#"{"jsonrpc":"2.0","id":9,"method":"m","params":"s"}"#,
            codes::INVALID_PARAMS,
            Some(Id::from(9)),
            true,
        ),
        (
            r#"{"jsonrpc":"2.0","id":9}"#,
            codes::INVALID_REQUEST,
            Some(Id::from(9)),
            true,
        ),
        (r#"{"jsonrpc":"2.0"}"#, codes::INVALID_REQUEST, None, true),
        (r#"{}"#, codes::INVALID_REQUEST, None, true),
        // Never reply to notifications or responses.
        (
            r#"{"jsonrpc":"2.0","method":"m","params":3}"#,
            codes::INVALID_PARAMS,
            None,
            false,
        ),
        (
            r#"{"jsonrpc":"1.0","method":"m"}"#,
            codes::INVALID_REQUEST,
            None,
            false,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#,
            codes::INVALID_REQUEST,
            Some(Id::from(1)),
            false,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"error":"bad"}"#,
            codes::INVALID_REQUEST,
            Some(Id::from(1)),
            false,
        ),
        (
            r#"{"jsonrpc":"2.0","result":1}"#,
            codes::INVALID_REQUEST,
            None,
            false,
        ),
        (
            r#"{"jsonrpc":"2.0","id":null,"result":1}"#,
            codes::INVALID_REQUEST,
            None,
            false,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"m","result":1}"#,
            codes::INVALID_REQUEST,
            Some(Id::from(1)),
            true,
        ),
    ];
    for (body, code, id, reply) in cases {
        let e = parse_str(body).unwrap_err();
        assert_eq!(e.error.code, *code, "{body}");
        assert_eq!(&e.id, id, "{body}");
        assert_eq!(e.reply, *reply, "{body}");
        assert_eq!(e.response().is_some(), *reply);
        if let Some(resp) = e.response() {
            let v = reparse(&resp);
            let expected_id = id
                .as_ref()
                .map_or(Value::Null, |i| serde_json::to_value(i).unwrap());
            assert_eq!(v["id"], expected_id, "{body}");
            assert!(v["error"]["data"]["kind"].is_string());
        }
    }
}

#[test]
fn never_panics_on_garbage() {
    let mut seed: u64 = 42;
    let alphabet =
        br#"{}[]":,0123456789.-eE truefalsenull"jsonrpc""2.0""id""method""result""error""params"\"#;
    for _ in 0..5000 {
        let mut body = Vec::new();
        for _ in 0..(seed % 64) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            body.push(alphabet[((seed >> 33) % alphabet.len() as u64) as usize]);
        }
        let _ = parse(&body);
    }
    let _ = parse(&[0xff, 0xfe, 0x00]);
    let _ = parse(&vec![b'['; 100_000]);
}

#[test]
fn error_kinds_serialise_snake_case() {
    let names: Vec<String> = ErrorKind::ALL
        .iter()
        .map(|k| {
            serde_json::to_value(k)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "not_found",
            "permission_denied",
            "already_exists",
            "not_a_directory",
            "is_a_directory",
            "directory_not_empty",
            "conflict",
            "invalid_params",
            "not_connected",
            "connection_lost",
            "auth_failed",
            "timeout",
            "unsupported",
            "other"
        ]
    );
    for k in ErrorKind::ALL {
        assert_eq!(k.as_str(), serde_json::to_value(k).unwrap());
        assert_eq!(ErrorKind::from_wire(k.as_str()), Some(k));
        let back: ErrorKind = serde_json::from_value(json!(k.as_str())).unwrap();
        assert_eq!(back, k);
    }
    assert_eq!(ErrorKind::from_wire("nope"), None);
}

#[test]
fn error_constructors_and_codes() {
    assert_eq!(RpcError::parse_error("x").code, -32700);
    assert_eq!(RpcError::invalid_request("x").code, -32600);
    assert_eq!(RpcError::method_not_found("fs/nope").code, -32601);
    assert_eq!(
        RpcError::method_not_found("fs/nope").kind,
        ErrorKind::Unsupported
    );
    assert_eq!(RpcError::invalid_params("x").code, -32602);
    assert_eq!(RpcError::internal("x").code, -32603);
    assert_eq!(RpcError::request_cancelled().code, -32800);
    assert_eq!(
        RpcError::new(ErrorKind::Conflict, "etag changed").code,
        -32803
    );
    assert_eq!(RpcError::new(ErrorKind::InvalidParams, "bad").code, -32602);
}

#[test]
fn error_response_shape() {
    let e =
        RpcError::new(ErrorKind::NotFound, "No such file: /a").with_detail(json!({"path":"/a"}));
    let out = error_response(Some(&Id::from(4)), &e);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        r#"{"jsonrpc":"2.0","id":4,"error":{"code":-32803,"message":"No such file: /a","data":{"kind":"not_found","detail":{"path":"/a"}}}}"#
    );
    // And it parses back to the same error.
    let Ok(Message::Response(Response {
        id,
        outcome: Err(back),
    })) = parse(&out)
    else {
        panic!();
    };
    assert_eq!(id, Some(Id::from(4)));
    assert_eq!(back, e);
}

#[test]
fn serialisation_helpers_round_trip() {
    let msgs = [
        Message::Request(Request {
            id: Id::from("r1"),
            method: "fs/read".into(),
            params: Some(json!({"path":"/a"})),
        }),
        Message::Request(Request {
            id: Id::from(2),
            method: "shutdown".into(),
            params: None,
        }),
        Message::Notification(Notification {
            method: "connection/state".into(),
            params: Some(json!({"state":"lost"})),
        }),
        Message::Notification(Notification {
            method: "exit".into(),
            params: None,
        }),
        Message::Response(Response {
            id: Some(Id::from(3)),
            outcome: Ok(json!(null)),
        }),
        Message::Response(Response {
            id: None,
            outcome: Err(RpcError::parse_error("bad")),
        }),
    ];
    for m in msgs {
        let bytes = m.to_vec();
        assert!(!bytes.contains(&b'\n'), "compact");
        assert_eq!(parse(&bytes).unwrap(), m);
    }
    assert_eq!(
        notification("exit", None),
        br#"{"jsonrpc":"2.0","method":"exit"}"#.to_vec()
    );
}

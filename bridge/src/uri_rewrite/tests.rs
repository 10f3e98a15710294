//! Tests for the byte-preserving URI rewriter.

use super::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn map() -> UriMap {
    UriMap::new("distant", "host1")
}

fn remote(json: &str) -> (String, usize) {
    let r = map().to_remote(json.as_bytes()).expect("valid JSON");
    (
        String::from_utf8(r.to_vec(json.as_bytes())).unwrap(),
        r.count,
    )
}

fn editor(json: &str) -> (String, usize) {
    let r = map().to_editor(json.as_bytes()).expect("valid JSON");
    (
        String::from_utf8(r.to_vec(json.as_bytes())).unwrap(),
        r.count,
    )
}

#[test]
fn initialize_root_uri_and_workspace_folders() {
    let msg = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"processId":12,"rootPath":"/home/me/proj","rootUri":"distant://host1/home/me/proj","workspaceFolders":[{"uri":"distant://host1/home/me/proj","name":"proj"},{"uri":"DISTANT:///srv/x%20y","name":"distant://not-a-path"}],"capabilities":{}}}"#;
    let (out, n) = remote(msg);
    assert_eq!(n, 3);
    assert_eq!(
        out,
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"processId":12,"rootPath":"/home/me/proj","rootUri":"file:///home/me/proj","workspaceFolders":[{"uri":"file:///home/me/proj","name":"proj"},{"uri":"file:///srv/x%20y","name":"distant://not-a-path"}],"capabilities":{}}}"#
    );
}

#[test]
fn did_open_text_is_untouched_byte_for_byte() {
    let text = "use profile::x;\\nlet a = \\\"file:///x\\\"; // distant://y/z\\nprofile: file:///x\\ndistant://host1/a";
    let msg = format!(
        r#"{{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{{"textDocument":{{"uri":"distant://host1/src/main.rs","languageId":"rust","version":1,"text":"{text}"}}}}}}"#
    );
    let (out, n) = remote(&msg);
    assert_eq!(n, 1);
    assert_eq!(
        out,
        msg.replace("distant://host1/src/main.rs", "file:///src/main.rs")
    );
    assert!(out.contains(text));
    // The other direction leaves it alone too (the text has file:/// inside).
    let (back, n) = editor(&out);
    assert_eq!(n, 1);
    assert_eq!(back, msg);
}

#[test]
fn text_that_is_exactly_a_uri_plus_newline_is_untouched() {
    let msg = r#"{"text":"file:///x\n","t2":"file:///a b","t3":"file:///a\tb"}"#;
    let (out, n) = editor(msg);
    assert_eq!(n, 0);
    assert_eq!(out, msg);
}

#[test]
fn profile_colon_never_becomes_prodistant() {
    let msg =
        r#"{"a":"profile:","b":"file:","c":"profile://x/y","d":"fileprofile:///a","e":"file://"}"#;
    assert_eq!(editor(msg), (msg.to_owned(), 0));
    assert_eq!(remote(msg), (msg.to_owned(), 0));
}

#[test]
fn definition_location_and_location_link() {
    let msg = r#"{"jsonrpc":"2.0","id":"abc","result":[{"uri":"file:///src/lib.rs","range":{"start":{"line":1,"character":2},"end":{"line":1,"character":5}}},{"originSelectionRange":null,"targetUri":"file:///usr/lib/rustlib/src/core.rs","targetRange":{},"targetSelectionRange":{}}]}"#;
    let (out, n) = editor(msg);
    assert_eq!(n, 2);
    assert_eq!(out, msg.replace("file:///", "distant://host1/"));
}

#[test]
fn workspace_edit_changes_uri_keys() {
    let msg = r#"{"changes":{"file:///a.rs":[{"range":{},"newText":"file:///b.rs"}],"file:///c%20d.rs":[]},"documentChanges":[{"textDocument":{"uri":"file:///a.rs","version":3},"edits":[]},{"kind":"rename","oldUri":"file:///x","newUri":"file:///y"},{"kind":"create","uri":"file:///z"}]}"#;
    let (out, n) = editor(msg);
    // newText that is exactly a URI (no whitespace) counts as a URI too.
    assert_eq!(n, 7);
    assert_eq!(
        out,
        r#"{"changes":{"distant://host1/a.rs":[{"range":{},"newText":"distant://host1/b.rs"}],"distant://host1/c%20d.rs":[]},"documentChanges":[{"textDocument":{"uri":"distant://host1/a.rs","version":3},"edits":[]},{"kind":"rename","oldUri":"distant://host1/x","newUri":"distant://host1/y"},{"kind":"create","uri":"distant://host1/z"}]}"#
    );
    // Keys the other way.
    let (back, n) = remote(&out);
    assert_eq!(n, 7);
    assert_eq!(back, msg);
}

#[test]
fn publish_diagnostics_related_information() {
    let msg = r#"{"jsonrpc":"2.0","method":"textDocument/publishDiagnostics","params":{"uri":"file:///p/a.py","diagnostics":[{"range":{},"message":"see file:///p/b.py","relatedInformation":[{"location":{"uri":"file:///p/b.py","range":{}},"message":"defined here"}],"codeDescription":{"href":"https://docs.example/E1"}}]}}"#;
    let (out, n) = editor(msg);
    assert_eq!(n, 2);
    assert!(out.contains(r#""uri":"distant://host1/p/a.py""#));
    assert!(out.contains(r#""uri":"distant://host1/p/b.py""#));
    assert!(out.contains(r#""message":"see file:///p/b.py""#));
    assert!(out.contains("https://docs.example/E1"));
}

#[test]
fn hover_contents_with_uris_untouched() {
    let msg = r#"{"id":5,"result":{"contents":{"kind":"markdown","value":"Defined in [a.rs](file:///src/a.rs)\n\nsee distant://host1/x"}}}"#;
    assert_eq!(editor(msg), (msg.to_owned(), 0));
    assert_eq!(remote(msg), (msg.to_owned(), 0));
}

#[test]
fn empty_authority_and_scheme_case() {
    let m = UriMap::new("distant", "");
    let r = m
        .to_remote(br#"["distant:///a","DiStAnT://h/b","distant://h","distant:/a"]"#)
        .unwrap();
    assert_eq!(r.count, 2);
    assert_eq!(
        r.bytes.as_deref(),
        Some(&br#"["file:///a","file:///b","distant://h","distant:/a"]"#[..])
    );
    let r = m
        .to_editor(br#"["file:///a","FILE:///b","file://localhost/c","file:/d"]"#)
        .unwrap();
    assert_eq!(r.count, 2);
    assert_eq!(
        r.bytes.as_deref(),
        Some(&br#"["distant:///a","distant:///b","file://localhost/c","file:/d"]"#[..])
    );
}

#[test]
fn custom_scheme() {
    let m = UriMap::new("remote-x", "c1");
    let (r, _) = (
        m.to_remote(br#"{"u":"remote-x://zz/a","v":"distant://c1/a"}"#)
            .unwrap(),
        0,
    );
    assert_eq!(r.count, 1);
    assert_eq!(
        r.bytes.as_deref(),
        Some(&br#"{"u":"file:///a","v":"distant://c1/a"}"#[..])
    );
}

#[test]
fn escaped_uris_are_recognised_and_emitted_plain() {
    let msg =
        r#"{"a":"file:\/\/\/x\/y","b":"\u0066ile:///z","c":"file:///q\u00e9","d":"file:///\"q"}"#;
    let (out, n) = editor(msg);
    assert_eq!(n, 4);
    assert_eq!(
        out,
        r#"{"a":"distant://host1/x/y","b":"distant://host1/z","c":"distant://host1/qé","d":"distant://host1/\"q"}"#
    );
    let msg = r#"{"a":"distant:\/\/host\/x"}"#;
    assert_eq!(remote(msg), (r#"{"a":"file:///x"}"#.to_owned(), 1));
}

#[test]
fn non_uri_strings_with_escapes_copied_byte_for_byte() {
    let msg = r#"{"a":"line\nnext\t\"q\" \\ \/ \b\f\r \u0041\u00e9\ud83d\ude00","fil\u0065":"f\u0069le:\/\/x"}"#;
    assert_eq!(editor(msg), (msg.to_owned(), 0));
    assert_eq!(remote(msg), (msg.to_owned(), 0));
}

#[test]
fn escaped_whitespace_or_lone_surrogate_is_not_a_uri() {
    let msg = r#"["file:\/\/\/a\nb","file:///a\u0020b","file:///\ud800x","file:///\udc00"]"#;
    assert_eq!(editor(msg), (msg.to_owned(), 0));
}

#[test]
fn unicode_around_and_inside() {
    let msg = "{\"é\":\"ü😀\",\"u\":\"file:///dir/ファイル.rs\",\"s\":\"\\ud83d\\ude00 file:///a\",\"k😀\":[\"file:///😀\"]}";
    let (out, n) = editor(msg);
    assert_eq!(n, 2);
    assert_eq!(
        out,
        "{\"é\":\"ü😀\",\"u\":\"distant://host1/dir/ファイル.rs\",\"s\":\"\\ud83d\\ude00 file:///a\",\"k😀\":[\"distant://host1/😀\"]}"
    );
    // Surrogate-pair escaped URI decodes to UTF-8.
    let (out, n) = editor(r#"["file:///\ud83d\ude00"]"#);
    assert_eq!((out.as_str(), n), ("[\"distant://host1/😀\"]", 1));
}

#[test]
fn numbers_literals_whitespace_preserved() {
    let msg = "  {\n  \"a\" : -0.5e+10 ,\t\"b\":[ true ,false,null , 0, 12, -3.25E-2 ],\r\n \"u\" :  \"file:///x\"  }  \n";
    let (out, n) = editor(msg);
    assert_eq!(n, 1);
    assert_eq!(out, msg.replace("file:///x", "distant://host1/x"));
}

#[test]
fn unchanged_means_no_copy() {
    let r = map().to_editor(br#"{"a":1}"#).unwrap();
    assert!(r.is_unchanged());
    assert_eq!(r.count, 0);
    let orig = bytes::Bytes::from_static(br#"{"a":1}"#);
    let ptr = orig.as_ptr();
    assert_eq!(r.into_bytes(orig).as_ptr(), ptr);
}

#[test]
fn malformed_json_is_an_error() {
    for bad in [
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "[1 2]",
        "{\"a\"}",
        "{\"a\":}",
        "{a:1}",
        "\"abc",
        "\"a\\x\"",
        "\"\\u12\"",
        "\"a\u{1}\"",
        "tru",
        "nul",
        "01x",
        "-",
        "1.",
        "1e",
        "[1]]",
        "{} {}",
        "[}",
        "{]",
        "{\"a\":1,}",
        "\u{feff}{}",
        "+1",
        ".5",
    ] {
        assert!(map().to_editor(bad.as_bytes()).is_err(), "accepted {bad:?}");
        assert!(map().to_remote(bad.as_bytes()).is_err(), "accepted {bad:?}");
    }
    let e = map().to_editor(b"[1,]").unwrap_err();
    assert_eq!(e.offset, 3);
    assert!(e.to_string().contains("byte 3"));
}

#[test]
fn valid_edge_cases_accepted() {
    for ok in [
        "0",
        "-0",
        "1.5e3",
        "\"\"",
        "[]",
        "{}",
        "[[],{}]",
        "null",
        " true ",
        "{\"\":\"\"}",
    ] {
        assert_eq!(
            map().to_editor(ok.as_bytes()).map(|r| r.count),
            Ok(0),
            "{ok:?}"
        );
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = vec![b'['; 100_000];
    let e = map().to_editor(&deep).unwrap_err();
    assert_eq!(e.reason, "nesting too deep");
    assert_eq!(e.offset, MAX_DEPTH);
    let mut ok = vec![b'['; MAX_DEPTH];
    ok.extend(b"\"file:///a\"");
    ok.extend(vec![b']'; MAX_DEPTH]);
    assert_eq!(map().to_editor(&ok).map(|r| r.count), Ok(1));
    let objs = "{\"a\":".repeat(100_000);
    assert!(map().to_remote(objs.as_bytes()).is_err());
}

#[test]
fn single_uri_helpers() {
    let m = map();
    assert_eq!(
        m.uri_to_remote("distant://h/a/b").as_deref(),
        Some("file:///a/b")
    );
    assert_eq!(m.uri_to_remote("distant://h"), None);
    assert_eq!(
        m.uri_to_editor("file:///a").as_deref(),
        Some("distant://host1/a")
    );
    assert_eq!(m.uri_to_editor("file://h/a"), None);
}

// ---------------------------------------------------------------- proptest

/// Strings that are neither editor nor remote URIs (nor could decode to one).
fn plain_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z:/ ]{0,12}",
        Just("profile:".to_owned()),
        Just("see file:///a".to_owned()),
        Just("file://host/x".to_owned()),
    ]
    .prop_filter("not a URI", |s| {
        let l = s.to_ascii_lowercase();
        !l.starts_with("distant:") && !l.starts_with("file:")
    })
}

fn editor_uri() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~%/-]{0,20}".prop_map(|p| format!("distant://host1/{p}"))
}

fn json_value(leaf_string: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        leaf_string.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((leaf_string.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn count_uris(v: &Value) -> usize {
    match v {
        Value::String(s) => usize::from(s.starts_with("distant://")),
        Value::Array(a) => a.iter().map(count_uris).sum(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| usize::from(k.starts_with("distant://")) + count_uris(v))
            .sum(),
        _ => 0,
    }
}

proptest! {
    #[test]
    fn no_uri_strings_means_identical_bytes(v in json_value(plain_string().boxed())) {
        for bytes in [serde_json::to_vec(&v).unwrap(), serde_json::to_vec_pretty(&v).unwrap()] {
            let r = map().to_remote(&bytes).unwrap();
            prop_assert!(r.is_unchanged());
            let r = map().to_editor(&bytes).unwrap();
            prop_assert!(r.is_unchanged());
        }
    }

    #[test]
    fn round_trip_editor_remote_editor(
        v in json_value(prop_oneof![plain_string(), editor_uri()].boxed())
    ) {
        let expected = count_uris(&v);
        for bytes in [serde_json::to_vec(&v).unwrap(), serde_json::to_vec_pretty(&v).unwrap()] {
            let r = map().to_remote(&bytes).unwrap();
            prop_assert_eq!(r.count, expected);
            let remote_bytes = r.to_vec(&bytes);
            // Still valid JSON, with the same shape.
            let parsed: Value = serde_json::from_slice(&remote_bytes).unwrap();
            prop_assert_eq!(count_uris(&parsed), 0);
            let back = map().to_editor(&remote_bytes).unwrap();
            prop_assert_eq!(back.count, expected);
            prop_assert_eq!(back.to_vec(&remote_bytes), bytes);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = map().to_remote(&bytes);
        let _ = map().to_editor(&bytes);
    }

    #[test]
    fn mutated_json_never_panics_and_agrees_with_serde_on_validity(
        v in json_value(prop_oneof![plain_string(), editor_uri()].boxed()),
        idx in any::<prop::sample::Index>(),
        byte in prop_oneof![Just(b'"'), Just(b'\\'), Just(b'{'), Just(b']'), Just(b','), Just(b':'), any::<u8>()],
    ) {
        let mut bytes = serde_json::to_vec(&v).unwrap();
        let i = idx.index(bytes.len());
        if let Some(slot) = bytes.get_mut(i) {
            *slot = byte;
        }
        let ours = map().to_remote(&bytes).is_ok();
        let serde_ok = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
        // serde is stricter (UTF-8, lone surrogates, depth 128); we never
        // accept what serde rejects for *structural* reasons.
        if serde_ok {
            prop_assert!(ours);
        }
    }
}

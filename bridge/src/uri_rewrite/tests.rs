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
fn text_that_is_exactly_a_uri_plus_newline_is_refused_from_the_remote() {
    // An editor would take these for local files (`/x\n/../y` normalises
    // to `/y`): rewriting would change text, so the message is refused.
    for msg in [r#"{"text":"file:///x\n"}"#, r#"{"t3":"file:///a\tb"}"#] {
        assert!(map().to_editor(msg.as_bytes()).is_err(), "{msg}");
        assert_eq!(remote(msg), (msg.to_owned(), 0));
    }
    assert_eq!(
        editor(r#"{"t2":"file:///a b"}"#),
        (r#"{"t2":"distant://host1/a%20b"}"#.to_owned(), 1)
    );
}

#[test]
fn profile_colon_never_becomes_prodistant() {
    let msg = r#"{"a":"profile:","c":"profile://x/y","d":"fileprofile:///a","e":"files://"}"#;
    assert_eq!(editor(msg), (msg.to_owned(), 0));
    assert_eq!(remote(msg), (msg.to_owned(), 0));
    // `file:` and `file://` alone are URIs of `/` to an editor.
    let msg = r#"{"b":"file:","e":"file://"}"#;
    assert_eq!(remote(msg), (msg.to_owned(), 0));
    assert_eq!(
        editor(msg),
        (
            r#"{"b":"distant://host1/","e":"distant://host1/"}"#.to_owned(),
            2
        )
    );
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
    assert_eq!(r.count, 4);
    assert_eq!(
        r.bytes.as_deref(),
        Some(&br#"["distant:///a","distant:///b","distant:///c","distant:///d"]"#[..])
    );
}

/// Every form of `file:` URI an editor would open locally is rewritten
/// (issue 14: these reached the editor unchanged).
#[test]
fn every_local_file_uri_form_from_the_remote_is_rewritten() {
    for (from, to) in [
        ("file:///a/b", "distant://host1/a/b"),
        (
            "file://localhost/home/u/.bashrc",
            "distant://host1/home/u/.bashrc",
        ),
        ("FILE://LocalHost/x", "distant://host1/x"),
        ("file:/home/u/.bashrc", "distant://host1/home/u/.bashrc"),
        ("file:home/u/.bashrc", "distant://host1/home/u/.bashrc"),
        (
            "file:///home/u/has space",
            "distant://host1/home/u/has%20space",
        ),
        ("file:///a%20b", "distant://host1/a%20b"),
        ("file://", "distant://host1/"),
        ("file:", "distant://host1/"),
        ("file://localhost", "distant://host1/"),
        ("file:////server/share", "distant://host1//server/share"),
        ("file:///a?q#f", "distant://host1/a?q#f"),
    ] {
        let msg = format!(r#"{{"changes":{{"{from}":[]}},"uri":"{from}"}}"#);
        let want = format!(r#"{{"changes":{{"{to}":[]}},"uri":"{to}"}}"#);
        assert_eq!(editor(&msg), (want, 2), "{from}");
    }
    // Escaped forms decode to the same URIs.
    let (out, n) = editor(r#"["\u0066ile://localhost/a","file:\/\/\/b c","fil\u0065:/d"]"#);
    assert_eq!(
        (out.as_str(), n),
        (
            r#"["distant://host1/a","distant://host1/b%20c","distant://host1/d"]"#,
            3
        )
    );
}

#[test]
fn file_uris_that_cannot_be_rewritten_refuse_the_message() {
    for bad in [
        r#"{"uri":"file://evil/share/x"}"#,
        r#"{"uri":"file://127.0.0.1/etc/passwd"}"#,
        r#"{"uri":"file:///etc/passwd\n"}"#,
        r#"{"uri":"file:///etc/passwd\u0000"}"#,
        r#"{"uri":"file:/a\tb"}"#,
        r#"{"changes":{"file://h/x":[]}}"#,
    ] {
        assert!(map().to_editor(bad.as_bytes()).is_err(), "passed {bad}");
    }
    // A lone surrogate is decoded as U+FFFD, as a lenient parser would: the
    // string is still a URI and still rewritten.
    let (out, n) = editor(r#"["file:///a\ud800b"]"#);
    assert_eq!((out.as_str(), n), ("[\"distant://host1/a\u{fffd}b\"]", 1));
}

#[test]
fn text_that_starts_with_file_colon_is_left_alone() {
    for text in [
        r#"{"detail":"file: IO"}"#,
        r#"{"detail":"file: str\nmore"}"#,
        r#"{"label":"profile:"}"#,
        r#"{"label":"a file:///x"}"#,
    ] {
        assert_eq!(editor(text), (text.to_owned(), 0), "{text}");
    }
}

#[test]
fn too_deep_a_remote_message_is_refused_not_passed_through() {
    let mut deep = vec![b'['; MAX_DEPTH + 1];
    deep.extend_from_slice(br#""file:///home/u/.bashrc""#);
    deep.extend(vec![b']'; MAX_DEPTH + 1]);
    assert!(map().to_editor(&deep).is_err());
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
    let msg = r#"{"a":"line\nnext\t\"q\" \\ \/ \b\f\r \u0041\u00e9\ud83d\ude00","fil\u0065":"f\u0069les:\/\/x"}"#;
    assert_eq!(editor(msg), (msg.to_owned(), 0));
    assert_eq!(remote(msg), (msg.to_owned(), 0));
}

#[test]
fn escaped_whitespace_or_lone_surrogate_from_the_editor_is_not_a_uri() {
    let msg = r#"["distant:\/\/h\/a\nb","distant://h/a\u0020b","distant://h/\ud800x"]"#;
    assert_eq!(remote(msg), (msg.to_owned(), 0));
    // From the remote side the exact content decides.
    assert!(map().to_editor(br#"["file:\/\/\/a\nb"]"#).is_err());
    assert_eq!(
        editor(r#"["file:///a\u0020b","file:///\udc00"]"#),
        (
            "[\"distant://host1/a%20b\",\"distant://host1/\u{fffd}\"]".to_owned(),
            2
        )
    );
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
    assert_eq!(
        m.uri_to_editor("file://localhost/a b").as_deref(),
        Some("distant://host1/a%20b")
    );
    assert_eq!(m.uri_to_editor("file: IO"), None);
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

// ------------------------------------------- the remote → editor invariant

/// Would an editor take `s` for a local `file:` URI? (Independent statement
/// of the rule in the module docs: starts with `file:`, and either `/`
/// follows or the rest has no whitespace/control character.)
fn is_local_file_uri(s: &str) -> bool {
    let Some(head) = s.get(..5) else {
        return false;
    };
    if !head.eq_ignore_ascii_case("file:") {
        return false;
    }
    let rest = &s[5..];
    rest.starts_with('/') || !rest.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Hostile strings: every `file:` form, any case, spaces, control
/// characters, hosts, plus ordinary text.
fn hostile_string() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just("file:"),
        Just("FILE:"),
        Just("FiLe:"),
        Just("fil"),
        Just(" file:"),
    ];
    let middle = prop_oneof![
        Just(""),
        Just("/"),
        Just("//"),
        Just("///"),
        Just("////"),
        Just("//localhost/"),
        Just("//LOCALHOST"),
        Just("//evil/"),
        Just("//localhost:22/"),
    ];
    let path = "[a-z./ %?#\t\n\u{0}\u{7f}é]{0,12}";
    prop_oneof![
        (prefix, middle, path).prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        plain_string(),
    ]
}

/// JSON with every character of every string written as a `\uXXXX` escape.
fn to_json_all_escaped(v: &Value) -> String {
    fn string(s: &str, out: &mut String) {
        out.push('"');
        for unit in s.encode_utf16() {
            out.push_str(&format!("\\u{unit:04x}"));
        }
        out.push('"');
    }
    let mut out = String::new();
    match v {
        Value::String(s) => string(s, &mut out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&to_json_all_escaped(x));
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(k, &mut out);
                out.push(':');
                out.push_str(&to_json_all_escaped(x));
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
    out
}

/// No string in `v` (keys included) is a local `file:` URI.
fn no_local_file_uri(v: &Value) -> Result<(), TestCaseError> {
    match v {
        Value::String(s) => {
            prop_assert!(!is_local_file_uri(s), "local file URI left: {s:?}");
        }
        Value::Array(a) => a.iter().try_for_each(no_local_file_uri)?,
        Value::Object(o) => {
            for (k, x) in o {
                prop_assert!(!is_local_file_uri(k), "local file URI key left: {k:?}");
                no_local_file_uri(x)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks `out` against `input` (same shape): no local `file:` URI left,
/// every one of them became an editor URI, every other string unchanged.
fn check_shape(input: &Value, out: &Value) -> Result<(), TestCaseError> {
    let string = |a: &str, b: &str| -> Result<(), TestCaseError> {
        prop_assert!(!is_local_file_uri(b), "local file URI left: {b:?}");
        if is_local_file_uri(a) {
            prop_assert!(b.starts_with("distant://host1/"), "{a:?} became {b:?}");
        } else {
            prop_assert_eq!(a, b);
        }
        Ok(())
    };
    match (input, out) {
        (Value::String(a), Value::String(b)) => string(a, b),
        (Value::Array(a), Value::Array(b)) => {
            prop_assert_eq!(a.len(), b.len());
            a.iter().zip(b).try_for_each(|(x, y)| check_shape(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            // Two URI keys may become the same editor URI (a JSON parser
            // then keeps one), so keys are matched by name.
            prop_assert!(b.len() <= a.len());
            for (bk, y) in b {
                prop_assert!(!is_local_file_uri(bk), "local file URI key left: {bk:?}");
                no_local_file_uri(y)?;
            }
            for (k, x) in a {
                if is_local_file_uri(k) {
                    prop_assert!(b.keys().any(|bk| bk.starts_with("distant://host1/")));
                } else {
                    let y = b
                        .get(k)
                        .ok_or_else(|| TestCaseError::fail(format!("key {k:?} lost")))?;
                    check_shape(x, y)?;
                }
            }
            Ok(())
        }
        // Floats need not round-trip through serde_json exactly.
        (Value::Number(_), Value::Number(_)) => Ok(()),
        (a, b) => {
            prop_assert_eq!(a, b);
            Ok(())
        }
    }
}

proptest! {
    /// Issue 14, item 1: whatever the remote sends, nothing reaches the
    /// editor carrying a local `file:` URI: each one is rewritten or the
    /// message is refused; everything else is unchanged.
    #[test]
    fn nothing_from_the_remote_reaches_the_editor_as_a_local_file_uri(
        v in json_value(hostile_string().boxed()),
        depth in 0usize..700,
    ) {
        let plain = serde_json::to_vec(&v).unwrap();
        let escaped = to_json_all_escaped(&v).into_bytes();
        for bytes in [plain, escaped] {
            match map().to_editor(&bytes) {
                Err(_) => {}
                Ok(r) => {
                    let out = r.to_vec(&bytes);
                    let parsed: Value = serde_json::from_slice(&out).unwrap();
                    check_shape(&v, &parsed)?;
                }
            }
            // Wrapped deeper than any depth limit: refused or rewritten in
            // the same way, never passed through.
            let mut deep = vec![b'['; depth];
            deep.extend_from_slice(&bytes);
            deep.extend(vec![b']'; depth]);
            if let Ok(r) = map().to_editor(&deep) {
                let out = r.to_vec(&deep);
                let inner = out
                    .get(depth..out.len() - depth)
                    .ok_or_else(|| TestCaseError::fail("shape changed"))?;
                let parsed: Value = serde_json::from_slice(inner).unwrap();
                check_shape(&v, &parsed)?;
            }
        }
    }
}

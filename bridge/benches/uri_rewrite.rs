//! Benchmarks for the byte-preserving URI rewriter on realistic LSP bodies:
//! a 1 MiB `textDocument/didOpen` (editor → remote) and a 100 KiB
//! `textDocument/publishDiagnostics` (remote → editor).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use distant_bridge::uri_rewrite::UriMap;
use serde_json::json;

/// Rust-looking source text of about `size` bytes, with quotes, escapes,
/// tabs, non-ASCII and URI-looking substrings that must stay untouched.
fn source_text(size: usize) -> String {
    let lines = [
        "use std::collections::HashMap;",
        "/// Loads the profile: see file:///etc/app/profile.toml for defaults.",
        "pub fn load(path: &str) -> Result<Config, Error> {",
        "\tlet raw = std::fs::read_to_string(path)?; // \"quoted\" \\ backslash",
        "    let url = \"distant://host/home/me/x.rs\"; // naïve café ✓",
        "    for (k, v) in map.iter() { println!(\"{k}={v}\"); }",
        "}",
        "",
    ];
    let mut s = String::with_capacity(size + 128);
    let mut i = 0;
    while s.len() < size {
        s.push_str(lines[i % lines.len()]);
        s.push('\n');
        i += 1;
    }
    s
}

fn did_open(size: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "jsonrpc": "2.0",
        "method": "textDocument/didOpen",
        "params": {
            "textDocument": {
                "uri": "distant://conn1/home/me/project/src/lib.rs",
                "languageId": "rust",
                "version": 1,
                "text": source_text(size),
            }
        }
    }))
    .unwrap()
}

fn publish_diagnostics(size: usize) -> Vec<u8> {
    let mut diags = Vec::new();
    let mut n = 0;
    loop {
        diags.push(json!({
            "range": {"start": {"line": n, "character": 4}, "end": {"line": n, "character": 17}},
            "severity": 1,
            "code": "E0308",
            "codeDescription": {"href": "https://doc.rust-lang.org/error_codes/E0308.html"},
            "source": "rustc",
            "message": format!("mismatched types: expected `u32`, found `&str` (see file:///home/me/project/src/m{n}.rs)"),
            "relatedInformation": [{
                "location": {
                    "uri": format!("file:///home/me/project/src/m{n}.rs"),
                    "range": {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 9}}
                },
                "message": "expected due to this"
            }]
        }));
        n += 1;
        let body = serde_json::to_vec(&json!({
            "jsonrpc": "2.0",
            "method": "textDocument/publishDiagnostics",
            "params": {"uri": "file:///home/me/project/src/lib.rs", "version": 3, "diagnostics": diags}
        }))
        .unwrap();
        if body.len() >= size {
            return body;
        }
    }
}

fn bench(c: &mut Criterion) {
    let map = UriMap::new("distant", "conn1");

    let open = did_open(1 << 20);
    assert_eq!(map.to_remote(&open).unwrap().count, 1);
    let mut g = c.benchmark_group("uri_rewrite");
    g.throughput(Throughput::Bytes(open.len() as u64));
    g.bench_function("didOpen_1MiB_to_remote", |b| {
        b.iter(|| map.to_remote(black_box(&open)).unwrap())
    });
    g.bench_function("didOpen_1MiB_to_editor_unchanged", |b| {
        b.iter(|| map.to_editor(black_box(&open)).unwrap())
    });

    let diags = publish_diagnostics(100 << 10);
    assert!(map.to_editor(&diags).unwrap().count > 100);
    g.throughput(Throughput::Bytes(diags.len() as u64));
    g.bench_function("publishDiagnostics_100KiB_to_editor", |b| {
        b.iter(|| map.to_editor(black_box(&diags)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Criterion results (`target/criterion/**/new/{benchmark,estimates}.json`)
//! as table rows, plus codec-vs-raw-AEAD ratios.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

fn walk(dir: &Path, out: &mut Vec<(String, f64, Option<u64>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let read = |f: &str| -> Option<Value> {
                serde_json::from_str(&std::fs::read_to_string(path.join(f)).ok()?).ok()
            };
            if let (Some(b), Some(est)) = (read("benchmark.json"), read("estimates.json")) {
                let id = b["full_id"].as_str().unwrap_or("?").to_string();
                let ns = est["mean"]["point_estimate"].as_f64().unwrap_or(0.0);
                let bytes = b["throughput"]["Bytes"].as_u64();
                out.push((id, ns, bytes));
            }
        } else if path
            .file_name()
            .is_some_and(|n| n != "report" && n != "base" && n != "change")
        {
            walk(&path, out);
        }
    }
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

pub fn collect(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    walk(dir, &mut found);
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rows = Vec::new();
    let mut by_id = BTreeMap::new();
    for (id, ns, bytes) in &found {
        let mut v = time(*ns);
        if let Some(b) = bytes {
            v += &format!(" ({:.0} MB/s)", *b as f64 / (ns / 1e9) / 1e6);
        }
        by_id.insert(id.clone(), *ns);
        rows.push((format!("`{id}`"), v));
    }
    for size in ["64B", "16KiB", "64KiB", "1MiB"] {
        for (a, b) in [
            ("sealer/seal", "raw/encrypt"),
            ("sealer/roundtrip", "raw/roundtrip"),
        ] {
            let (Some(x), Some(y)) = (
                by_id.get(&format!("codec/{size}/{a}")),
                by_id.get(&format!("codec/{size}/{b}")),
            ) else {
                continue;
            };
            rows.push((
                format!("**codec {size}: `{a}` throughput as a share of `{b}`**"),
                format!("{:.0}% (target ≥ 80% at 64 KiB)", y / x * 100.0),
            ));
        }
    }
    rows
}

//! The results model and `RESULTS.md`.

use std::fmt::Write;

use crate::Config;

/// One figure of one peer.
#[derive(Clone, Debug)]
pub enum V {
    N(f64),
    T(String),
}

impl V {
    fn num(&self) -> Option<f64> {
        match self {
            V::N(x) => Some(*x),
            V::T(_) => None,
        }
    }
    fn show(&self) -> String {
        match self {
            V::N(x) => fmt_num(*x),
            V::T(t) => t.clone(),
        }
    }
}

pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{:.0}", x)
    } else if a >= 10.0 {
        format!("{:.1}", x)
    } else if a >= 1.0 {
        format!("{:.2}", x)
    } else {
        format!("{:.3}", x)
    }
}

#[derive(Clone, Debug)]
pub struct Row {
    pub what: String,
    pub unit: &'static str,
    pub higher_better: bool,
    pub target: String,
    /// ours, distant 0.20, OpenSSH.
    pub v: [V; 3],
    pub note: String,
}

#[derive(Default)]
pub struct Results {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub micro: Vec<(String, String)>,
    pub machine: Vec<(String, String)>,
}

fn ratio(row: &Row, peer: usize) -> String {
    match (row.v[0].num(), row.v[peer].num()) {
        (Some(o), Some(p)) if o > 0.0 && p > 0.0 => {
            let r = if row.higher_better { o / p } else { p / o };
            format!("{}×", fmt_num(r))
        }
        (Some(_), None) if matches!(&row.v[peer], V::T(t) if t.starts_with("DNF")) => {
            "∞ (peer DNF)".into()
        }
        _ => "–".into(),
    }
}

pub fn render(config: &Config, r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Benchmarks: distant next to OpenSSH and distant 0.20\n"
    );
    let _ = writeln!(
        s,
        "Written by `bench/run` (driver: `bench/driver`). Everything on loopback, \
         one run, peers alternating within each repetition ({} repetitions{}). \
         Figures are medians. **Ratio = how many times better ours is** \
         (> 1 = ours better; for times it is peer ÷ ours, for rates ours ÷ peer).\n",
        config.reps,
        if config.quick { ", quick mode" } else { "" }
    );
    let _ = writeln!(s, "## Machine\n");
    for (k, v) in &r.machine {
        let _ = writeln!(s, "- {k}: {v}");
    }
    let _ = writeln!(s, "\n## Side by side\n");
    let _ = writeln!(
        s,
        "| measurement | unit | ours | distant 0.20 | OpenSSH | ratio vs distant 0.20 | ratio vs OpenSSH | target | note |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|---|");
    for row in &r.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.what,
            row.unit,
            row.v[0].show(),
            row.v[1].show(),
            row.v[2].show(),
            ratio(row, 1),
            ratio(row, 2),
            row.target,
            row.note
        );
    }
    if !r.micro.is_empty() {
        let _ = writeln!(
            s,
            "\n## Criterion micro-benchmarks\n\n(`--warm-up-time 1 --measurement-time 3`; mean)\n"
        );
        let _ = writeln!(s, "| benchmark | result |\n|---|---|");
        for (k, v) in &r.micro {
            let _ = writeln!(s, "| {k} | {v} |");
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes from this run\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    let analysis = std::path::Path::new("bench/ANALYSIS.md");
    if let Ok(text) = std::fs::read_to_string(analysis) {
        let _ = writeln!(s, "\n{text}");
    }
    s
}

//! `distant-bench`: measures distant next to OpenSSH and distant 0.20 on
//! loopback and writes `bench/RESULTS.md`. Run it through `bench/run`, which
//! builds everything, starts sshd and passes the paths below.
//!
//! Every measurement alternates the peers within each repetition (the order
//! rotates per repetition) so machine drift hits all of them alike. Nothing
//! here asserts a speed; it reports.

mod measure;
mod micro;
mod proc;
mod report;

use std::path::PathBuf;

/// Where everything is; filled from `--name value` arguments.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: PathBuf,
    pub bridge: PathBuf,
    pub distant: Option<PathBuf>,
    pub ssh_port: Option<u16>,
    pub ssh_user: String,
    pub ssh_key: PathBuf,
    pub sshd_pidfile: PathBuf,
    pub work: PathBuf,
    pub data: PathBuf,
    pub out: PathBuf,
    pub criterion: Option<PathBuf>,
    pub reps: usize,
    pub big: bool,
    pub commit: String,
    pub quick: bool,
    /// `--only forward`: measure only that group of rows.
    pub only: Option<String>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut get = std::collections::HashMap::new();
    while let Some(name) = args.next() {
        let Some(name) = name.strip_prefix("--").map(str::to_owned) else {
            eprintln!("distant-bench: unexpected argument {name}");
            std::process::exit(2);
        };
        if name == "quick" || name == "no-big" {
            get.insert(name, String::new());
            continue;
        }
        let value = args.next().unwrap_or_default();
        get.insert(name, value);
    }
    let path = |k: &str, d: &str| PathBuf::from(get.get(k).cloned().unwrap_or_else(|| d.into()));
    let work = path("work", "/tmp/distant-bench/work");
    let quick = get.contains_key("quick");
    let config = Config {
        server: path("server", "target/release/distant-server"),
        bridge: path("bridge", "target/release/distant-bridge"),
        distant: get
            .get("distant")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        ssh_port: get.get("ssh-port").and_then(|p| p.parse().ok()),
        ssh_user: get
            .get("ssh-user")
            .cloned()
            .unwrap_or_else(|| "distant-bench".into()),
        ssh_key: path("ssh-key", "/tmp/distant-bench/work/id_ed25519"),
        sshd_pidfile: path("sshd-pidfile", "/tmp/distant-bench/work/sshd.pid"),
        data: path("data", "/tmp/distant-bench/data"),
        out: path("out", "bench/RESULTS.md"),
        criterion: get.get("criterion").map(PathBuf::from),
        reps: get
            .get("reps")
            .and_then(|r| r.parse().ok())
            .unwrap_or(if quick { 1 } else { 3 }),
        big: !get.contains_key("no-big"),
        commit: get.get("commit").cloned().unwrap_or_default(),
        work,
        quick,
        only: get.get("only").cloned(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let results = runtime.block_on(measure::run(&config));
    let text = report::render(&config, &results);
    std::fs::write(&config.out, &text).expect("write the results");
    println!("{text}");
}

//! Link faults: the real `distant-bridge stdio --no-manager` talks to a real
//! `distant-server listen` through a fault-injecting proxy that, on a
//! seeded random schedule, cuts the link (at once or after a random number
//! of bytes, mid-frame), half-closes one direction, black-holes it for
//! seconds, and refuses new connections for a while. Meanwhile one editor
//! session runs, concurrently:
//!
//! - a process that writes 100 MiB of random bytes to stdout (and the
//!   sha256 of what it wrote to stderr),
//! - 500 small writes (to 500 files) and 500 appends (to one file),
//! - a 200 MiB upload (a `fs/write` then 4 MiB `fs/append`s, renamed into
//!   place) and its download (4 MiB ranged `fs/read`s),
//! - an LSP-framed session with an echoing "language server".
//!
//! Every byte is verified by sha256, appends prove nothing ran twice,
//! every request is answered (each within 30 s), and both processes' peak
//! memory stays bounded. `RELIABILITY_SCALE` scales the volumes,
//! `RELIABILITY_SEED` the schedule.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distant_e2e::*;
use distant_testkit::Direction;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
/// The size of one upload/download piece.
const PIECE: u64 = 4 * MIB;

#[derive(Default, Debug)]
struct Faults {
    cuts: u32,
    cuts_mid_stream: u32,
    half_closes: u32,
    blackholes: u32,
    blackhole_ms: u64,
    refusals: u32,
}

impl Faults {
    fn total(&self) -> u32 {
        self.cuts + self.cuts_mid_stream + self.half_closes + self.blackholes + self.refusals
    }
}

/// Injects faults until `stop` is set.
async fn inject(proxy: FaultProxy, stop: Arc<AtomicBool>, seed: u64) -> Faults {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut f = Faults::default();
    // Let the session get going first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let which = rng.gen_range(0..5);
        eprintln!("[{:7.3}] fault {which}", t0.elapsed().as_secs_f64());
        match which {
            0 => {
                proxy.cut();
                f.cuts += 1;
            }
            1 => {
                proxy.cut_after(rng.gen_range(0..512 * 1024));
                f.cuts_mid_stream += 1;
            }
            2 => {
                let dir = if rng.gen_bool(0.5) {
                    Direction::ToTarget
                } else {
                    Direction::ToClient
                };
                proxy.half_close(dir);
                f.half_closes += 1;
            }
            3 => {
                // Up to 6 s: past the 4 s dead-peer detection sometimes.
                let ms = rng.gen_range(1000..5000);
                proxy.set_blackhole(true);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                proxy.set_blackhole(false);
                f.blackholes += 1;
                f.blackhole_ms += ms;
            }
            _ => {
                let ms = rng.gen_range(500..2500);
                proxy.set_refuse(true);
                proxy.cut();
                tokio::time::sleep(Duration::from_millis(ms)).await;
                proxy.set_refuse(false);
                f.refusals += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(400..2000))).await;
    }
    proxy.disarm_cut();
    proxy.set_blackhole(false);
    proxy.set_refuse(false);
    f
}

/// The process stream: `n` random bytes on stdout, their sha256 on stderr.
async fn big_output(ed: Arc<Editor>, conn: String, n: u64) -> u64 {
    let script = format!(
        "d=$(mktemp -d) && mkfifo \"$d/p\" && (sha256sum < \"$d/p\" >&2 &) && \
         head -c {n} /dev/urandom | tee \"$d/p\"; wait; sleep 0.2; rm -r \"$d\""
    );
    let r = ed
        .call(
            "proc/spawn",
            json!({"connection": conn, "cmd": ["sh", "-c", script], "encoding": "base64"}),
        )
        .await;
    let proc = r["proc"].as_str().unwrap().to_owned();
    let exit = ed.wait_exit(&proc, Duration::from_secs(600)).await;
    assert_eq!(exit["code"], 0, "{exit}");
    let sink = ed.take_proc(&proc);
    let stderr = String::from_utf8_lossy(&sink.stderr).into_owned();
    let theirs = stderr.split_whitespace().next().unwrap_or_default();
    let ours = hex::encode(sink.stdout_sha.finalize());
    assert_eq!(sink.stdout_len, n, "stdout bytes lost or duplicated");
    assert_eq!(ours, theirs, "stdout differs from what the process wrote");
    n
}

/// 500 writes to separate files and 500 appends to one, 8 in flight.
async fn small_ops(ed: Arc<Editor>, conn: String, dir: String, n: usize) -> usize {
    let mut set = tokio::task::JoinSet::new();
    let log = format!("{dir}/appends.log");
    for i in 0..n {
        while set.len() >= 8 {
            set.join_next().await.unwrap().unwrap();
        }
        let (ed, conn, dir, log) = (ed.clone(), conn.clone(), dir.clone(), log.clone());
        set.spawn(async move {
            ed.call(
                "fs/write",
                json!({"connection": conn, "path": format!("{dir}/w{i:04}"), "data": format!("write {i}\n")}),
            )
            .await;
            ed.call(
                "fs/append",
                json!({"connection": conn, "path": log, "data": format!("append {i:04}\n")}),
            )
            .await;
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    for i in 0..n {
        let got = std::fs::read_to_string(format!("{dir}/w{i:04}")).unwrap();
        assert_eq!(got, format!("write {i}\n"));
    }
    let content = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(lines.len(), n, "an append was lost or applied twice");
    let distinct: BTreeSet<&str> = lines.iter().copied().collect();
    assert_eq!(distinct.len(), n, "an append was applied twice");
    2 * n
}

/// Uploads `size` bytes (write + appends + rename), checks the server's
/// sha256, downloads by ranges and checks again. Returns bytes moved.
async fn upload_download(ed: Arc<Editor>, conn: String, dir: String, size: u64) -> u64 {
    let tmp = format!("{dir}/upload.tmp");
    let path = format!("{dir}/upload.bin");
    let mut sha = Sha256::new();
    let pieces = size.div_ceil(PIECE);
    for i in 0..pieces {
        let len = PIECE.min(size - i * PIECE) as usize;
        let data = det_bytes(seed() ^ (i + 1), len);
        sha.update(&data);
        let method = if i == 0 { "fs/write" } else { "fs/append" };
        ed.call(
            method,
            json!({"connection": conn, "path": tmp, "data": b64(&data), "encoding": "base64"}),
        )
        .await;
    }
    ed.call(
        "fs/rename",
        json!({"connection": conn, "src": tmp, "dst": path, "overwrite": true}),
    )
    .await;
    let want = hex::encode(sha.finalize());
    let meta = ed
        .call(
            "fs/metadata",
            json!({"connection": conn, "path": path, "hash": true}),
        )
        .await;
    assert_eq!(meta["size"], size, "uploaded size");
    assert_eq!(meta["sha256"], Value::from(want.clone()), "uploaded sha256");

    let mut sha = Sha256::new();
    let mut got = 0u64;
    let mut etag = None;
    while got < size {
        let r = ed
            .call(
                "fs/read",
                json!({"connection": conn, "path": path, "offset": got, "length": PIECE, "encoding": "base64"}),
            )
            .await;
        let data = decode_data(&r);
        assert!(!data.is_empty(), "a range came back empty at {got}");
        if let Some(e) = &etag {
            assert_eq!(&r["etag"], e, "the file changed under the download");
        }
        etag = Some(r["etag"].clone());
        sha.update(&data);
        got += data.len() as u64;
    }
    assert_eq!(got, size, "downloaded size");
    assert_eq!(hex::encode(sha.finalize()), want, "downloaded sha256");
    2 * size
}

/// An LSP-framed session with `cat` as the language server: every message
/// comes back exactly once, whole, in order.
async fn lsp_session(ed: Arc<Editor>, conn: String, n: usize) -> usize {
    let r = ed
        .call(
            "proc/spawn",
            json!({"connection": conn, "cmd": ["cat"], "framing": "lsp"}),
        )
        .await;
    let proc = r["proc"].as_str().unwrap().to_owned();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed() ^ 0x15b);
    let mut sent = Vec::new();
    for i in 0..n {
        let pad = "x".repeat(rng.gen_range(0..if i % 50 == 0 { 60_000 } else { 400 }));
        let body = json!({"jsonrpc": "2.0", "id": i, "method": "textDocument/hover", "params": {"pad": pad}}).to_string();
        let framed = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        ed.call(
            "proc/stdin",
            json!({"connection": conn, "proc": proc, "data": framed}),
        )
        .await;
        sent.push(framed.into_bytes());
    }
    ed.call("proc/closeStdin", json!({"connection": conn, "proc": proc}))
        .await;
    let exit = ed.wait_exit(&proc, Duration::from_secs(120)).await;
    assert_eq!(exit["code"], 0, "{exit}");
    let sink = ed.take_proc(&proc);
    assert_eq!(
        sink.stdout_chunks.len(),
        n,
        "LSP messages lost or duplicated"
    );
    for (i, (got, want)) in sink.stdout_chunks.iter().zip(&sent).enumerate() {
        assert!(got == want, "LSP message {i} differs");
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_random_fault_schedule() {
    const T: &str = "link_faults";
    let started = Instant::now();
    let server = Server::start(&[]);
    let proxy = FaultProxy::start(server.addr).await;
    let dir = TempDir::new("faults");
    let mut ed = Editor::no_manager();
    // A request may wait out back-to-back faults: 4 s to notice a silent
    // link, a 10 s handshake deadline on a black-holed redial, backoff.
    ed.wait = Duration::from_secs(120);
    let ed = Arc::new(ed);
    let mem = MemSampler::start(vec![
        ("server".into(), server.pid()),
        ("bridge".into(), ed.pid),
    ]);
    let conn = ed
        .connect(&format!("distant://:{KEY}@{}", proxy.addr))
        .await;

    let out_bytes = scaled(100 * MIB);
    let updown = scaled(200 * MIB);
    let small = scaled(500) as usize;
    let lsp = scaled(200) as usize;

    let stop = Arc::new(AtomicBool::new(false));
    let faults = tokio::spawn(inject(proxy.clone(), stop.clone(), seed()));
    let d = dir.path().display().to_string();
    let work = async {
        tokio::join!(
            big_output(ed.clone(), conn.clone(), out_bytes),
            small_ops(ed.clone(), conn.clone(), d.clone(), small),
            upload_download(ed.clone(), conn.clone(), d.clone(), updown),
            lsp_session(ed.clone(), conn.clone(), lsp),
        )
    };
    let (out, ops, moved, msgs) = tokio::time::timeout(Duration::from_secs(900), work)
        .await
        .expect("the workload did not finish within 15 minutes");
    stop.store(true, Ordering::SeqCst);
    let faults = faults.await.unwrap();

    // The session is still the same one, and still works.
    assert_eq!(
        ed.call("fs/exists", json!({"connection": conn, "path": d}))
            .await,
        Value::Bool(true)
    );
    let states = ed.states();
    let lost = states.iter().filter(|s| *s == "lost").count();
    assert_eq!(lost, 0, "the session was lost: {states:?}");
    let reconnects = states.iter().filter(|s| *s == "reconnecting").count();

    let peaks = mem.peaks();
    let elapsed = started.elapsed();
    figure(
        T,
        format!(
            "seed {:#x}, scale {}: {} faults injected ({faults:?}) in {:.1} s",
            seed(),
            scale(),
            faults.total(),
            elapsed.as_secs_f64()
        ),
    );
    figure(
        T,
        format!(
            "verified: {out} B process stdout, {moved} B upload+download, {ops} small writes/appends, {msgs} LSP messages; {} connections relayed ({} reconnects), {} reconnecting notifications, {} B through the proxy",
            proxy.accepted(),
            proxy.accepted().saturating_sub(1),
            reconnects,
            proxy.forwarded()
        ),
    );
    figure(
        T,
        format!(
            "{} requests answered, none failed; slowest {:.1} s",
            ed.answered.load(Ordering::Relaxed),
            ed.max_latency_us.load(Ordering::Relaxed) as f64 / 1e6
        ),
    );
    for (name, peak, hwm) in &peaks {
        figure(
            T,
            format!(
                "{name}: peak RSS {} MiB (VmHWM {} MiB)",
                peak / 1024,
                hwm / 1024
            ),
        );
    }
    assert!(faults.total() >= 3, "too few faults: {faults:?}");
    assert!(proxy.accepted() >= 2, "no reconnect happened");
    for (name, _, hwm) in &peaks {
        let bound = if name == "server" { 300 } else { 400 };
        assert!(
            *hwm < bound * 1024,
            "{name} used {} MiB (bound {bound} MiB)",
            hwm / 1024
        );
    }
    drop(mem);
    let ed = Arc::into_inner(ed).expect("no other editor handle");
    assert!(ed.close().await.success());
}

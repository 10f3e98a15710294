//! Hostile traffic against a live `distant-server` while a legitimate
//! editor (the real `distant-bridge stdio`) keeps working: thousands of
//! garbage connections, oversize length prefixes, decompression bombs
//! (a real handshake choosing deflate, then a sealed bomb record),
//! slow-loris connections, wrong keys in a loop, and a man-in-the-middle
//! relay that runs its own handshakes with both sides. The legitimate
//! session never fails and stays responsive (latency measured before and
//! during), wrong keys are delayed and capped, the server's memory stays
//! bounded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use distant_e2e::*;
use distant_protocol::auth::{AuthMessage, StaticKey};
use distant_protocol::compress::{Compression, CompressionAlgorithm};
use distant_protocol::crypto::{
    Encryption, KeyExchange, KeySchedule, Opener, Sealer, Side, TranscriptHash,
};
use distant_protocol::driver::client::{self, ClientOptions, DialFuture, Dialer};
use distant_protocol::driver::transport::dial_tcp;
use distant_protocol::frame::{encode_frame, FrameCodec, MAX_FRAME_PREAUTH};
use distant_protocol::handshake::{
    decode_plain, encode_plain, Choice, ClientConfig, ConnectRequest, Offer, PlainMessage,
};
use rand::{Rng, RngCore, SeedableRng};
use serde_bytes::ByteBuf;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;

const T: &str = "hostile";

/// The legitimate editor's loop: write, read back, stat; latency of each
/// round trip until `stop`.
async fn legit_loop(
    ed: Arc<Editor>,
    conn: String,
    dir: String,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut lat = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let path = format!("{dir}/legit{}", i % 16);
        let data = format!("round {i}");
        let t = Instant::now();
        ed.call(
            "fs/write",
            json!({"connection": conn, "path": path, "data": data}),
        )
        .await;
        let r = ed
            .call("fs/read", json!({"connection": conn, "path": path}))
            .await;
        assert_eq!(r["data"], Value::from(data));
        lat.push(t.elapsed());
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lat
}

/// `n` connections that send junk (or nothing) and hang up, `par` at once.
async fn garbage(addr: SocketAddr, n: usize, par: usize, seed: u64) -> usize {
    let done = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for w in 0..par {
        let done = done.clone();
        set.spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ w as u64);
            for i in (w..n).step_by(par) {
                let Ok(Ok(mut s)) =
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
                else {
                    continue;
                };
                let mut junk = vec![0u8; rng.gen_range(0..4096)];
                rng.fill_bytes(&mut junk);
                if i % 4 == 0 {
                    // Looks like our magic, then garbage.
                    junk.splice(0..0, b"\x00\x00\x01\x00DSTN".iter().copied());
                }
                let _ = s.write_all(&junk).await;
                let mut buf = [0u8; 256];
                let _ = tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while set.join_next().await.is_some() {}
    done.load(Ordering::Relaxed) as usize
}

/// Length prefixes far beyond the cap; the server must close without
/// allocating. Returns how many were closed by the server within 2 s.
async fn oversize(addr: SocketAddr, n: usize) -> usize {
    let mut closed = 0;
    for i in 0..n {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            continue;
        };
        // Skip the server's Offer, then announce a huge frame.
        let len: u32 = [u32::MAX, (MAX_FRAME_PREAUTH + 1) as u32, 1 << 30][i % 3];
        let _ = s.write_all(&len.to_be_bytes()).await;
        let _ = s.write_all(&[0xab; 1024]).await;
        if read_until_closed(&mut s, Duration::from_secs(2)).await {
            closed += 1;
        }
    }
    closed
}

/// True when the peer closes (EOF or reset) within `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn read_frame(
    s: &mut TcpStream,
    codec: &mut FrameCodec,
    buf: &mut BytesMut,
) -> Option<BytesMut> {
    loop {
        if let Ok(Some(f)) = codec.decode(buf) {
            return Some(f);
        }
        let mut tmp = [0u8; 8192];
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&tmp[..n]),
            _ => return None,
        }
    }
}

fn frame(body: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    encode_frame(body, &mut out).unwrap();
    out
}

/// The client half of a hand-driven key exchange: the Choice frame to
/// send and the record layer it yields.
fn choose(offer_body: &[u8], compression: Compression) -> (BytesMut, Sealer, Opener) {
    let PlainMessage::Offer(offer) = decode_plain(offer_body).expect("an offer") else {
        panic!("not an offer")
    };
    let mut rng = rand::rngs::OsRng;
    let kx = KeyExchange::generate(&mut rng);
    let mut salt = [0u8; 32];
    rng.fill_bytes(&mut salt);
    let choice = Choice {
        encryption: Encryption::XChaCha20Poly1305,
        compression,
        public_key: ByteBuf::from(kx.public_key()),
        salt: ByteBuf::from(salt.to_vec()),
        connect: ConnectRequest::New,
        software: "mitm".into(),
    };
    let choice_body = encode_plain(&PlainMessage::Choice(choice));
    let z = kx.agree(&offer.public_key).expect("agree");
    let th = TranscriptHash::compute(offer_body, &choice_body);
    let keys = KeySchedule::derive(&z[..], &offer.salt, &salt, th);
    (
        frame(&choice_body),
        keys.sealer(Side::Client, Encryption::XChaCha20Poly1305, compression),
        keys.opener(
            Side::Client,
            Encryption::XChaCha20Poly1305,
            compression.algorithm,
        ),
    )
}

/// A real handshake that chooses deflate, then a sealed record whose
/// content inflates to 16 MiB (a ratio of ~1 000 and 256× the
/// pre-authentication content cap). Returns Some(true) when the server
/// closed the connection within 5 s, None when it dropped the connection
/// before its Offer (over the unauthenticated-connection cap).
async fn bomb(addr: SocketAddr) -> Option<bool> {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return None;
    };
    let mut codec = FrameCodec::new(MAX_FRAME_PREAUTH);
    let mut buf = BytesMut::new();
    let offer = read_frame(&mut s, &mut codec, &mut buf).await?;
    let compression = Compression {
        algorithm: CompressionAlgorithm::Deflate,
        level: 9,
    };
    let (choice, mut sealer, _) = choose(&offer, compression);
    sealer.set_max_content(64 << 20);
    let mut record = BytesMut::new();
    sealer
        .seal_into(&[&vec![0u8; 16 << 20]], &mut record)
        .expect("seal the bomb");
    assert!(
        record.len() < MAX_FRAME_PREAUTH,
        "the bomb fits one pre-auth frame: {}",
        record.len()
    );
    let _ = s.write_all(&choice).await;
    let _ = s.write_all(&record).await;
    Some(read_until_closed(&mut s, Duration::from_secs(5)).await)
}

/// Connections that trickle one byte every 500 ms, held until `stop`.
/// Returns how many the server closed on its own (pre-auth deadline).
async fn slow_loris(addr: SocketAddr, n: usize, stop: Arc<AtomicBool>) -> (usize, usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let stop = stop.clone();
        set.spawn(async move {
            let Ok(mut s) = TcpStream::connect(addr).await else {
                return false;
            };
            // A valid-looking length prefix for a 60 KiB body, then a byte
            // at a time.
            let _ = s.write_all(&(60_000u32).to_be_bytes()).await;
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::SeqCst) {
                if s.write_all(b"x").await.is_err() {
                    return true;
                }
                match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return true,
                    _ => {}
                }
            }
            false
        });
    }
    let mut closed = 0;
    let mut total = 0;
    while let Some(r) = set.join_next().await {
        total += 1;
        if r.unwrap() {
            closed += 1;
        }
    }
    (total, closed)
}

fn wrong_key_options() -> ClientOptions {
    let mut o = ClientOptions::new(ClientConfig {
        static_key: Some(StaticKey::from_hex(WRONG_KEY).unwrap()),
        ..ClientConfig::default()
    });
    o.handshake_timeout = Duration::from_secs(15);
    o
}

fn dialer(addr: SocketAddr) -> Arc<dyn Dialer> {
    let a = addr.to_string();
    Arc::new(move || -> DialFuture {
        let a = a.clone();
        Box::pin(async move { dial_tcp(&a, Duration::from_secs(5)).await })
    })
}

/// Wrong keys one after another: each failure takes the server's delay.
async fn wrong_keys_sequential(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let r = client::connect(wrong_key_options(), dialer(addr)).await;
        assert!(r.is_err(), "a wrong key was accepted");
        times.push(t.elapsed());
    }
    times
}

/// `n` wrong keys at once: each is refused after the delay or dropped at
/// once beyond the unauthenticated-connection cap.
async fn wrong_keys_burst(addr: SocketAddr, n: usize) -> (usize, usize, Duration) {
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(async move {
            let t = Instant::now();
            let r = client::connect(wrong_key_options(), dialer(addr)).await;
            assert!(r.is_err(), "a wrong key was accepted");
            t.elapsed()
        });
    }
    let (mut slow, mut fast) = (0, 0);
    while let Some(r) = set.join_next().await {
        if r.unwrap() >= Duration::from_millis(900) {
            slow += 1;
        } else {
            fast += 1;
        }
    }
    (slow, fast, t.elapsed())
}

/// A man in the middle: accepts the client, runs its own handshake with
/// it (its own Offer) and its own with the real server, and relays every
/// authentication message between the two, re-sealed. Returns what it
/// saw: (messages relayed, whether the server ever sent Success).
async fn mitm(listener: TcpListener, server: SocketAddr) -> (usize, bool) {
    let (mut c, _) = listener.accept().await.unwrap();
    let mut s = TcpStream::connect(server).await.unwrap();
    let (mut cc, mut cb) = (FrameCodec::new(MAX_FRAME_PREAUTH), BytesMut::new());
    let (mut sc, mut sb) = (FrameCodec::new(MAX_FRAME_PREAUTH), BytesMut::new());
    // Server side: a real client handshake.
    let offer = read_frame(&mut s, &mut sc, &mut sb).await.unwrap();
    let (choice, mut s_seal, mut s_open) = choose(&offer, Compression::default());
    s.write_all(&choice).await.unwrap();
    // Client side: our own offer, our own keys.
    let mut rng = rand::rngs::OsRng;
    let kx = KeyExchange::generate(&mut rng);
    let mut salt = [0u8; 32];
    rng.fill_bytes(&mut salt);
    let my_offer = Offer {
        encryption: vec!["xchacha20poly1305".into()],
        compression: vec!["none".into()],
        key_exchange: "p256".into(),
        public_key: ByteBuf::from(kx.public_key()),
        salt: ByteBuf::from(salt.to_vec()),
        software: "distant-server 0.1.0".into(),
    };
    let offer_body = encode_plain(&PlainMessage::Offer(my_offer));
    c.write_all(&frame(&offer_body)).await.unwrap();
    let choice_body = read_frame(&mut c, &mut cc, &mut cb).await.unwrap();
    let PlainMessage::Choice(their) = decode_plain(&choice_body).unwrap() else {
        panic!("not a choice")
    };
    let z = kx.agree(&their.public_key).unwrap();
    let th = TranscriptHash::compute(&offer_body, &choice_body);
    let keys = KeySchedule::derive(&z[..], &salt, &their.salt, th);
    let mut c_seal = keys.sealer(Side::Server, their.encryption, their.compression);
    let mut c_open = keys.opener(Side::Server, their.encryption, their.compression.algorithm);

    let mut relayed = 0;
    let mut success = false;
    loop {
        tokio::select! {
            f = read_frame(&mut s, &mut sc, &mut sb) => {
                let Some(f) = f else { break };
                let Ok(content) = s_open.open(f) else { break };
                if let Ok(AuthMessage::Success { .. }) = AuthMessage::from_slice(&content) {
                    success = true;
                }
                let mut out = BytesMut::new();
                c_seal.seal_into(&[&content], &mut out).unwrap();
                if c.write_all(&out).await.is_err() { break }
                relayed += 1;
            }
            f = read_frame(&mut c, &mut cc, &mut cb) => {
                let Some(f) = f else { break };
                let Ok(content) = c_open.open(f) else { break };
                let mut out = BytesMut::new();
                s_seal.seal_into(&[&content], &mut out).unwrap();
                if s.write_all(&out).await.is_err() { break }
                relayed += 1;
            }
        }
    }
    (relayed, success)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legit_editor_keeps_working_through_hostile_traffic() {
    let started = Instant::now();
    let server = Server::start(&[]);
    let addr = server.addr;
    let dir = TempDir::new("hostile");
    let d = dir.path().display().to_string();
    let ed = Arc::new(Editor::no_manager());
    let mem = MemSampler::start(vec![
        ("server".into(), server.pid()),
        ("bridge".into(), ed.pid),
    ]);
    let conn = ed.connect(&server.url).await;

    // Baseline latency.
    let stop = Arc::new(AtomicBool::new(false));
    let base = tokio::spawn(legit_loop(
        ed.clone(),
        conn.clone(),
        d.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut base = base.await.unwrap();
    let (rss_before, _) = rss_kib(server.pid());

    // The attack, with the editor working throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn(legit_loop(
        ed.clone(),
        conn.clone(),
        d.clone(),
        stop.clone(),
    ));
    let loris_stop = Arc::new(AtomicBool::new(false));
    let loris = tokio::spawn(slow_loris(addr, scaled(40) as usize, loris_stop.clone()));
    let n_garbage = scaled(3000) as usize;
    let (garbage_done, oversize_closed, burst) = tokio::join!(
        garbage(addr, n_garbage, 32, seed()),
        oversize(addr, scaled(150) as usize),
        wrong_keys_burst(addr, scaled(150) as usize),
    );
    // Slow-loris connections are held past the pre-auth deadline (10 s).
    let since = started.elapsed();
    if since < Duration::from_secs(14) {
        tokio::time::sleep(Duration::from_secs(14) - since).await;
    }
    loris_stop.store(true, Ordering::SeqCst);
    let (loris_total, loris_closed) = loris.await.unwrap();
    // Sequential wrong keys, bombs and the MITM once the unauthenticated
    // slots are free again (earlier, many are dropped at the cap before any
    // handshake, which says nothing about the delay of a refusal).
    let seq = wrong_keys_sequential(addr, 5).await;
    let bombs_closed = async {
        let (mut closed, mut capped, mut open) = (0, 0, 0);
        for _ in 0..scaled(30) {
            match bomb(addr).await {
                Some(true) => closed += 1,
                Some(false) => open += 1,
                None => capped += 1,
            }
        }
        (closed, capped, open)
    }
    .await;
    let mitm_result = async {
        // The MITM sits where the editor thinks the server is.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let relay = tokio::spawn(mitm(listener, addr));
        let mitm_ed = Editor::no_manager();
        mitm_ed.call("initialize", json!({})).await;
        let err = mitm_ed
            .fail(
                "connect",
                json!({"destination": format!("distant://:{KEY}@{at}")}),
            )
            .await;
        let relay = tokio::time::timeout(Duration::from_secs(15), relay)
            .await
            .expect("the mitm relay ended")
            .unwrap();
        assert!(mitm_ed.close().await.success());
        (err, relay)
    }
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut during = during.await.unwrap();

    // After the attack: the session is still the same, a new client can
    // still connect.
    assert_eq!(
        ed.call("fs/exists", json!({"connection": conn, "path": d}))
            .await,
        Value::Bool(true)
    );
    let states = ed.states();
    assert!(
        states.is_empty(),
        "the legit connection changed state: {states:?}"
    );
    let other = Editor::no_manager();
    let c2 = other.connect(&server.url).await;
    assert_eq!(
        other
            .call("fs/exists", json!({"connection": c2, "path": "/"}))
            .await,
        Value::Bool(true)
    );
    assert!(other.close().await.success());

    let (mitm_err, (relayed, mitm_success)) = mitm_result;
    let peaks = mem.peaks();
    let server_peak = peaks.iter().find(|p| p.0 == "server").unwrap().2;
    figure(
        T,
        format!(
            "{garbage_done} garbage connections, {oversize_closed} oversize length prefixes closed, {} decompression bombs closed after the bomb record ({} dropped before the handshake at the unauthenticated cap), {loris_closed}/{loris_total} slow-loris connections closed by the server, in {:.1} s",
            bombs_closed.0,
            bombs_closed.1,
            started.elapsed().as_secs_f64()
        ),
    );
    let seq_ms: Vec<u128> = seq.iter().map(|d| d.as_millis()).collect();
    figure(
        T,
        format!(
            "wrong keys: sequential failures took {seq_ms:?} ms; a burst of {} got {} delayed refusals (>= 0.9 s) and {} immediate drops (over the unauthenticated cap) in {:.1} s",
            burst.0 + burst.1,
            burst.0,
            burst.1,
            burst.2.as_secs_f64()
        ),
    );
    figure(
        T,
        format!(
            "MITM relay: {relayed} auth messages relayed, server Success: {mitm_success}; the editor's connect failed with {} ({})",
            mitm_err.kind.as_str(),
            mitm_err.message
        ),
    );
    figure(
        T,
        format!(
            "legit latency (write+read round trip) before: p50 {:.1} ms p99 {:.1} ms over {} rounds; during: p50 {:.1} ms p99 {:.1} ms max {:.1} ms over {} rounds",
            percentile(&mut base, 50.0),
            percentile(&mut base, 99.0),
            base.len(),
            percentile(&mut during, 50.0),
            percentile(&mut during, 99.0),
            percentile(&mut during, 100.0),
            during.len()
        ),
    );
    for (name, peak, hwm) in &peaks {
        figure(
            T,
            format!(
                "{name}: peak RSS {} MiB (VmHWM {} MiB); server RSS before the attack {} MiB",
                peak / 1024,
                hwm / 1024,
                rss_before / 1024
            ),
        );
    }

    assert!(
        garbage_done >= n_garbage * 9 / 10,
        "{garbage_done} garbage connections"
    );
    assert_eq!(
        oversize_closed,
        scaled(150) as usize,
        "oversize prefixes not closed"
    );
    assert_eq!(bombs_closed.2, 0, "a bomb left the connection open");
    assert!(bombs_closed.0 > 0, "no bomb reached the server");
    assert!(
        seq.iter().all(|d| *d >= Duration::from_millis(900)),
        "wrong keys not delayed: {seq_ms:?}"
    );
    assert!(!mitm_success, "the server authenticated the MITM");
    assert_eq!(mitm_err.kind.as_str(), "auth_failed", "{mitm_err:?}");
    assert!(
        server_peak < 300 * 1024,
        "server used {} MiB",
        server_peak / 1024
    );
    assert!(
        percentile(&mut during, 100.0) < 5000.0,
        "the legit editor stalled"
    );
    drop(mem);
    let ed = Arc::into_inner(ed).unwrap();
    assert!(ed.close().await.success());
}

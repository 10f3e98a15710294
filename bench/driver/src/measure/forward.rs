//! Port forwarding next to `ssh -L`: the same service on loopback reached
//! through a distant tunnel (`tunnel/open` in the manager) and through an
//! OpenSSH local forward added to the ssh master (`ssh -O forward -L`).
//! Rows: download throughput and a 64-byte request/response round trip.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{bridge_session, Ours, Samples, Ssh, MIB};
use crate::Config;

const THROUGHPUT: &str = "forwarded port: download throughput";
const RTT: &str = "forwarded port: 64 B request/response round trip";

/// The "remote" service: `D` + u64 → that many bytes; `E` → echo 64-byte
/// messages until EOF.
async fn service() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind service");
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut cmd = [0u8; 1];
                if s.read_exact(&mut cmd).await.is_err() {
                    return;
                }
                if cmd[0] == b'D' {
                    let mut n = [0u8; 8];
                    if s.read_exact(&mut n).await.is_err() {
                        return;
                    }
                    let mut left = u64::from_be_bytes(n);
                    let buf = vec![0x5au8; 256 * 1024];
                    while left > 0 {
                        let k = (left as usize).min(buf.len());
                        if s.write_all(&buf[..k]).await.is_err() {
                            return;
                        }
                        left -= k as u64;
                    }
                } else {
                    let mut m = [0u8; 64];
                    while s.read_exact(&mut m).await.is_ok() {
                        if s.write_all(&m).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

/// MB/s of downloading `bytes` through 127.0.0.1:`port`.
async fn download(port: u16, bytes: u64) -> Option<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let t = Instant::now();
    s.write_all(b"D").await.ok()?;
    s.write_all(&bytes.to_be_bytes()).await.ok()?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    while got < bytes {
        let n = tokio::time::timeout(Duration::from_secs(120), s.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        got += n as u64;
    }
    Some(bytes as f64 / 1e6 / t.elapsed().as_secs_f64())
}

/// Median µs of `n` 64-byte round trips through 127.0.0.1:`port`.
async fn round_trips(port: u16, n: usize) -> Option<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.set_nodelay(true).ok()?;
    s.write_all(b"E").await.ok()?;
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    let mut xs = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let t = Instant::now();
        s.write_all(&msg).await.ok()?;
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back))
            .await
            .ok()?
            .ok()?;
        if i >= 20 {
            xs.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Some(super::median(&xs))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Adds the two rows: ours (peer 0) and `ssh -L` (peer 2).
pub(super) async fn measure(
    cfg: &Config,
    ours: &Ours,
    ssh: Option<&Ssh>,
    s: &mut Samples,
    reps: usize,
) {
    eprintln!("[bench] port forwarding");
    let bytes = if cfg.quick { 64 * MIB } else { 256 * MIB };
    let trips = if cfg.quick { 300 } else { 2000 };
    let label = format!("{THROUGHPUT} ({} MiB)", bytes / MIB);
    s.row(&label, "MB/s", true, "≥ ssh -L",
        "one TCP connection to a service on loopback; ours: `tunnel/open` in the manager; ssh: `ssh -O forward -L` on the master");
    s.row(
        RTT,
        "µs",
        false,
        "≤ ssh -L",
        "median of sequential 64 B echo round trips on one forwarded connection",
    );
    s.text(&label, 1, "n/a");
    s.text(RTT, 1, "n/a");
    let remote = service().await;

    let (client, _notes, _child, conn) = bridge_session(cfg, ours, false).await;
    let ours_port = match client
        .request(
            "tunnel/open",
            json!({"connection": conn, "remotePort": remote, "keep": false}),
        )
        .await
    {
        Ok(r) => r["localPort"].as_u64().map(|p| p as u16),
        Err(e) => {
            s.text(&label, 0, format!("DNF ({e:?})"));
            None
        }
    };
    let ssh_port = ssh.and_then(|h| {
        let port = free_port();
        let o = std::process::Command::new("ssh")
            .arg("-S")
            .arg(&h.ctl)
            .args(["-O", "forward", "-L"])
            .arg(format!("127.0.0.1:{port}:127.0.0.1:{remote}"))
            .arg("x")
            .output()
            .ok()?;
        if o.status.success() {
            Some(port)
        } else {
            eprintln!(
                "ssh -O forward failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
    });
    for rep in 0..reps {
        for k in 0..2 {
            let (peer, port) = if (rep + k) % 2 == 0 {
                (0, ours_port)
            } else {
                (2, ssh_port)
            };
            let Some(port) = port else { continue };
            match download(port, bytes).await {
                Some(x) => s.add(&label, peer, x),
                None => s.text(&label, peer, "DNF"),
            }
            match round_trips(port, trips).await {
                Some(x) => s.add(RTT, peer, x),
                None => s.text(RTT, peer, "DNF"),
            }
        }
    }
    if let (Some(h), Some(port)) = (ssh, ssh_port) {
        let _ = std::process::Command::new("ssh")
            .arg("-S")
            .arg(&h.ctl)
            .args(["-O", "cancel", "-L"])
            .arg(format!("127.0.0.1:{port}:127.0.0.1:{remote}"))
            .arg("x")
            .output();
    }
    drop(client);
}

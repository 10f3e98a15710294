//! Detecting the TCP ports a session's processes listen on (`DetectPorts`),
//! so an editor can offer to forward a dev server the moment it starts.
//!
//! Owns [`PortDetector`]. Cost is bounded: while the session has no live
//! process nothing is read; otherwise each tick reads `/proc/net/tcp` and
//! `/proc/net/tcp6` (one line per socket) and only when a LISTEN socket
//! appears that was not there before does it walk `/proc` to find which
//! process holds it (the parent links from each `/proc/PID/stat`, then the
//! `/proc/PID/fd` links of the session's processes and their descendants).
//! Linux only; elsewhere the stream opens and reports nothing.

// Errors are the protocol's `Reply`, built once per request: boxing buys nothing.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use distant_protocol::msg::{ErrorKind, ListeningPort, Reply};

use crate::proc::LivePids;
use crate::reply::ReplySink;

/// Tick when `DetectPorts.interval_ms` is not given.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest tick honoured.
const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// Largest number of processes walked for one lookup (a fork bomb must not
/// make detection expensive).
const MAX_PROCESSES: usize = 65_536;

/// One session's port detection (at most one stream).
#[derive(Default)]
pub struct PortDetector {
    running: Arc<AtomicBool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A LISTEN socket from `/proc/net/tcp{,6}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Listener {
    pub inode: u64,
    pub addr: String,
    pub port: u16,
}

impl PortDetector {
    /// Starts the stream on `sink` (released; the task sends the opener).
    pub fn start(
        &self,
        interval_ms: Option<u32>,
        pids: LivePids,
        sink: ReplySink,
    ) -> Result<(), Reply> {
        if self.running.swap(true, Ordering::SeqCst) {
            return Err(Reply::error(
                ErrorKind::AlreadyExists,
                "this session already detects ports (one DetectPorts stream per session)",
            ));
        }
        let interval = interval_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(DEFAULT_INTERVAL)
            .max(MIN_INTERVAL);
        let running = self.running.clone();
        let task = tokio::spawn(async move {
            run(interval, pids, sink).await;
            running.store(false, Ordering::SeqCst);
        });
        *crate::sync::lock(&self.task) = Some(task);
        Ok(())
    }

    /// The session ended: stop looking.
    pub fn shutdown(&self) {
        if let Some(task) = crate::sync::lock(&self.task).take() {
            task.abort();
        }
    }
}

async fn run(interval: Duration, pids: LivePids, sink: ReplySink) {
    if !sink.send(Reply::DetectingPorts).await {
        return;
    }
    // Listeners seen so far (reported or not ours): only new ones cost a walk.
    let mut seen: HashSet<u64> = listeners().into_iter().map(|l| l.inode).collect();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if sink.is_closed() {
            return;
        }
        let roots = pids.get();
        if roots.is_empty() {
            continue;
        }
        let Ok(now) = tokio::task::spawn_blocking(listeners).await else {
            continue;
        };
        let fresh: Vec<Listener> = now
            .iter()
            .filter(|l| !seen.contains(&l.inode))
            .cloned()
            .collect();
        seen = now.iter().map(|l| l.inode).collect();
        if fresh.is_empty() {
            continue;
        }
        let ports = tokio::task::spawn_blocking(move || owned_by(&roots, &fresh))
            .await
            .unwrap_or_default();
        if ports.is_empty() {
            continue;
        }
        tracing::debug!(?ports, "processes of the session listen on new ports");
        if !sink.send(Reply::PortsListening { ports }).await {
            return;
        }
    }
}

/// Every LISTEN socket of this network namespace.
pub fn listeners() -> Vec<Listener> {
    let mut out = Vec::new();
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(text) = std::fs::read_to_string(table) {
            out.extend(parse_table(&text, v6));
        }
    }
    out
}

/// Parses `/proc/net/tcp` (or `tcp6`) text: the LISTEN (`0A`) rows.
pub fn parse_table(text: &str, v6: bool) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) != Some(&"0A") {
                return None;
            }
            let (addr, port) = f.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let inode = f.get(9)?.parse::<u64>().ok().filter(|i| *i != 0)?;
            Some(Listener {
                inode,
                addr: decode_addr(addr, v6)?,
                port,
            })
        })
        .collect()
}

/// `0100007F` → `127.0.0.1`; 32 hex digits → an IPv6 address. The kernel
/// prints each 32-bit word in host byte order.
fn decode_addr(hex: &str, v6: bool) -> Option<String> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    if v6 && bytes.len() == 16 {
        let a: [u8; 16] = bytes.try_into().ok()?;
        let ip = std::net::Ipv6Addr::from(a);
        Some(match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => ip.to_string(),
        })
    } else if !v6 && bytes.len() == 4 {
        let a: [u8; 4] = bytes.try_into().ok()?;
        Some(std::net::Ipv4Addr::from(a).to_string())
    } else {
        None
    }
}

/// Which of `fresh` belong to `roots` or their descendants.
pub fn owned_by(roots: &[u32], fresh: &[Listener]) -> Vec<ListeningPort> {
    let by_inode: HashMap<u64, &Listener> = fresh.iter().map(|l| (l.inode, l)).collect();
    let mut out = Vec::new();
    let mut reported = HashSet::new();
    for pid in descendants(roots) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            if let Some(l) = by_inode.get(&inode) {
                // A socket inherited by several processes is reported once.
                if reported.insert(inode) {
                    out.push(ListeningPort {
                        port: l.port,
                        addr: l.addr.clone(),
                        pid,
                        command: command_of(pid),
                    });
                }
            }
        }
    }
    out.sort_by_key(|p| p.port);
    out
}

/// `roots` and every process descending from them.
fn descendants(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten().take(MAX_PROCESSES) {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = parent_of(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<u32> = roots.to_vec();
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        out.push(pid);
        if let Some(c) = children.get(&pid) {
            stack.extend(c);
        }
    }
    out
}

/// The parent pid from `/proc/PID/stat` (after the `(comm)` field, which
/// may itself hold spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn command_of(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_rows_are_parsed_and_others_skipped() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1F41 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 4243 1 0000000000000000 100 0 0 10 0\n\
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0000000000000000 100 0 0 10 0\n";
        let l = parse_table(v4, false);
        assert_eq!(
            l,
            [
                Listener {
                    inode: 4242,
                    addr: "127.0.0.1".into(),
                    port: 8000
                },
                Listener {
                    inode: 17,
                    addr: "0.0.0.0".into(),
                    port: 22
                },
            ]
        );
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000001000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 99 1 0000000000000000 100 0 0 10 0\n\
   1: 0000000000000000FFFF00000100007F:1539 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 100 1 0000000000000000 100 0 0 10 0\n";
        let l = parse_table(v6, true);
        assert_eq!(l[0].addr, "::1");
        assert_eq!(l[0].port, 5432);
        assert_eq!(l[1].addr, "127.0.0.1");
        assert!(parse_table("garbage\nmore garbage 0A\n", false).is_empty());
    }

    #[test]
    fn our_own_listener_is_found_as_ours() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mine: Vec<Listener> = listeners().into_iter().filter(|x| x.port == port).collect();
        assert_eq!(mine.len(), 1, "{mine:?}");
        let found = owned_by(&[std::process::id()], &mine);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].port, port);
        assert_eq!(found[0].pid, std::process::id());
        // A root that does not exist owns nothing.
        assert!(owned_by(&[u32::MAX], &mine).is_empty());
    }
}

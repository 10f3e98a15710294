//! Running a command with a deadline and reading what it cost: wall time,
//! bytes on stdout, peak RSS (`wait4`'s `ru_maxrss`); and /proc probes for
//! long-lived processes.

use std::fs::File;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one command run cost.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub secs: f64,
    pub ok: bool,
    pub timed_out: bool,
    pub bytes: u64,
    pub maxrss_kib: u64,
    pub stderr: String,
}

/// Runs `cmd` (stdin from `stdin` or /dev/null; stdout counted when
/// `count`, else /dev/null), killing it after `timeout`.
pub fn run(mut cmd: Command, stdin: Option<File>, count: bool, timeout: Duration) -> Outcome {
    cmd.stdin(stdin.map(Stdio::from).unwrap_or_else(Stdio::null));
    cmd.stdout(if count { Stdio::piped() } else { Stdio::null() });
    cmd.stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                stderr: format!("cannot start {:?}: {e}", cmd.get_program()),
                ..Outcome::default()
            }
        }
    };
    let pid = child.id() as libc::pid_t;
    let out = child.stdout.take().map(|mut o| {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            loop {
                match o.read(&mut buf) {
                    Ok(0) | Err(_) => return n,
                    Ok(k) => n += k as u64,
                }
            }
        })
    });
    let mut err_pipe = child.stderr.take().expect("stderr");
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        let s = String::from_utf8_lossy(&s).into_owned();
        s.chars()
            .rev()
            .take(600)
            .collect::<String>()
            .chars()
            .rev()
            .collect()
    });
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(timeout).is_err() {
            // Still running (the child is not reaped yet, so the pid is ours).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    std::mem::forget(child); // reaped above
    let bytes = out.map(|h| h.join().unwrap_or(0)).unwrap_or(0);
    let stderr = err.join().unwrap_or_default();
    Outcome {
        secs,
        ok: r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 && !timed_out,
        timed_out,
        bytes,
        maxrss_kib: usage.ru_maxrss as u64,
        stderr,
    }
}

/// VmRSS and VmHWM in KiB.
pub fn rss(pid: u32) -> (u64, u64) {
    distant_testkit::rss_kib(pid)
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state(0) ppid(1) ... utime(11) stime(12).
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub fn ticks_per_sec() -> f64 {
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// (pid, ppid, comm) of every process.
pub fn all_procs() -> Vec<(u32, u32, String)> {
    let mut v = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|x| x.1).unwrap_or("").to_string();
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        v.push((pid, ppid, comm));
    }
    v
}

/// For each child of `root`: the summed RSS (KiB) of it and all its
/// descendants. For sshd: one entry per connection.
pub fn subtree_rss(root: u32) -> Vec<(u32, u64)> {
    let procs = all_procs();
    let mut out = Vec::new();
    for &(child, ppid, _) in &procs {
        if ppid != root {
            continue;
        }
        let mut stack = vec![child];
        let mut sum = 0;
        while let Some(p) = stack.pop() {
            sum += rss(p).0;
            stack.extend(procs.iter().filter(|x| x.1 == p).map(|x| x.0));
        }
        out.push((child, sum));
    }
    out
}

/// Every descendant of `root`.
pub fn descendants(root: u32) -> Vec<u32> {
    let procs = all_procs();
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for x in procs.iter().filter(|x| x.1 == p) {
            out.push(x.0);
            stack.push(x.0);
        }
    }
    out
}

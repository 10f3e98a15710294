//! Processes on a PTY (portable-pty): spawn as a session leader with the
//! PTY as controlling terminal, a blocking reader thread until EOF/EIO, a
//! blocking stdin writer thread, and the exit collected with waitpid.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use distant_protocol::msg::{ErrorKind, OutputFraming, OutputStream, PtySize, Reply};
use portable_pty::{native_pty_system, CommandBuilder};
use tokio::sync::{mpsc, watch};

use super::{
    decode_wait_status, orphan_deadline, resolve_program, OutputSender, ProcCtx, Spawned, StdinMsg,
    StdinQueue, READ_CHUNK,
};

pub(super) fn spawn(
    cmd: &[String],
    cwd: Option<&Path>,
    env: &BTreeMap<String, String>,
    size: PtySize,
    framing: OutputFraming,
    ctx: ProcCtx,
) -> Result<Spawned, Reply> {
    let program = &cmd[0];
    if size.rows == 0 || size.cols == 0 {
        return Err(Reply::error(
            ErrorKind::InvalidParams,
            "a PTY needs at least one row and one column",
        ));
    }
    resolve_program(program, cwd, env)?;
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Reply::error(
            ErrorKind::Other,
            format!("cannot run {program} on a PTY: {what}: {e}"),
        )
    };

    let pair = native_pty_system()
        .openpty(portable_pty::PtySize {
            rows: size.rows,
            cols: size.cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .map_err(|e| fail("no PTY could be opened", &e))?;

    let mut builder = CommandBuilder::new(program);
    builder.args(&cmd[1..]);
    if std::env::var_os("TERM").is_none() && !env.contains_key("TERM") {
        builder.env("TERM", "xterm-256color");
    }
    for (k, v) in env {
        builder.env(k, v);
    }
    // portable-pty defaults to $HOME; pipes start in the server's directory.
    match cwd {
        Some(dir) => builder.cwd(dir),
        None => {
            if let Ok(dir) = std::env::current_dir() {
                builder.cwd(dir);
            }
        }
    }
    let child = pair
        .slave
        .spawn_command(builder)
        .map_err(|e| fail("the process could not be started", &e))?;
    // Only the child may hold the slave, or reading never sees EOF.
    drop(pair.slave);
    let pid = child.process_id().unwrap_or(0);
    let master = pair.master;
    let reader = master.try_clone_reader();
    let writer = master.take_writer();
    let (reader, writer) = match (reader, writer) {
        (Ok(r), Ok(w)) => (r, w),
        (Err(e), _) | (_, Err(e)) => {
            if let Ok(pgid) = libc::pid_t::try_from(pid) {
                // SAFETY: plain syscalls on the child we just started.
                unsafe {
                    libc::killpg(pgid, libc::SIGKILL);
                    libc::waitpid(pgid, std::ptr::null_mut(), 0);
                }
            }
            return Err(fail("its terminal could not be opened", &e));
        }
    };

    // stdin writer thread.
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicBool::new(false));
    {
        let (queued, broken) = (queued.clone(), broken.clone());
        std::thread::Builder::new()
            .name(format!("pty-stdin-{}", ctx.id))
            .spawn(move || write_stdin(writer, rx, queued, broken))
            .map_err(|e| fail("no thread for its input", &e))?;
    }

    // Reader thread → bounded channel → async forwarder (backpressure).
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(4);
    std::thread::Builder::new()
        .name(format!("pty-read-{}", ctx.id))
        .spawn(move || read_pty(reader, out_tx))
        .map_err(|e| fail("no thread for its output", &e))?;

    let (exited_tx, mut exited_rx) = watch::channel(false);
    let mut out = OutputSender::new(ctx.clone(), OutputStream::Stdout, framing);
    let forward = tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                d = out_rx.recv() => d,
                _ = orphan_deadline(&mut exited_rx) => None,
            };
            match next {
                Some(data) => out.data(data).await,
                None => break,
            }
        }
        out.finish();
    });

    tokio::spawn(async move {
        // Keep the child handle (a std Child, never waited by itself) alive
        // while we wait on its pid.
        let child = child;
        let status = tokio::task::spawn_blocking(move || wait_pid(pid)).await;
        drop(child);
        let _ = exited_tx.send(true);
        let _ = forward.await;
        let (code, signal) = match status {
            Ok(Ok(status)) => decode_wait_status(status),
            Ok(Err(e)) => {
                tracing::warn!(proc = ctx.id, "waiting for process failed: {e}");
                (None, None)
            }
            Err(e) => {
                tracing::warn!(proc = ctx.id, "waiting for process failed: {e}");
                (None, None)
            }
        };
        ctx.remove();
        tracing::debug!(proc = ctx.id, ?code, ?signal, "PTY process exited");
        ctx.send(Reply::ProcExit {
            proc: ctx.id,
            code,
            signal,
        })
        .await;
    });

    Ok(Spawned {
        pid,
        stdin: StdinQueue { tx, queued, broken },
        pty: Some(Arc::new(Mutex::new(master))),
    })
}

fn wait_pid(pid: u32) -> std::io::Result<libc::c_int> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other("invalid pid"))?;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes only to `status`.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn read_pty(mut reader: Box<dyn Read + Send>, tx: mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO: every holder of the terminal is gone.
            Err(_) => break,
        }
    }
}

fn write_stdin(
    mut writer: Box<dyn Write + Send>,
    mut rx: mpsc::UnboundedReceiver<StdinMsg>,
    queued: Arc<AtomicUsize>,
    broken: Arc<AtomicBool>,
) {
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            StdinMsg::Data(data) => {
                if !broken.load(Ordering::SeqCst) {
                    if let Err(e) = writer.write_all(&data).and_then(|_| writer.flush()) {
                        tracing::debug!("PTY input could not be written: {e}");
                        broken.store(true, Ordering::SeqCst);
                    }
                }
                queued.fetch_sub(data.len(), Ordering::SeqCst);
            }
            StdinMsg::Close => break,
        }
    }
    // Dropping the writer sends EOF (^D) to the terminal.
    drop(writer);
}

//! Processes on pipes (tokio::process): spawn in a new process group, the
//! stdin writer task, the stdout/stderr pumps and the exit task.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use distant_protocol::msg::{OutputFraming, OutputStream, Reply};
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, Command};
use tokio::sync::{mpsc, watch};

use super::{pump, signal_name, spawn_error, OutputSender, ProcCtx, Spawned, StdinMsg, StdinQueue};

pub(super) fn spawn(
    cmd: &[String],
    cwd: Option<&Path>,
    env: &BTreeMap<String, String>,
    framing: OutputFraming,
    ctx: ProcCtx,
) -> Result<Spawned, Reply> {
    let program = &cmd[0];
    let mut command = Command::new(program);
    command
        .args(&cmd[1..])
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|e| spawn_error(program, &e))?;
    let pid = child.id().unwrap_or(0);
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        // Cannot happen with Stdio::piped(); clean up rather than panic.
        let _ = child.start_kill();
        return Err(Reply::error(
            distant_protocol::msg::ErrorKind::Other,
            format!("cannot run {program}: its pipes could not be set up"),
        ));
    };

    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicBool::new(false));
    tokio::spawn(write_stdin(stdin, rx, queued.clone(), broken.clone()));

    let (exited_tx, exited_rx) = watch::channel(false);
    let out = tokio::spawn(pump(
        stdout,
        OutputSender::new(ctx.clone(), OutputStream::Stdout, framing),
        exited_rx.clone(),
    ));
    let err = tokio::spawn(pump(
        stderr,
        OutputSender::new(ctx.clone(), OutputStream::Stderr, OutputFraming::Raw),
        exited_rx,
    ));

    tokio::spawn(async move {
        let status = child.wait().await;
        let _ = exited_tx.send(true);
        let _ = out.await;
        let _ = err.await;
        let (code, signal) = match status {
            Ok(s) => (s.code(), s.signal().map(signal_name)),
            Err(e) => {
                tracing::warn!(proc = ctx.id, "waiting for process failed: {e}");
                (None, None)
            }
        };
        ctx.remove();
        tracing::debug!(proc = ctx.id, ?code, ?signal, "process exited");
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
        pty: None,
    })
}

/// Writes queued stdin data in order; closes stdin on `Close` (after what
/// was queued before it) or when the queue is dropped.
async fn write_stdin(
    mut stdin: ChildStdin,
    mut rx: mpsc::UnboundedReceiver<StdinMsg>,
    queued: Arc<AtomicUsize>,
    broken: Arc<AtomicBool>,
) {
    while let Some(msg) = rx.recv().await {
        match msg {
            StdinMsg::Data(data) => {
                if !broken.load(Ordering::SeqCst) {
                    let r = async {
                        stdin.write_all(&data).await?;
                        stdin.flush().await
                    }
                    .await;
                    if let Err(e) = r {
                        tracing::debug!("process stopped reading stdin: {e}");
                        broken.store(true, Ordering::SeqCst);
                    }
                }
                queued.fetch_sub(data.len(), Ordering::SeqCst);
            }
            StdinMsg::Close => break,
        }
    }
    let _ = stdin.shutdown().await;
}

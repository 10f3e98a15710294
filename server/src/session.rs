//! The per-session dispatcher.
//!
//! Owns [`run_session`]: it reads a session's requests in arrival order and
//! answers each with one or more responses through the session's
//! [`Outbox`].
//!
//! - **Admission in order.** Each op is admitted in the loop, in arrival
//!   order: cheap, order-sensitive steps (looking up a write handle,
//!   queueing stdin, spawning a process, adding or removing a watch,
//!   starting or cancelling a search) happen there, so `ProcStdin` after
//!   `ProcSpawn`, or `FileWriteFinish` after its chunks, see what came
//!   before them.
//! - **Slow work off the loop.** File IO, directory walks, copies and
//!   hashing run on the blocking pool inside spawned tasks, so one slow op
//!   never stalls the session; their replies are sent when they finish, in
//!   whatever order that is.
//! - **Streams.** The dispatcher sends a stream's opening reply
//!   (`ProcSpawned`, `Watching`, `SearchStarted`) and then releases the
//!   op's [`ReplySink`]; a `FileRead` streams its own chunks (its first
//!   chunk is its opener). Streaming ops cannot be part of a batch.
//! - **Batches** are answered by one `ResponsePayload::Batch`, replies in
//!   op order. A parallel batch admits every op in order and runs them
//!   concurrently; a sequential one runs them one after another and stops
//!   at the first error.
//! - **End.** When `requests` closes, in-flight tasks are cancelled,
//!   processes, watches and searches are shut down and pending chunked
//!   writes are discarded (temp files removed).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use distant_protocol::msg::{
    ErrorKind, Op, Reply, Request, RequestId, RequestPayload, Response, ResponsePayload,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::errors::invalid;
use crate::fs::{self, Files};
use crate::reply::{Outbox, ReplySink};
use crate::{system, Limits};

use crate::{index::Indexes, proc::Processes, search::Searches, watch::Watches};

use crate::ports::PortDetector;
use crate::tunnel::Tunnels;

/// Message given to the ops a sequential batch skipped.
pub const SKIPPED: &str = "skipped: an earlier operation in this sequential batch failed";

type BoxReply = Pin<Box<dyn Future<Output = Reply> + Send + 'static>>;

/// What admitting one op produced.
enum Admitted {
    /// The reply is known now.
    Now(Reply),
    /// The reply comes when this future finishes (run off the loop).
    Later(BoxReply),
    /// A file read that streams through its own sink.
    Read {
        path: String,
        chunk_size: Option<u32>,
        range: fs::ReadRange,
    },
    /// Already answered (a stream's opener was sent).
    Answered,
}

/// Everything one session holds.
struct State {
    outbox: Outbox,
    files: Files,
    processes: Processes,
    searches: Searches,
    watches: Watches,
    indexes: Indexes,
    tunnels: Tunnels,
    ports: PortDetector,
}

/// Serves one session until `requests` closes, then cleans up.
pub async fn run_session(
    mut requests: mpsc::Receiver<Request>,
    responses: mpsc::Sender<Response>,
    limits: Limits,
) {
    let outbox = Outbox::new(responses);
    let state = Arc::new(State {
        outbox,
        files: Files::new(limits.clone()),
        processes: Processes::new(limits.clone()),
        searches: Searches::new(limits.clone()),
        watches: Watches::new(limits.clone()),
        indexes: Indexes::new(limits.clone()),
        tunnels: Tunnels::new(limits.clone()),
        ports: PortDetector::default(),
    });
    let mut tasks = JoinSet::new();
    while let Some(request) = requests.recv().await {
        dispatch(&state, &mut tasks, request).await;
        while tasks.try_join_next().is_some() {}
    }
    tracing::debug!("session ended; cleaning up");
    tasks.shutdown().await;
    state.tunnels.shutdown_all();
    state.ports.shutdown();
    {
        state.processes.shutdown().await;
        state.watches.shutdown().await;
        state.searches.shutdown().await;
        state.indexes.shutdown().await;
    }
    state.files.shutdown();
}

async fn dispatch(state: &Arc<State>, tasks: &mut JoinSet<()>, request: Request) {
    let origin = request.id;
    match request.payload {
        RequestPayload::Single(op) => match admit(state, origin, op, false).await {
            Admitted::Now(reply) => {
                state.outbox.reply(origin, reply).await;
            }
            Admitted::Later(fut) => {
                let outbox = state.outbox.clone();
                tasks.spawn(async move {
                    let reply = fut.await;
                    outbox.reply(origin, reply).await;
                });
            }
            Admitted::Read {
                path,
                chunk_size,
                range,
            } => {
                let sink = ReplySink::released(state.outbox.clone(), origin);
                tasks.spawn(fs::read(path, chunk_size, range, sink));
            }
            Admitted::Answered => {}
        },
        RequestPayload::Batch { ops, sequential } if sequential => {
            let state = state.clone();
            tasks.spawn(async move {
                let mut replies = Vec::with_capacity(ops.len());
                let mut failed = false;
                for op in ops {
                    if failed {
                        replies.push(Reply::error(ErrorKind::Other, SKIPPED));
                        continue;
                    }
                    let reply = resolve(admit(&state, origin, op, true).await).await;
                    failed = matches!(reply, Reply::Error(_));
                    replies.push(reply);
                }
                state
                    .outbox
                    .send(origin, ResponsePayload::Batch(replies))
                    .await;
            });
        }
        RequestPayload::Batch { ops, .. } => {
            let mut admitted = Vec::with_capacity(ops.len());
            for op in ops {
                admitted.push(admit(state, origin, op, true).await);
            }
            let outbox = state.outbox.clone();
            tasks.spawn(async move {
                // Run the deferred ops concurrently, then answer in op order.
                let mut set = JoinSet::new();
                let mut replies: Vec<Option<Reply>> = Vec::with_capacity(admitted.len());
                for (i, a) in admitted.into_iter().enumerate() {
                    match a {
                        Admitted::Now(r) => replies.push(Some(r)),
                        other => {
                            replies.push(None);
                            set.spawn(async move { (i, resolve(other).await) });
                        }
                    }
                }
                while let Some(done) = set.join_next().await {
                    match done {
                        Ok((i, r)) => replies[i] = Some(r),
                        Err(e) => tracing::warn!("batch op task failed: {e}"),
                    }
                }
                let replies = replies
                    .into_iter()
                    .map(|r| {
                        r.unwrap_or_else(|| {
                            Reply::error(ErrorKind::Other, "the operation failed unexpectedly")
                        })
                    })
                    .collect();
                outbox.send(origin, ResponsePayload::Batch(replies)).await;
            });
        }
    }
}

/// The reply of an admitted op that is not a stream.
async fn resolve(a: Admitted) -> Reply {
    match a {
        Admitted::Now(r) => r,
        Admitted::Later(f) => f.await,
        Admitted::Read { .. } => Reply::Error(in_batch("FileRead")),
        Admitted::Answered => Reply::error(ErrorKind::Other, "a stream cannot be part of a batch"),
    }
}

fn in_batch(op: &str) -> distant_protocol::msg::ErrorReply {
    invalid(format!(
        "{op} streams its replies and cannot be part of a batch; send it as its own request"
    ))
}

/// Runs a blocking fs handler on the blocking pool.
fn blocking<F>(f: F) -> Admitted
where
    F: FnOnce() -> Result<Reply, distant_protocol::msg::ErrorReply> + Send + 'static,
{
    Admitted::Later(Box::pin(async move {
        match tokio::task::spawn_blocking(f).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Reply::Error(e),
            Err(e) => Reply::error(
                ErrorKind::Other,
                format!("the operation failed unexpectedly: {e}"),
            ),
        }
    }))
}

fn stamped(
    r: Result<distant_protocol::msg::FileStamp, distant_protocol::msg::ErrorReply>,
) -> Result<Reply, distant_protocol::msg::ErrorReply> {
    r.map(Reply::FileWritten)
}

/// Admits one op (in arrival order). `in_batch` refuses streaming ops.
async fn admit(state: &Arc<State>, origin: RequestId, op: Op, batched: bool) -> Admitted {
    let _ = origin;
    match op {
        Op::Version => Admitted::Now(Reply::Version(system::version())),
        Op::SystemInfo => Admitted::Now(Reply::SystemInfo(system::system_info())),

        Op::FileRead {
            path,
            chunk_size,
            offset,
            length,
        } => {
            if batched {
                Admitted::Now(Reply::Error(in_batch("FileRead")))
            } else {
                Admitted::Read {
                    path,
                    chunk_size,
                    range: fs::ReadRange { offset, length },
                }
            }
        }
        Op::FileWrite {
            path,
            data,
            options,
        } => blocking(move || stamped(fs::write_file(&path, &data, &options))),
        Op::FileAppend { path, data } => blocking(move || stamped(fs::append_file(&path, &data))),
        Op::FileWriteStart { path, options } => {
            let state = state.clone();
            blocking(move || {
                state
                    .files
                    .write_start(&path, options)
                    .map(|handle| Reply::WriteHandle { handle })
            })
        }
        Op::FileWriteChunk {
            handle,
            offset,
            data,
        } => match state.files.admit_chunk(handle, offset, data) {
            Ok(chunk) => Admitted::Later(Box::pin(chunk.run())),
            Err(e) => Admitted::Now(Reply::Error(e)),
        },
        Op::FileWriteFinish { handle } => match state.files.admit_end(handle) {
            Ok(end) => Admitted::Later(Box::pin(end.finish())),
            Err(e) => Admitted::Now(Reply::Error(e)),
        },
        Op::FileWriteAbort { handle } => match state.files.admit_end(handle) {
            Ok(end) => Admitted::Later(Box::pin(end.abort())),
            Err(e) => Admitted::Now(Reply::Error(e)),
        },

        Op::ReadDir {
            path,
            depth,
            absolute,
            include_root,
        } => blocking(move || fs::read_dir(&path, depth, absolute, include_root)),
        Op::CreateDir { path, all } => blocking(move || fs::create_dir(&path, all)),
        Op::Remove { path, force } => blocking(move || fs::remove(&path, force)),
        Op::Copy {
            src,
            dst,
            overwrite,
        } => blocking(move || fs::copy(&src, &dst, overwrite)),
        Op::Rename {
            src,
            dst,
            overwrite,
        } => blocking(move || fs::rename(&src, &dst, overwrite)),
        Op::Exists { path } => blocking(move || fs::exists(&path)),
        Op::Metadata {
            path,
            follow_symlinks,
            hash,
        } => blocking(move || fs::metadata(&path, follow_symlinks, hash)),
        Op::SetPermissions {
            path,
            mode,
            readonly,
            recursive,
        } => blocking(move || fs::set_permissions(&path, mode, readonly, recursive)),
        Op::FindUp { path, names } => blocking(move || fs::find_up(&path, &names)),

        Op::ProcSpawn {
            cmd,
            cwd,
            env,
            pty,
            framing,
        } => {
            if batched {
                return Admitted::Now(Reply::Error(in_batch("ProcSpawn")));
            }
            let (sink, release) = ReplySink::new(state.outbox.clone(), origin);
            let opener = state
                .processes
                .spawn(cmd, cwd, env, pty, framing, sink)
                .await;
            open_stream(state, origin, opener, release).await
        }
        Op::ProcStdin { proc, data } => Admitted::Now(state.processes.stdin(proc, data).await),
        Op::ProcCloseStdin { proc } => Admitted::Now(state.processes.close_stdin(proc).await),
        Op::ProcKill { proc, signal } => Admitted::Now(state.processes.kill(proc, signal).await),
        Op::ProcResize { proc, size } => Admitted::Now(state.processes.resize(proc, size).await),
        Op::Search { query } => {
            if batched {
                return Admitted::Now(Reply::Error(in_batch("Search")));
            }
            let (sink, release) = ReplySink::new(state.outbox.clone(), origin);
            let opener = state.searches.start(query, sink).await;
            open_stream(state, origin, opener, release).await
        }
        Op::CancelSearch { search } => Admitted::Now(state.searches.cancel(search).await),
        Op::Watch {
            path,
            recursive,
            exclude,
        } => {
            if batched {
                return Admitted::Now(Reply::Error(in_batch("Watch")));
            }
            let (sink, release) = ReplySink::new(state.outbox.clone(), origin);
            let opener = state.watches.watch(path, recursive, exclude, sink).await;
            open_stream(state, origin, opener, release).await
        }
        Op::Unwatch { watch } => Admitted::Now(state.watches.unwatch(watch).await),
        Op::Index { query } => {
            if batched {
                return Admitted::Now(Reply::Error(in_batch("Index")));
            }
            let (sink, release) = ReplySink::new(state.outbox.clone(), origin);
            let opener = state.indexes.start(query, sink).await;
            open_stream(state, origin, opener, release).await
        }
        Op::CancelIndex { index } => Admitted::Now(state.indexes.cancel(index).await),

        Op::TcpConnect {
            host,
            port,
            window,
            timeout_ms,
        } => {
            if batched {
                return Admitted::Now(Reply::Error(in_batch("TcpConnect")));
            }
            // The stream's opener (`TcpConnected`) is sent by the connection
            // itself once the connection is made.
            let sink = ReplySink::released(state.outbox.clone(), origin);
            match state.tunnels.connect(host, port, window, timeout_ms, sink) {
                Ok(()) => Admitted::Answered,
                Err(reply) => Admitted::Now(reply),
            }
        }
        Op::TcpSend { conn, data } => tcp_written(state.tunnels.send(conn, data), conn),
        Op::TcpShutdown { conn } => tcp_written(state.tunnels.shutdown(conn), conn),
        Op::TcpAck { conn, bytes } => Admitted::Now(state.tunnels.ack(conn, bytes)),
        Op::TcpClose { conn } => Admitted::Now(state.tunnels.close(conn)),
        Op::DetectPorts { interval_ms } => {
            if batched {
                return Admitted::Now(Reply::Error(in_batch("DetectPorts")));
            }
            let sink = ReplySink::released(state.outbox.clone(), origin);
            match state
                .ports
                .start(interval_ms, state.processes.live_pids(), sink)
            {
                Ok(()) => Admitted::Answered,
                Err(reply) => Admitted::Now(reply),
            }
        }
    }
}

/// The reply of a queued TCP write: `Ok` once it reached the socket.
fn tcp_written(
    queued: Result<
        tokio::sync::oneshot::Receiver<Result<(), distant_protocol::msg::ErrorReply>>,
        Reply,
    >,
    conn: u64,
) -> Admitted {
    match queued {
        Err(reply) => Admitted::Now(reply),
        Ok(done) => Admitted::Later(Box::pin(async move {
            match done.await {
                Ok(Ok(())) => Reply::Ok,
                Ok(Err(e)) => Reply::Error(e),
                Err(_) => Reply::error(
                    ErrorKind::Other,
                    format!("TCP connection {conn} closed before the bytes were written"),
                ),
            }
        })),
    }
}

/// Sends a stream's opening reply, then lets the stream's sink through.
/// A failed start (an `Error` opener) drops the release, closing the sink.
async fn open_stream(
    state: &Arc<State>,
    origin: RequestId,
    opener: Reply,
    release: crate::reply::Release,
) -> Admitted {
    let ok = !matches!(opener, Reply::Error(_));
    state.outbox.reply(origin, opener).await;
    if ok {
        release.release();
    }
    Admitted::Answered
}

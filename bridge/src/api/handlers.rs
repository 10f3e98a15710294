//! The methods of the bridge API: params in, protocol ops out, results
//! back. Each returns a [`Done`] (the result, plus a signal for streams to
//! start forwarding once the response is queued) or an [`RpcError`].

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use distant_protocol::driver::rpc::RpcClient;
use distant_protocol::msg::{
    self, FileStamp, Op, OutputFraming, PtySize, Reply, SearchQuery, SearchTarget, WriteOptions,
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::convert::{self, parse, Encoding};
use super::streams::{self, Forward};
use super::{Api, Connection, Done, Peer, StreamEntry, StreamKind};
use crate::jsonrpc::{ErrorKind, RpcError};

/// Chunked-write requests in flight at once.
const WRITE_WINDOW: usize = 4;
/// Largest file `fs/read` assembles.
const MAX_READ: usize = 256 * 1024 * 1024;

/// Capabilities the bridge reports in `initialize`.
const CAPABILITIES: &[&str] = &[
    "fs",
    "fs-chunked",
    "fs-write-stream",
    "fs-etag",
    "fs-atomic",
    "find-up",
    "watch",
    "search",
    "proc",
    "pty",
    "system-info",
    "index",
    "local",
    "ssh",
    "shared-connections",
    "cancel",
    "tunnel",
];

fn t() -> bool {
    true
}
fn one() -> u64 {
    1
}
fn utf8() -> Encoding {
    Encoding::Utf8
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectP {
    destination: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    options: Option<Value>,
}

#[derive(Deserialize)]
struct ConnP {
    connection: String,
}

#[derive(Deserialize)]
struct PathP {
    connection: String,
    path: String,
}

#[derive(Deserialize)]
struct ReadP {
    connection: String,
    path: String,
    #[serde(default)]
    encoding: Option<Encoding>,
    /// Optional byte range (an extension of the contract): clients that
    /// stream a huge file read it range by range.
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    length: Option<u64>,
}

/// Where and how a write lands: `fs/write` and `fs/writeStart` alike.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteTargetP {
    connection: String,
    path: String,
    #[serde(default = "t")]
    create: bool,
    #[serde(default = "t")]
    overwrite: bool,
    #[serde(default)]
    if_etag: Option<String>,
    #[serde(default = "t")]
    atomic: bool,
}

impl WriteTargetP {
    fn options(&mut self) -> WriteOptions {
        WriteOptions {
            create: self.create,
            overwrite: self.overwrite,
            if_etag: self.if_etag.take(),
            atomic: self.atomic,
        }
    }
}

#[derive(Deserialize)]
struct WriteP {
    #[serde(flatten)]
    target: WriteTargetP,
    data: String,
    #[serde(default = "utf8")]
    encoding: Encoding,
}

#[derive(Deserialize)]
struct WriteChunkP {
    connection: String,
    write: String,
    offset: u64,
    data: String,
    #[serde(default = "utf8")]
    encoding: Encoding,
}

#[derive(Deserialize)]
struct WriteEndP {
    connection: String,
    write: String,
}

#[derive(Deserialize)]
struct AppendP {
    connection: String,
    path: String,
    data: String,
    #[serde(default = "utf8")]
    encoding: Encoding,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadDirP {
    connection: String,
    path: String,
    #[serde(default = "one")]
    depth: u64,
    #[serde(default)]
    absolute: bool,
    #[serde(default)]
    include_root: bool,
}

#[derive(Deserialize)]
struct CreateDirP {
    connection: String,
    path: String,
    #[serde(default)]
    all: bool,
}

#[derive(Deserialize)]
struct RemoveP {
    connection: String,
    path: String,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize)]
struct CopyP {
    connection: String,
    src: String,
    dst: String,
    #[serde(default)]
    overwrite: Option<bool>,
}

#[derive(Deserialize)]
struct RenameP {
    connection: String,
    src: String,
    dst: String,
    #[serde(default)]
    overwrite: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataP {
    connection: String,
    path: String,
    #[serde(default)]
    follow_symlinks: bool,
    #[serde(default)]
    hash: bool,
}

#[derive(Deserialize)]
struct SetPermissionsP {
    connection: String,
    path: String,
    #[serde(default)]
    mode: Option<u32>,
    #[serde(default)]
    readonly: Option<bool>,
    #[serde(default)]
    recursive: bool,
}

#[derive(Deserialize)]
struct FindUpP {
    connection: String,
    path: String,
    names: Vec<String>,
}

#[derive(Deserialize)]
struct WatchP {
    connection: String,
    path: String,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    exclude: Vec<String>,
}

#[derive(Deserialize)]
struct UnwatchP {
    connection: String,
    watch: String,
}

#[derive(Deserialize)]
struct SearchStartP {
    connection: String,
    query: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum TargetP {
    Path,
    Contents,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryP {
    target: TargetP,
    pattern: String,
    #[serde(default = "t")]
    regex: bool,
    #[serde(default = "t")]
    case_sensitive: bool,
    paths: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    hidden: bool,
    #[serde(default = "t")]
    gitignore: bool,
    #[serde(default)]
    max_results: Option<u64>,
    #[serde(default)]
    max_depth: Option<u64>,
}

#[derive(Deserialize)]
struct SearchCancelP {
    connection: String,
    search: String,
}

#[derive(Deserialize)]
struct PtyP {
    rows: u16,
    cols: u16,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum FramingP {
    Raw,
    Lsp,
}

#[derive(Deserialize)]
struct SpawnP {
    connection: String,
    cmd: Vec<String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    pty: Option<PtyP>,
    #[serde(default)]
    framing: Option<FramingP>,
    #[serde(default)]
    encoding: Option<Encoding>,
}

#[derive(Deserialize)]
struct StdinP {
    connection: String,
    proc: String,
    data: String,
    #[serde(default = "utf8")]
    encoding: Encoding,
}

#[derive(Deserialize)]
struct ProcP {
    connection: String,
    proc: String,
}

#[derive(Deserialize)]
struct KillP {
    connection: String,
    proc: String,
    #[serde(default)]
    signal: Option<String>,
}

#[derive(Deserialize)]
struct ResizeP {
    connection: String,
    proc: String,
    rows: u16,
    cols: u16,
}

/// Runs one method.
pub(crate) async fn handle(
    api: &Arc<Api>,
    peer: &Arc<Peer>,
    method: &str,
    params: Option<Value>,
) -> Result<Done, RpcError> {
    match method {
        "initialize" => Ok(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "protocolVersion": format!(
                "{}.{}",
                distant_protocol::PROTOCOL_VERSION.0,
                distant_protocol::PROTOCOL_VERSION.1
            ),
            "capabilities": CAPABILITIES,
        })
        .into()),
        "shutdown" => Ok(Value::Null.into()),
        "connect" => {
            let p: ConnectP = parse(params, "")?;
            Ok(api
                .connect(&p.destination, p.key.as_deref(), p.options.as_ref())
                .await?
                .into())
        }
        "disconnect" => {
            let p: ConnP = parse(params, "")?;
            api.disconnect(&p.connection)?;
            Ok(Value::Null.into())
        }
        "connections" => Ok(api.list_connections().into()),

        "fs/read" => {
            let p: ReadP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            let (bytes, stamp) = read_file(&conn, p.path, p.offset, p.length).await?;
            let (data, encoding) = convert::encode_data(&bytes, p.encoding)?;
            Ok(json!({
                "data": data, "encoding": encoding.as_str(), "size": stamp.size,
                "mtime": stamp.mtime, "etag": stamp.etag,
            })
            .into())
        }
        "fs/write" => {
            let WriteP {
                mut target,
                data,
                encoding,
            } = parse(params, "")?;
            let data = convert::decode_data(data, encoding, "data")?;
            let conn = api.connection(&target.connection)?;
            let options = target.options();
            let stamp = write_file(&conn, target.path, Bytes::from(data), options).await?;
            Ok(convert::stamp(&stamp).into())
        }
        "fs/writeStart" => {
            let mut p: WriteTargetP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            let options = p.options();
            let id = start_write(api, peer.id, &conn, p.path, options).await?;
            Ok(json!({ "write": id }).into())
        }
        "fs/writeChunk" => {
            let p: WriteChunkP = parse(params, "")?;
            let data = Bytes::from(convert::decode_data(p.data, p.encoding, "data")?);
            let (conn, handle) = api.owned_write(peer.id, &p.connection, &p.write)?;
            write_chunks(&conn, handle, p.offset, data).await?;
            Ok(Value::Null.into())
        }
        "fs/writeFinish" => {
            let p: WriteEndP = parse(params, "")?;
            let (conn, handle) = api.take_write(peer.id, &p.connection, &p.write)?;
            match call(&conn, Op::FileWriteFinish { handle }).await? {
                Reply::FileWritten(stamp) => Ok(convert::stamp(&stamp).into()),
                other => Err(convert::unexpected("fs/writeFinish", &other)),
            }
        }
        "fs/writeAbort" => {
            let p: WriteEndP = parse(params, "")?;
            let (conn, handle) = api.take_write(peer.id, &p.connection, &p.write)?;
            expect_ok(&conn, "fs/writeAbort", Op::FileWriteAbort { handle }).await
        }
        "fs/append" => {
            let p: AppendP = parse(params, "")?;
            let data = Bytes::from(convert::decode_data(p.data, p.encoding, "data")?);
            let conn = api.connection(&p.connection)?;
            let mut offset = 0;
            loop {
                let end = (offset + msg::MAX_INLINE_WRITE).min(data.len());
                let reply = call(
                    &conn,
                    Op::FileAppend {
                        path: p.path.clone(),
                        data: data.slice(offset..end),
                    },
                )
                .await?;
                let Reply::FileWritten(stamp) = reply else {
                    return Err(convert::unexpected("fs/append", &reply));
                };
                offset = end;
                if offset >= data.len() {
                    return Ok(convert::stamp(&stamp).into());
                }
            }
        }
        "fs/readDir" => {
            let p: ReadDirP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            let op = Op::ReadDir {
                path: p.path,
                depth: p.depth,
                absolute: p.absolute,
                include_root: p.include_root,
            };
            match call(&conn, op).await? {
                Reply::DirEntries { entries, errors } => {
                    Ok(convert::dir_entries(&entries, &errors).into())
                }
                other => Err(convert::unexpected("fs/readDir", &other)),
            }
        }
        "fs/createDir" => {
            let p: CreateDirP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            expect_ok(
                &conn,
                "fs/createDir",
                Op::CreateDir {
                    path: p.path,
                    all: p.all,
                },
            )
            .await
        }
        "fs/remove" => {
            let p: RemoveP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            let op = Op::Remove {
                path: p.path,
                force: p.force,
            };
            expect_ok(&conn, "fs/remove", op).await
        }
        "fs/copy" => {
            let p: CopyP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            expect_ok(
                &conn,
                "fs/copy",
                Op::Copy {
                    src: p.src,
                    dst: p.dst,
                    overwrite: p.overwrite,
                },
            )
            .await
        }
        "fs/rename" => {
            let p: RenameP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            let op = Op::Rename {
                src: p.src,
                dst: p.dst,
                overwrite: p.overwrite,
            };
            expect_ok(&conn, "fs/rename", op).await
        }
        "fs/exists" => {
            let p: PathP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            match call(&conn, Op::Exists { path: p.path }).await? {
                Reply::Exists(b) => Ok(Value::Bool(b).into()),
                other => Err(convert::unexpected("fs/exists", &other)),
            }
        }
        "fs/metadata" => {
            let p: MetadataP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            let op = Op::Metadata {
                path: p.path,
                follow_symlinks: p.follow_symlinks,
                hash: p.hash,
            };
            match call(&conn, op).await? {
                Reply::Metadata(m) => Ok(convert::metadata(&m).into()),
                other => Err(convert::unexpected("fs/metadata", &other)),
            }
        }
        "fs/setPermissions" => {
            let p: SetPermissionsP = parse(params, "")?;
            if p.mode.is_none() && p.readonly.is_none() {
                return Err(RpcError::invalid_params(
                    "give `mode` or `readonly` (or both)",
                ));
            }
            let conn = api.connection(&p.connection)?;
            let op = Op::SetPermissions {
                path: p.path,
                mode: p.mode,
                readonly: p.readonly,
                recursive: p.recursive,
            };
            expect_ok(&conn, "fs/setPermissions", op).await
        }
        "fs/findUp" => {
            let p: FindUpP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            let op = Op::FindUp {
                path: p.path,
                names: p.names,
            };
            match call(&conn, op).await? {
                Reply::FoundUp(Some(path)) => Ok(json!({ "path": path }).into()),
                Reply::FoundUp(None) => Ok(Value::Null.into()),
                other => Err(convert::unexpected("fs/findUp", &other)),
            }
        }

        "fs/watch" => {
            let p: WatchP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            let op = Op::Watch {
                path: p.path,
                recursive: p.recursive,
                exclude: p.exclude,
            };
            start_stream(
                api,
                peer,
                &conn,
                StreamKind::Watch,
                op,
                None,
                |id, _| json!({ "watch": id }),
            )
            .await
        }
        "fs/unwatch" => {
            let p: UnwatchP = parse(params, "")?;
            let (conn, watch) =
                api.owned_stream(peer.id, &p.connection, &p.watch, StreamKind::Watch)?;
            expect_ok(&conn, "fs/unwatch", Op::Unwatch { watch }).await
        }

        "search/start" => {
            let p: SearchStartP = parse(params, "")?;
            let q: QueryP = parse(Some(p.query), "query.")?;
            let conn = api.connection(&p.connection)?;
            let query = SearchQuery {
                target: match q.target {
                    TargetP::Path => SearchTarget::Path,
                    TargetP::Contents => SearchTarget::Contents,
                },
                pattern: q.pattern,
                regex: q.regex,
                case_sensitive: q.case_sensitive,
                paths: q.paths,
                include: q.include,
                exclude: q.exclude,
                hidden: q.hidden,
                gitignore: q.gitignore,
                max_results: q.max_results,
                max_depth: q.max_depth,
            };
            start_stream(
                api,
                peer,
                &conn,
                StreamKind::Search,
                Op::Search { query },
                None,
                |id, _| json!({ "search": id }),
            )
            .await
        }
        "search/cancel" => {
            let p: SearchCancelP = parse(params, "")?;
            let (conn, search) =
                api.owned_stream(peer.id, &p.connection, &p.search, StreamKind::Search)?;
            expect_ok(&conn, "search/cancel", Op::CancelSearch { search }).await
        }

        "proc/spawn" => {
            let p: SpawnP = parse(params, "")?;
            if p.cmd.is_empty() {
                return Err(RpcError::invalid_params(
                    "parameter `cmd` must hold at least the program to run",
                ));
            }
            let conn = api.connection(&p.connection)?;
            let op = Op::ProcSpawn {
                cmd: p.cmd,
                cwd: p.cwd,
                env: p.env,
                pty: p.pty.map(|s| PtySize {
                    rows: s.rows,
                    cols: s.cols,
                }),
                framing: match p.framing {
                    Some(FramingP::Lsp) => OutputFraming::Lsp,
                    _ => OutputFraming::Raw,
                },
            };
            start_stream(
                api,
                peer,
                &conn,
                StreamKind::Proc,
                op,
                p.encoding,
                |id, first| {
                    let pid = match first {
                        Reply::ProcSpawned { pid, .. } => *pid,
                        _ => 0,
                    };
                    json!({ "proc": id, "pid": pid })
                },
            )
            .await
        }
        "proc/stdin" => {
            let p: StdinP = parse(params, "")?;
            let data = Bytes::from(convert::decode_data(p.data, p.encoding, "data")?);
            let (conn, proc) =
                api.owned_stream(peer.id, &p.connection, &p.proc, StreamKind::Proc)?;
            let mut offset = 0;
            loop {
                let end = (offset + msg::MAX_CHUNK).min(data.len());
                let op = Op::ProcStdin {
                    proc,
                    data: data.slice(offset..end),
                };
                expect_ok(&conn, "proc/stdin", op).await?;
                offset = end;
                if offset >= data.len() {
                    return Ok(Value::Null.into());
                }
            }
        }
        "proc/closeStdin" => {
            let p: ProcP = parse(params, "")?;
            let (conn, proc) =
                api.owned_stream(peer.id, &p.connection, &p.proc, StreamKind::Proc)?;
            expect_ok(&conn, "proc/closeStdin", Op::ProcCloseStdin { proc }).await
        }
        "proc/kill" => {
            let p: KillP = parse(params, "")?;
            let (conn, proc) =
                api.owned_stream(peer.id, &p.connection, &p.proc, StreamKind::Proc)?;
            let op = Op::ProcKill {
                proc,
                signal: p.signal,
            };
            expect_ok(&conn, "proc/kill", op).await
        }
        "proc/resize" => {
            let p: ResizeP = parse(params, "")?;
            let (conn, proc) =
                api.owned_stream(peer.id, &p.connection, &p.proc, StreamKind::Proc)?;
            let op = Op::ProcResize {
                proc,
                size: PtySize {
                    rows: p.rows,
                    cols: p.cols,
                },
            };
            expect_ok(&conn, "proc/resize", op).await
        }

        "system/info" => {
            let p: ConnP = parse(params, "")?;
            let conn = api.connection(&p.connection)?;
            match call(&conn, Op::SystemInfo).await? {
                Reply::SystemInfo(s) => Ok(convert::system_info(&s).into()),
                other => Err(convert::unexpected("system/info", &other)),
            }
        }

        "fs/index" => super::index::start(api, peer, params).await,
        "fs/index/cancel" => super::index::cancel(api, peer, params).await,

        other => match super::tunnel::handle(api, peer, other, params).await {
            Some(result) => result,
            None => Err(RpcError::method_not_found(other)),
        },
    }
}

/// One op, one reply; a driver failure becomes the bridge error.
async fn call(conn: &Connection, op: Op) -> Result<Reply, RpcError> {
    conn.rpc
        .call(op)
        .await
        .map_err(|e| convert::driver_error(e, &conn.id))
}

async fn expect_ok(conn: &Connection, what: &str, op: Op) -> Result<Done, RpcError> {
    match call(conn, op).await? {
        Reply::Ok => Ok(Value::Null.into()),
        other => Err(convert::unexpected(what, &other)),
    }
}

/// Opens a stream, registers it for `peer`, and answers with `result`;
/// forwarding starts once the answer is queued.
async fn start_stream(
    api: &Arc<Api>,
    peer: &Arc<Peer>,
    conn: &Arc<Connection>,
    kind: StreamKind,
    op: Op,
    encoding: Option<Encoding>,
    result: impl FnOnce(&str, &Reply) -> Value,
) -> Result<Done, RpcError> {
    let opened = streams::open(api, conn, kind, op).await?;
    let server_id = match (&opened.first, kind) {
        (Reply::ProcSpawned { proc, .. }, StreamKind::Proc) => *proc,
        (Reply::Watching { watch }, StreamKind::Watch) => *watch,
        (Reply::SearchStarted { search }, StreamKind::Search) => *search,
        (other, _) => return Err(convert::unexpected(kind.noun(), other)),
    };
    let id = api.register_stream(StreamEntry {
        kind,
        connection: conn.id.clone(),
        server_id,
        owner: peer.id,
    });
    let value = result(&id, &opened.first);
    let (go_tx, go_rx) = oneshot::channel();
    Forward {
        api: Arc::downgrade(api),
        out: peer.out.clone(),
        id,
        kind,
        connection: conn.id.clone(),
        server_id,
        encoding,
    }
    .spawn(opened.rest, go_rx);
    Ok(Done {
        value,
        then: Some(go_tx),
    })
}

/// Reads a whole file from its chunk stream.
async fn read_file(
    conn: &Connection,
    path: String,
    offset: u64,
    length: Option<u64>,
) -> Result<(Vec<u8>, FileStamp), RpcError> {
    let start = offset;
    let mut stream = conn
        .rpc
        .stream(Op::FileRead {
            path,
            chunk_size: None,
            offset,
            length,
        })
        .await
        .map_err(|e| convert::driver_error(e, &conn.id))?;
    let mut bytes = Vec::new();
    loop {
        match stream.recv().await {
            Some(Ok(Reply::FileChunk { offset, data })) => {
                let expected = start + bytes.len() as u64;
                if offset != expected {
                    return Err(RpcError::internal(format!(
                        "the server sent a chunk at offset {offset}, expected {expected}"
                    )));
                }
                if bytes.len() + data.len() > MAX_READ {
                    return Err(RpcError::new(
                        ErrorKind::Other,
                        format!(
                            "more than {} MiB to read in one fs/read; read it in ranges with offset and length",
                            MAX_READ >> 20
                        ),
                    ));
                }
                bytes.extend_from_slice(&data);
            }
            Some(Ok(Reply::FileEnd(stamp))) => return Ok((bytes, stamp)),
            Some(Ok(other)) => return Err(convert::unexpected("fs/read", &other)),
            Some(Err(e)) => return Err(convert::driver_error(e, &conn.id)),
            None => {
                return Err(RpcError::new(
                    ErrorKind::ConnectionLost,
                    "the file stream ended early",
                ))
            }
        }
    }
}

/// Aborts a chunked write on the server unless disarmed (error, cancel).
struct AbortGuard {
    rpc: Option<RpcClient>,
    handle: u64,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(rpc) = self.rpc.take() {
            let handle = self.handle;
            tokio::spawn(async move {
                let _ = rpc.call(Op::FileWriteAbort { handle }).await;
            });
        }
    }
}

/// Opens a chunked write for `peer` → its id. The server's answer is
/// awaited in a task of its own, so a request cancelled meanwhile does not
/// leave an open handle behind on the server.
async fn start_write(
    api: &Arc<Api>,
    peer: u64,
    conn: &Arc<Connection>,
    path: String,
    options: WriteOptions,
) -> Result<String, RpcError> {
    let (tx, rx) = oneshot::channel();
    let (weak, conn) = (Arc::downgrade(api), conn.clone());
    tokio::spawn(async move {
        let started = match call(&conn, Op::FileWriteStart { path, options }).await {
            Ok(Reply::WriteHandle { handle }) => Ok(handle),
            Ok(other) => Err(convert::unexpected("fs/writeStart", &other)),
            Err(e) => Err(e),
        };
        let Some(api) = weak.upgrade() else { return };
        match started {
            Ok(handle) => {
                let id = api.register_write(&conn.id, handle, peer);
                // The request was cancelled: nobody will finish this write.
                if tx.send(Ok(id.clone())).is_err() && api.take_write(peer, &conn.id, &id).is_ok() {
                    api.abort_write(&conn.id, handle).await;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });
    rx.await
        .unwrap_or_else(|_| Err(RpcError::internal("the write opener went away")))
}

/// Sends `data` into an open chunked write at `base`, in protocol-sized
/// chunks with a few in flight.
async fn write_chunks(
    conn: &Connection,
    handle: u64,
    base: u64,
    data: Bytes,
) -> Result<(), RpcError> {
    let len = data.len();
    let mut writes = futures::stream::iter((0..len).step_by(msg::MAX_CHUNK).map(|offset| {
        let chunk = data.slice(offset..(offset + msg::MAX_CHUNK).min(len));
        let rpc = conn.rpc.clone();
        async move {
            rpc.call(Op::FileWriteChunk {
                handle,
                offset: base + offset as u64,
                data: chunk,
            })
            .await
        }
    }))
    .buffer_unordered(WRITE_WINDOW);
    while let Some(result) = writes.next().await {
        match result {
            Ok(Reply::Ok) => {}
            Ok(other) => return Err(convert::unexpected("fs/writeChunk", &other)),
            Err(e) => return Err(convert::driver_error(e, &conn.id)),
        }
    }
    Ok(())
}

/// Writes a whole file: inline up to [`msg::MAX_INLINE_WRITE`], else in
/// chunks with several in flight.
async fn write_file(
    conn: &Connection,
    path: String,
    data: Bytes,
    options: WriteOptions,
) -> Result<FileStamp, RpcError> {
    if data.len() <= msg::MAX_INLINE_WRITE {
        return match call(
            conn,
            Op::FileWrite {
                path,
                data,
                options,
            },
        )
        .await?
        {
            Reply::FileWritten(stamp) => Ok(stamp),
            other => Err(convert::unexpected("fs/write", &other)),
        };
    }
    let handle = match call(conn, Op::FileWriteStart { path, options }).await? {
        Reply::WriteHandle { handle } => handle,
        other => return Err(convert::unexpected("fs/write", &other)),
    };
    let mut guard = AbortGuard {
        rpc: Some(conn.rpc.clone()),
        handle,
    };
    write_chunks(conn, handle, 0, data).await?;
    let reply = call(conn, Op::FileWriteFinish { handle }).await;
    guard.rpc = None;
    match reply? {
        Reply::FileWritten(stamp) => Ok(stamp),
        other => Err(convert::unexpected("fs/write", &other)),
    }
}

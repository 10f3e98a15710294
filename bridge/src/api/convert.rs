//! Conversions between the editor-facing JSON world and the protocol's
//! types: params parsing (serde, camelCase) with errors that name the
//! offending field, byte data encodings (`utf-8` / `base64`), error mapping
//! (server [`msg::ErrorKind`] and driver [`DriverError`] → bridge
//! [`ErrorKind`]), and the JSON shapes of replies.

use base64::Engine as _;
use distant_protocol::driver::rpc::RpcError as DriverError;
use distant_protocol::msg::{self, ErrorReply, Reply};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::jsonrpc::{ErrorKind, RpcError};

/// Parses `params` (absent = `{}`) into `T`. A failure is `invalid_params`
/// with a message naming the field (`prefix` is prepended, e.g. `query.`).
pub fn parse<T: DeserializeOwned>(params: Option<Value>, prefix: &str) -> Result<T, RpcError> {
    let value = match params {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Array(_)) => {
            return Err(RpcError::invalid_params(
                "params must be an object with named fields, not an array",
            ))
        }
        Some(v) => v,
    };
    match serde_json::from_value::<T>(value.clone()) {
        Ok(t) => Ok(t),
        Err(e) => Err(RpcError::invalid_params(describe(
            &value,
            &e.to_string(),
            prefix,
            |v| {
                serde_json::from_value::<T>(v)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        ))),
    }
}

/// Builds "`field`: what is wrong" for a failed parse: serde names missing
/// fields itself; for a wrong type we find the field by parsing again
/// without each present key in turn.
fn describe(
    value: &Value,
    error: &str,
    prefix: &str,
    retry: impl Fn(Value) -> Result<(), String>,
) -> String {
    if let Some(rest) = error.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        return format!("missing parameter `{prefix}{field}`");
    }
    if let Value::Object(obj) = value {
        for key in obj.keys() {
            let mut without = obj.clone();
            without.remove(key);
            let culprit = match retry(Value::Object(without)) {
                Ok(()) => true,
                Err(e) => e.starts_with(&format!("missing field `{key}`")),
            };
            if culprit {
                let what = error.split(" at line ").next().unwrap_or(error);
                return format!("parameter `{prefix}{key}` is invalid: {what}");
            }
        }
    }
    let what = error.split(" at line ").next().unwrap_or(error);
    format!("invalid params: {what}")
}

/// How byte data is carried in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    #[serde(rename = "utf-8", alias = "utf8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Base64 => "base64",
        }
    }
}

/// Decodes `data` sent by the editor (`field` names it in errors).
pub fn decode_data(data: String, encoding: Encoding, field: &str) -> Result<Vec<u8>, RpcError> {
    match encoding {
        Encoding::Utf8 => Ok(data.into_bytes()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .map_err(|e| {
                RpcError::invalid_params(format!("parameter `{field}` is not valid base64: {e}"))
            }),
    }
}

/// Encodes bytes for the editor: the asked encoding, else UTF-8 when the
/// bytes are valid UTF-8, else base64. Asking for UTF-8 of bytes that are
/// not UTF-8 is an error (a lossy conversion would corrupt the file on the
/// way back).
pub fn encode_data(bytes: &[u8], asked: Option<Encoding>) -> Result<(String, Encoding), RpcError> {
    match (asked, std::str::from_utf8(bytes)) {
        (Some(Encoding::Base64), _) | (None, Err(_)) => Ok((
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Encoding::Base64,
        )),
        (_, Ok(text)) => Ok((text.to_owned(), Encoding::Utf8)),
        (Some(Encoding::Utf8), Err(e)) => Err(RpcError::invalid_params(format!(
            "the data is not valid UTF-8 (first bad byte at offset {}); ask for encoding \"base64\"",
            e.valid_up_to()
        ))),
    }
}

/// Base64 of `bytes`.
pub fn base64(bytes: &[u8]) -> (String, Encoding) {
    (
        base64::engine::general_purpose::STANDARD.encode(bytes),
        Encoding::Base64,
    )
}

/// Maps a server error kind to the bridge's.
pub fn map_kind(kind: msg::ErrorKind) -> ErrorKind {
    match kind {
        msg::ErrorKind::NotFound => ErrorKind::NotFound,
        msg::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        msg::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
        msg::ErrorKind::NotADirectory => ErrorKind::NotADirectory,
        msg::ErrorKind::IsADirectory => ErrorKind::IsADirectory,
        msg::ErrorKind::DirectoryNotEmpty => ErrorKind::DirectoryNotEmpty,
        msg::ErrorKind::Conflict => ErrorKind::Conflict,
        msg::ErrorKind::InvalidParams => ErrorKind::InvalidParams,
        msg::ErrorKind::Unsupported => ErrorKind::Unsupported,
        msg::ErrorKind::Timeout => ErrorKind::Timeout,
        msg::ErrorKind::LimitExceeded | msg::ErrorKind::Other => ErrorKind::Other,
        msg::ErrorKind::ConnectionRefused | msg::ErrorKind::Unreachable => ErrorKind::Other,
    }
}

/// A server-side failure as a JSON-RPC error carrying the server's sentence.
pub fn server_error(e: ErrorReply) -> RpcError {
    RpcError::new(map_kind(e.kind), e.message)
}

/// A driver failure (no answer came) on connection `connection`.
pub fn driver_error(e: DriverError, connection: &str) -> RpcError {
    match e {
        DriverError::ConnectionLost(reason) => RpcError::new(
            ErrorKind::ConnectionLost,
            format!("connection {connection} was lost ({reason}); connect again"),
        ),
        DriverError::Closed(reason) => RpcError::new(
            ErrorKind::NotConnected,
            format!("connection {connection} is closed ({reason}); connect again"),
        ),
        DriverError::Invalid(m) => RpcError::new(ErrorKind::InvalidParams, m),
        DriverError::Unexpected(m) => RpcError::new(ErrorKind::Other, m),
    }
}

/// An answer of the wrong shape from the server.
pub fn unexpected(what: &str, reply: &Reply) -> RpcError {
    match reply {
        Reply::Error(e) => server_error(e.clone()),
        other => RpcError::internal(format!(
            "the server answered {what} with an unexpected reply ({})",
            reply_name(other)
        )),
    }
}

fn reply_name(reply: &Reply) -> &'static str {
    match reply {
        Reply::Ok => "Ok",
        Reply::Error(_) => "Error",
        Reply::Version(_) => "Version",
        Reply::SystemInfo(_) => "SystemInfo",
        Reply::FileChunk { .. } => "FileChunk",
        Reply::FileEnd(_) => "FileEnd",
        Reply::FileWritten(_) => "FileWritten",
        Reply::WriteHandle { .. } => "WriteHandle",
        Reply::DirEntries { .. } => "DirEntries",
        Reply::Exists(_) => "Exists",
        Reply::Metadata(_) => "Metadata",
        Reply::FoundUp(_) => "FoundUp",
        Reply::Watching { .. } => "Watching",
        Reply::Changes { .. } => "Changes",
        Reply::Unwatched { .. } => "Unwatched",
        Reply::SearchStarted { .. } => "SearchStarted",
        Reply::SearchResults { .. } => "SearchResults",
        Reply::SearchDone { .. } => "SearchDone",
        Reply::ProcSpawned { .. } => "ProcSpawned",
        Reply::ProcOutput { .. } => "ProcOutput",
        Reply::ProcExit { .. } => "ProcExit",
        Reply::IndexStarted { .. } => "IndexStarted",
        Reply::IndexPaths { .. } => "IndexPaths",
        Reply::IndexDone { .. } => "IndexDone",
        Reply::TcpConnected { .. } => "TcpConnected",
        Reply::TcpData { .. } => "TcpData",
        Reply::TcpEof { .. } => "TcpEof",
        Reply::TcpClosed { .. } => "TcpClosed",
        Reply::DetectingPorts => "DetectingPorts",
        Reply::PortsListening { .. } => "PortsListening",
    }
}

pub fn file_type(t: msg::FileType) -> &'static str {
    match t {
        msg::FileType::File => "file",
        msg::FileType::Dir => "dir",
        msg::FileType::Symlink => "symlink",
    }
}

pub fn stamp(s: &msg::FileStamp) -> Value {
    json!({"size": s.size, "mtime": s.mtime, "etag": s.etag})
}

pub fn metadata(m: &msg::Metadata) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), file_type(m.file_type).into());
    out.insert("size".into(), m.size.into());
    out.insert("mtime".into(), m.mtime.into());
    let optional = [
        ("atime", m.atime.map(Value::from)),
        ("ctime", m.ctime.map(Value::from)),
        ("mode", m.mode.map(Value::from)),
        ("symlinkTarget", m.symlink_target.clone().map(Value::from)),
        ("sha256", m.sha256.clone().map(Value::from)),
        ("etag", m.etag.clone().map(Value::from)),
    ];
    out.insert("readonly".into(), m.readonly.into());
    for (k, v) in optional {
        if let Some(v) = v {
            out.insert(k.into(), v);
        }
    }
    Value::Object(out)
}

pub fn dir_entries(entries: &[msg::DirEntry], errors: &[msg::PathError]) -> Value {
    json!({
        "entries": entries.iter().map(|e| json!({
            "path": e.path, "type": file_type(e.file_type), "depth": e.depth,
        })).collect::<Vec<_>>(),
        "errors": errors.iter().map(|e| json!({"path": e.path, "message": e.message})).collect::<Vec<_>>(),
    })
}

pub fn system_info(s: &msg::SystemInfo) -> Value {
    json!({
        "os": s.os, "family": s.family, "arch": s.arch, "currentDir": s.current_dir,
        "separator": s.separator, "username": s.username, "shell": s.shell,
    })
}

pub fn change(c: &msg::Change) -> Value {
    let kind = match c.kind {
        msg::ChangeKind::Created => "created",
        msg::ChangeKind::Modified => "modified",
        msg::ChangeKind::Deleted => "deleted",
        msg::ChangeKind::Renamed => "renamed",
        msg::ChangeKind::Attributes => "attributes",
    };
    let mut v = json!({"kind": kind, "path": c.path});
    if let Some(to) = &c.to {
        v["to"] = to.clone().into();
    }
    v
}

pub fn search_match(m: &msg::SearchMatch) -> Value {
    let mut v = json!({
        "path": m.path,
        "submatches": m.submatches.iter().map(|s| json!({"start": s.start, "end": s.end})).collect::<Vec<_>>(),
    });
    if let Some(line) = m.line {
        v["line"] = line.into();
    }
    if let Some(column) = m.column {
        v["column"] = column.into();
    }
    if let Some(text) = &m.text {
        v["text"] = text.clone().into();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct P {
        path: String,
        #[serde(default)]
        follow_symlinks: bool,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<P>(Some(json!({})), "").unwrap_err();
        assert!(e.message.contains("`path`"), "{}", e.message);
        let e = parse::<P>(Some(json!({"path": 3})), "").unwrap_err();
        assert!(e.message.contains("`path`"), "{}", e.message);
        let e = parse::<P>(Some(json!({"path": "/", "followSymlinks": "yes"})), "q.").unwrap_err();
        assert!(e.message.contains("`q.followSymlinks`"), "{}", e.message);
        assert_eq!(e.kind, ErrorKind::InvalidParams);
        assert!(parse::<P>(Some(json!({"path": "/"})), "").is_ok());
    }

    #[test]
    fn encodings() {
        assert_eq!(encode_data(b"hi", None).unwrap().1, Encoding::Utf8);
        assert_eq!(encode_data(b"\xff", None).unwrap().1, Encoding::Base64);
        assert!(encode_data(b"\xff", Some(Encoding::Utf8)).is_err());
        let (d, _) = encode_data(b"\x00\xff", Some(Encoding::Base64)).unwrap();
        assert_eq!(
            decode_data(d, Encoding::Base64, "data").unwrap(),
            b"\x00\xff"
        );
        assert!(decode_data("!!".into(), Encoding::Base64, "data").is_err());
    }
}

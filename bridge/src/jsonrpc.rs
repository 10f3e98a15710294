//! The JSON-RPC 2.0 message model the bridge speaks to editors.
//!
//! This module owns: parsing a framed body into a [`Message`] (request,
//! notification or response), the standard error codes, the bridge's
//! `error.data.kind` vocabulary ([`ErrorKind`], from the bridge API
//! contract), the [`RpcError`] type, and compact serialisation of outgoing
//! messages.
//!
//! [`parse`] never panics: any malformed body becomes an [`Invalid`] carrying
//! the error response to send (with the request id when it can be recovered,
//! otherwise `null`) and whether a reply is appropriate at all (never to a
//! notification or to something that looks like a response, so two peers
//! can't ping-pong errors).
//!
//! Ids are kept exactly as received for integers and strings (floats are
//! carried as `serde_json::Number`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version string.
pub const JSONRPC_VERSION: &str = "2.0";

/// Standard JSON-RPC and LSP error codes.
pub mod codes {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist / is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameter(s).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// LSP: a request failed but was syntactically correct. Used for every
    /// bridge error that is not one of the protocol-level codes; the
    /// specific reason is in `error.data.kind`.
    pub const REQUEST_FAILED: i64 = -32803;
    /// LSP: the request was cancelled.
    pub const REQUEST_CANCELLED: i64 = -32800;
}

/// A request id: a number or a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    /// Numeric id (integers kept exactly).
    Number(serde_json::Number),
    /// String id.
    String(String),
}

impl From<i64> for Id {
    fn from(n: i64) -> Self {
        Id::Number(n.into())
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Id::String(s.to_owned())
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Number(n) => write!(f, "{n}"),
            Id::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// `error.data.kind` values (bridge API contract), serialised snake_case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The path or object does not exist.
    NotFound,
    /// The OS refused access.
    PermissionDenied,
    /// The target exists.
    AlreadyExists,
    /// A path component is not a directory.
    NotADirectory,
    /// A directory where a file was expected.
    IsADirectory,
    /// Removing a non-empty directory without `force`.
    DirectoryNotEmpty,
    /// A write precondition (`ifEtag`) failed.
    Conflict,
    /// Bad parameters.
    InvalidParams,
    /// No such connection / not connected.
    NotConnected,
    /// The connection dropped and could not be re-established.
    ConnectionLost,
    /// Authentication failed.
    AuthFailed,
    /// The operation timed out.
    Timeout,
    /// Not supported by the bridge or the remote.
    Unsupported,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Every kind, in contract order.
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::NotFound,
        ErrorKind::PermissionDenied,
        ErrorKind::AlreadyExists,
        ErrorKind::NotADirectory,
        ErrorKind::IsADirectory,
        ErrorKind::DirectoryNotEmpty,
        ErrorKind::Conflict,
        ErrorKind::InvalidParams,
        ErrorKind::NotConnected,
        ErrorKind::ConnectionLost,
        ErrorKind::AuthFailed,
        ErrorKind::Timeout,
        ErrorKind::Unsupported,
        ErrorKind::Other,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::NotADirectory => "not_a_directory",
            ErrorKind::IsADirectory => "is_a_directory",
            ErrorKind::DirectoryNotEmpty => "directory_not_empty",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidParams => "invalid_params",
            ErrorKind::NotConnected => "not_connected",
            ErrorKind::ConnectionLost => "connection_lost",
            ErrorKind::AuthFailed => "auth_failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Other => "other",
        }
    }

    /// Parses a wire name; unknown names are `None`.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The JSON-RPC code used for an application error of this kind.
    pub fn code(self) -> i64 {
        match self {
            ErrorKind::InvalidParams => codes::INVALID_PARAMS,
            _ => codes::REQUEST_FAILED,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JSON-RPC error object. On the wire:
/// `{"code": C, "message": M, "data": {"kind": K, "detail"?: D}}`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message} ({kind}, code {code})")]
pub struct RpcError {
    /// JSON-RPC error code.
    pub code: i64,
    /// A sentence a person can act on.
    pub message: String,
    /// `error.data.kind`.
    pub kind: ErrorKind,
    /// Optional extra data, sent as `error.data.detail`. For errors received
    /// from a peer whose `data` had no recognised `kind`, the whole `data`.
    pub detail: Option<Value>,
}

impl RpcError {
    /// An application error of `kind` (code from [`ErrorKind::code`]).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            code: kind.code(),
            message: message.into(),
            kind,
            detail: None,
        }
    }

    /// An error with an explicit code.
    pub fn with_code(code: i64, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            kind,
            detail: None,
        }
    }

    /// Attaches `error.data.detail`.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// -32700: the body is not JSON.
    pub fn parse_error(message: impl Into<String>) -> Self {
        Self::with_code(codes::PARSE_ERROR, ErrorKind::InvalidParams, message)
    }

    /// -32600: not a valid JSON-RPC message.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::with_code(codes::INVALID_REQUEST, ErrorKind::InvalidParams, message)
    }

    /// -32601: unknown method.
    pub fn method_not_found(method: &str) -> Self {
        Self::with_code(
            codes::METHOD_NOT_FOUND,
            ErrorKind::Unsupported,
            format!("unknown method {method:?}"),
        )
    }

    /// -32602: bad params.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::with_code(codes::INVALID_PARAMS, ErrorKind::InvalidParams, message)
    }

    /// -32603: a bug or unexpected state in the bridge.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::with_code(codes::INTERNAL_ERROR, ErrorKind::Other, message)
    }

    /// -32800: cancelled via `$/cancelRequest`.
    pub fn request_cancelled() -> Self {
        Self::with_code(
            codes::REQUEST_CANCELLED,
            ErrorKind::Other,
            "the request was cancelled",
        )
    }

    fn from_wire(v: &Value) -> Option<Self> {
        let obj = v.as_object()?;
        let code = obj.get("code")?.as_i64()?;
        let message = obj.get("message")?.as_str()?.to_owned();
        let data = obj.get("data");
        let kind = data
            .and_then(|d| d.get("kind"))
            .and_then(Value::as_str)
            .and_then(ErrorKind::from_wire);
        let detail = match (kind, data) {
            (Some(_), Some(d)) => d.get("detail").cloned(),
            (None, d) => d.cloned(),
            (Some(_), None) => None,
        };
        Some(Self {
            code,
            message,
            kind: kind.unwrap_or(ErrorKind::Other),
            detail,
        })
    }
}

#[derive(Serialize)]
struct ErrorWire<'a> {
    code: i64,
    message: &'a str,
    data: ErrorData<'a>,
}

#[derive(Serialize)]
struct ErrorData<'a> {
    kind: ErrorKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a Value>,
}

impl Serialize for RpcError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ErrorWire {
            code: self.code,
            message: &self.message,
            data: ErrorData {
                kind: self.kind,
                detail: self.detail.as_ref(),
            },
        }
        .serialize(s)
    }
}

/// A request: has an id and a method; expects a response.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The id to answer with.
    pub id: Id,
    /// Method name.
    pub method: String,
    /// Params (object or array), if any.
    pub params: Option<Value>,
}

/// A notification: a method without an id; never answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Method name.
    pub method: String,
    /// Params (object or array), if any.
    pub params: Option<Value>,
}

/// A response to a request we sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The id of the request (`None` = `null`, only for errors).
    pub id: Option<Id>,
    /// `result` or `error`.
    pub outcome: Result<Value, RpcError>,
}

/// Any JSON-RPC message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A response.
    Response(Response),
}

/// A body that is not a valid message.
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    /// The id, when it could be recovered (reply with it, else `null`).
    pub id: Option<Id>,
    /// The error to report.
    pub error: RpcError,
    /// Whether to send an error response. False when the message was
    /// recognisably a notification or a response: answering those would be
    /// against the spec (and could loop between two peers). Log instead.
    pub reply: bool,
}

impl Invalid {
    /// The serialised error response, if one should be sent.
    pub fn response(&self) -> Option<Vec<u8>> {
        self.reply
            .then(|| error_response(self.id.as_ref(), &self.error))
    }
}

/// Parses a framed body into a [`Message`]. Never panics.
pub fn parse(body: &[u8]) -> Result<Message, Invalid> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Invalid {
        id: None,
        error: RpcError::parse_error(format!("the message is not valid JSON: {e}")),
        reply: true,
    })?;
    from_value(value)
}

/// Interprets an already-parsed JSON value as a [`Message`].
pub fn from_value(value: Value) -> Result<Message, Invalid> {
    let invalid = |id: Option<Id>, error: RpcError, reply: bool| Invalid { id, error, reply };
    let Value::Object(mut obj) = value else {
        let what = if value.is_array() {
            "batches are not supported; send one message at a time"
        } else {
            "a JSON-RPC message must be a JSON object"
        };
        return Err(invalid(None, RpcError::invalid_request(what), true));
    };

    // The id: number or string; null only in error responses.
    let raw_id = obj.remove("id");
    let has_id = raw_id.is_some();
    let id = match raw_id {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(Id::Number(n)),
        Some(Value::String(s)) => Some(Id::String(s)),
        Some(_) => {
            return Err(invalid(
                None,
                RpcError::invalid_request("`id` must be a number or a string"),
                true,
            ))
        }
    };
    let is_response = obj.contains_key("result") || obj.contains_key("error");
    let looks_like_notification = !has_id && obj.contains_key("method");

    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == JSONRPC_VERSION => {}
        _ => {
            return Err(invalid(
                id,
                RpcError::invalid_request("`jsonrpc` must be \"2.0\""),
                !is_response && !looks_like_notification,
            ))
        }
    }

    match obj.remove("method") {
        Some(Value::String(method)) => {
            if is_response {
                return Err(invalid(
                    id,
                    RpcError::invalid_request(
                        "a message cannot have both `method` and `result`/`error`",
                    ),
                    has_id,
                ));
            }
            let params = match obj.remove("params") {
                None => None,
                Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
                Some(_) => {
                    return Err(invalid(
                        id,
                        RpcError::invalid_params("`params` must be an object or an array"),
                        has_id,
                    ))
                }
            };
            match (has_id, id) {
                (true, Some(id)) => Ok(Message::Request(Request { id, method, params })),
                (true, None) => Err(invalid(
                    None,
                    RpcError::invalid_request("a request's `id` must not be null"),
                    true,
                )),
                (false, _) => Ok(Message::Notification(Notification { method, params })),
            }
        }
        Some(_) => Err(invalid(
            id,
            RpcError::invalid_request("`method` must be a string"),
            true,
        )),
        None => {
            if !has_id {
                return Err(invalid(
                    None,
                    RpcError::invalid_request(
                        "a message needs `method` (request/notification) or `id` with `result`/`error` (response)",
                    ),
                    !is_response,
                ));
            }
            let outcome = match (obj.remove("result"), obj.remove("error")) {
                (Some(result), None) => Ok(result),
                (None, Some(error)) => Err(RpcError::from_wire(&error).ok_or_else(|| {
                    invalid(
                        id.clone(),
                        RpcError::invalid_request(
                            "`error` must be an object with integer `code` and string `message`",
                        ),
                        false,
                    )
                })?),
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        id,
                        RpcError::invalid_request(
                            "a response cannot have both `result` and `error`",
                        ),
                        false,
                    ))
                }
                (None, None) => {
                    return Err(invalid(
                        id,
                        RpcError::invalid_request(
                            "a message with an `id` needs `method`, `result` or `error`",
                        ),
                        true,
                    ))
                }
            };
            if id.is_none() && outcome.is_ok() {
                return Err(invalid(
                    None,
                    RpcError::invalid_request("a successful response needs an `id`"),
                    false,
                ));
            }
            Ok(Message::Response(Response { id, outcome }))
        }
    }
}

#[derive(Serialize)]
struct RequestOut<'a> {
    jsonrpc: &'static str,
    id: &'a Id,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a Value>,
}

#[derive(Serialize)]
struct NotificationOut<'a> {
    jsonrpc: &'static str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a Value>,
}

#[derive(Serialize)]
struct ResultOut<'a, T: Serialize> {
    jsonrpc: &'static str,
    id: &'a Id,
    result: &'a T,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    jsonrpc: &'static str,
    id: Option<&'a Id>,
    error: &'a RpcError,
}

fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these shapes into a Vec cannot fail: keys are strings and
    // values are `Value`s or plain data. Fall back to an internal error
    // rather than panicking if a caller's `T` refuses.
    serde_json::to_vec(v).unwrap_or_else(|e| {
        format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":{},"message":{},"data":{{"kind":"other"}}}}}}"#,
            codes::INTERNAL_ERROR,
            Value::String(format!("could not serialise a message: {e}"))
        )
        .into_bytes()
    })
}

/// A success response `{"jsonrpc":"2.0","id":ID,"result":R}`.
pub fn result_response<T: Serialize>(id: &Id, result: &T) -> Vec<u8> {
    to_vec(&ResultOut {
        jsonrpc: JSONRPC_VERSION,
        id,
        result,
    })
}

/// An error response; `id` `None` is sent as `null`.
pub fn error_response(id: Option<&Id>, error: &RpcError) -> Vec<u8> {
    to_vec(&ErrorOut {
        jsonrpc: JSONRPC_VERSION,
        id,
        error,
    })
}

/// A notification `{"jsonrpc":"2.0","method":M,"params":P}`.
pub fn notification(method: &str, params: Option<&Value>) -> Vec<u8> {
    to_vec(&NotificationOut {
        jsonrpc: JSONRPC_VERSION,
        method,
        params,
    })
}

/// A request `{"jsonrpc":"2.0","id":ID,"method":M,"params":P}`.
pub fn request(id: &Id, method: &str, params: Option<&Value>) -> Vec<u8> {
    to_vec(&RequestOut {
        jsonrpc: JSONRPC_VERSION,
        id,
        method,
        params,
    })
}

impl Message {
    /// Compact serialisation.
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => request(&r.id, &r.method, r.params.as_ref()),
            Message::Notification(n) => notification(&n.method, n.params.as_ref()),
            Message::Response(Response {
                id: Some(id),
                outcome: Ok(result),
            }) => result_response(id, result),
            Message::Response(Response { id, outcome: Ok(_) }) => error_response(
                id.as_ref(),
                &RpcError::internal("a successful response without an id"),
            ),
            Message::Response(Response {
                id,
                outcome: Err(e),
            }) => error_response(id.as_ref(), e),
        }
    }
}

#[cfg(test)]
mod tests;

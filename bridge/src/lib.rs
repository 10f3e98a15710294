//! `distant-bridge`: the local process editors spawn. It speaks JSON-RPC 2.0
//! with LSP base-protocol framing on stdio and proxies remote language
//! servers.
//!
//! This crate currently holds the transport-independent foundations:
//!
//! - [`client`]: a JSON-RPC client over that framing (CLI verbs, the LSP
//!   proxy and tests talk to a bridge API server with it).
//! - [`framing`]: the LSP base protocol (`Content-Length` framing) as a
//!   tokio-util codec, with a strict (editor-side) and a lenient
//!   (language-server-side) mode.
//! - [`jsonrpc`]: the JSON-RPC 2.0 message model, error codes and the
//!   bridge's `error.data.kind` values.
//! - [`lsp`]: `distant-bridge lsp`, the proxy that runs a language server
//!   on the remote and rewrites URIs between the editor and it.
//! - [`uri_rewrite`]: the byte-preserving rewriter between editor-side
//!   `SCHEME://AUTHORITY/PATH` URIs and remote-side `file:///PATH` URIs.

pub mod api;
pub mod cli;
pub mod client;
pub mod demo;
pub mod framing;
pub mod jsonrpc;
pub mod lsp;
pub mod manager;
pub mod secrets;
pub mod stdio;
mod sync;
pub mod uri_rewrite;

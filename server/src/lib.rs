//! # distant-server
//!
//! The server side of distant: everything a session asks of the machine.
//! The network driver authenticates a connection and hands each session a
//! request receiver and a response sender; [`session::run_session`] does
//! the rest.
//!
//! Modules, each owning one job:
//!
//! - [`session`]: the per-session dispatcher — admission in arrival order,
//!   slow work in tasks, batches, clean shutdown.
//! - [`reply`]: [`reply::Outbox`] (numbered, bounded responses) and
//!   [`reply::ReplySink`] (streamed replies that never overtake their opener).
//! - [`limits`]: per-session caps.
//! - [`fs`]: files and paths — reads, atomic and chunked writes, directory
//!   operations, metadata, etags.
//! - [`system`]: `Version` and `SystemInfo`.
//! - [`errors`]: turning `io::Error`s into replies a person can act on.
//! - [`proc`]: processes on pipes or PTYs, LSP output framing.
//! - [`search`]: path and contents search with ripgrep's crates.
//! - [`watch`]: file watching with notify, debounced, polling fallback.
//! - [`index`]: the file index — every file under a root, paged.

pub mod errors;
pub mod fs;
mod globs;
mod jobs;
pub mod limits;
mod registry;
pub mod reply;
pub mod session;
mod sync;
pub mod system;

pub mod ports;
pub mod proc;
pub mod search;
pub mod tunnel;
pub mod watch;

pub mod index;

pub use limits::Limits;
pub use reply::{Outbox, ReplySink};
pub use session::run_session;

//! Per-session resource limits.
//!
//! Owns [`Limits`], the caps every session handler enforces (processes,
//! watches, searches, pending chunked writes, buffered stdin, TCP
//! connections and the bytes queued for them). Hitting one
//! is answered with `ErrorKind::LimitExceeded`, never by dropping work.

/// Largest offset + length a chunked write may reach (1 TiB): anything past
/// it is a client bug, not a file anyone means to create.
pub const MAX_WRITE_OFFSET: u64 = 1 << 40;

/// Caps on what one session may hold at once.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Live processes (including language servers).
    pub max_processes: usize,
    /// Active watches.
    pub max_watches: usize,
    /// Searches running at once.
    pub max_searches: usize,
    /// Chunked writes started but not yet finished or aborted.
    pub max_write_handles: usize,
    /// Bytes of stdin buffered for one process before `ProcStdin` is refused.
    pub max_stdin_buffer: usize,
    /// Open TCP connections (port forwarding).
    pub max_tcp_connections: usize,
    /// Bytes queued for one TCP connection's socket before `TcpSend` is refused.
    pub max_tcp_send_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_processes: 256,
            max_watches: 512,
            max_searches: 16,
            max_write_handles: 64,
            max_stdin_buffer: 4 * 1024 * 1024,
            max_tcp_connections: 1024,
            max_tcp_send_buffer: 4 * 1024 * 1024,
        }
    }
}

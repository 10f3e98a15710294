//! Per-session resource limits.
// placeholder: replaced by C1's version on merge

/// Per-session resource limits.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_processes: usize,
    pub max_watches: usize,
    pub max_searches: usize,
    pub max_write_handles: usize,
    pub max_stdin_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_processes: 256,
            max_watches: 512,
            max_searches: 16,
            max_write_handles: 64,
            max_stdin_buffer: 4 * 1024 * 1024,
        }
    }
}

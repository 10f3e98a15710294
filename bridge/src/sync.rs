//! Poison-tolerant locking. Every table behind these mutexes is updated by
//! single inserts, removals and field stores, so a panic elsewhere cannot
//! leave one torn; recovering the guard keeps one failed task from taking
//! every other user of the table down with it.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the guard if a previous holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

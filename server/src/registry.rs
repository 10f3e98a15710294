//! The running things of one session that clients address by number
//! (searches, watches): ids handed out in order from 1, a per-session cap,
//! "finished already" told apart from "never existed", and a closing flag
//! so nothing new starts once the session ends.

// Errors are the protocol's `Reply`, built once per request: boxing buys nothing.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use distant_protocol::msg::{ErrorKind, Reply};

use crate::sync::lock;

/// Live entries of one kind, by id.
pub(crate) struct Registry<T> {
    /// What an entry is, for messages ("search", "watch").
    noun: &'static str,
    table: Mutex<Table<T>>,
    closing: AtomicBool,
}

struct Table<T> {
    /// Last id handed out; ids start at 1.
    last_id: u64,
    live: HashMap<u64, T>,
}

impl<T> Registry<T> {
    pub(crate) fn new(noun: &'static str) -> Self {
        Self {
            noun,
            table: Mutex::new(Table {
                last_id: 0,
                live: HashMap::new(),
            }),
            closing: AtomicBool::new(false),
        }
    }

    /// An error once the session is closing (check before costly setup).
    pub(crate) fn check_open(&self) -> Result<(), Reply> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(Reply::error(
                ErrorKind::Other,
                format!("the session is closing; no new {} can start", self.noun),
            ));
        }
        Ok(())
    }

    /// Registers `value` and returns its id, unless the session is closing
    /// or `max` entries are live (then `over_limit` says what to do).
    pub(crate) fn admit(
        &self,
        max: usize,
        over_limit: impl FnOnce() -> String,
        value: T,
    ) -> Result<u64, Reply> {
        self.check_open()?;
        let mut table = lock(&self.table);
        if table.live.len() >= max {
            return Err(Reply::error(ErrorKind::LimitExceeded, over_limit()));
        }
        table.last_id += 1;
        let id = table.last_id;
        table.live.insert(id, value);
        Ok(id)
    }

    /// Forgets `id` (it finished), returning its entry if it was live.
    pub(crate) fn remove(&self, id: u64) -> Option<T> {
        lock(&self.table).live.remove(&id)
    }

    /// Runs `f` on the live entry `id`: `Ok(Some(_))`; `Ok(None)` when it
    /// finished already; an error naming the id when it never existed.
    pub(crate) fn with_live<R>(
        &self,
        id: u64,
        f: impl FnOnce(&T) -> R,
    ) -> Result<Option<R>, Reply> {
        let table = lock(&self.table);
        match table.live.get(&id) {
            Some(entry) => Ok(Some(f(entry))),
            None => self.finished_or_unknown(id, table.last_id),
        }
    }

    /// Like [`with_live`](Self::with_live) but takes the entry out.
    pub(crate) fn take(&self, id: u64) -> Result<Option<T>, Reply> {
        let mut table = lock(&self.table);
        match table.live.remove(&id) {
            Some(entry) => Ok(Some(entry)),
            None => self.finished_or_unknown(id, table.last_id),
        }
    }

    fn finished_or_unknown<R>(&self, id: u64, last_id: u64) -> Result<Option<R>, Reply> {
        if id > 0 && id <= last_id {
            Ok(None)
        } else {
            Err(Reply::error(
                ErrorKind::InvalidParams,
                format!("no {} {id} in this session", self.noun),
            ))
        }
    }

    /// Refuses new entries from now on.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Runs `f` on every live entry.
    pub(crate) fn for_each(&self, f: impl FnMut(&T)) {
        lock(&self.table).live.values().for_each(f);
    }

    /// Takes every live entry out.
    pub(crate) fn drain(&self) -> Vec<T> {
        lock(&self.table).live.drain().map(|(_, v)| v).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.table).live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(r: &Reply) -> ErrorKind {
        match r {
            Reply::Error(e) => e.kind,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn ids_in_order_limit_finished_unknown_and_closing() {
        let r = Registry::new("thing");
        assert_eq!(r.admit(2, || "full".into(), 'a').unwrap(), 1);
        assert_eq!(r.admit(2, || "full".into(), 'b').unwrap(), 2);
        let over = r.admit(2, || "raise --max-things".into(), 'c').unwrap_err();
        assert_eq!(kind(&over), ErrorKind::LimitExceeded);

        assert_eq!(r.with_live(1, |v| *v).unwrap(), Some('a'));
        assert_eq!(r.take(1).unwrap(), Some('a'));
        // Handed out but gone: finished, not an error.
        assert_eq!(r.take(1).unwrap(), None);
        assert_eq!(r.with_live(1, |v| *v).unwrap(), None);
        // Never handed out.
        assert_eq!(kind(&r.take(9).unwrap_err()), ErrorKind::InvalidParams);
        assert_eq!(kind(&r.take(0).unwrap_err()), ErrorKind::InvalidParams);

        // Room again after a removal; the next id keeps counting.
        assert_eq!(r.admit(2, || "full".into(), 'd').unwrap(), 3);
        r.close();
        assert_eq!(kind(&r.check_open().unwrap_err()), ErrorKind::Other);
        assert!(r.admit(5, || "full".into(), 'e').is_err());
        let mut seen = Vec::new();
        r.for_each(|v| seen.push(*v));
        seen.sort();
        assert_eq!(seen, ['b', 'd']);
        assert_eq!(r.drain().len(), 2);
        assert!(r.is_empty());
    }
}

//! Walks of one session that run on threads of their own and stream their
//! results (searches, file indexes): admission under the per-session limit
//! (`--max-searches`, shared in size), the thread, a panic turned into the
//! stream's error, cancellation, and shutdown when the session ends.
//!
//! A job's own module owns what it walks and what it sends; this module owns
//! only the life around it, so every such job is cancelled, counted and
//! finished the same way.

// Errors are the protocol's `Reply`, built once per request: boxing buys nothing.
#![allow(clippy::result_large_err)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use distant_protocol::msg::{ErrorKind, Reply};

use crate::registry::Registry;

/// One running walk, as its thread drives it.
pub(crate) trait Job: Send + 'static {
    /// Walks until done, truncated, cancelled or the client is gone.
    fn execute(&mut self);
    /// Sends what is still pending (called after `execute`, even after a panic).
    fn flush(&mut self);
    /// Sends the terminal reply unless the client is gone. `cancelled`: a
    /// cancel stopped it; `error`: it failed unexpectedly (a panic).
    fn finish(self, cancelled: bool, error: Option<String>);
}

/// The jobs of one kind in one session.
pub(crate) struct Jobs {
    /// What a job is ("search", "index"), for thread names and messages.
    noun: &'static str,
    /// Its plural, for the limit's message.
    plural: &'static str,
    /// What a failed job's partial output is ("results", "paths").
    output: &'static str,
    /// Running jobs and their cancel flags.
    running: Arc<Registry<Arc<AtomicBool>>>,
}

impl Jobs {
    pub(crate) fn new(noun: &'static str, plural: &'static str, output: &'static str) -> Self {
        Self {
            noun,
            plural,
            output,
            running: Arc::new(Registry::new(noun)),
        }
    }

    /// An error once the session is closing (check before costly setup).
    pub(crate) fn check_open(&self) -> Result<(), Reply> {
        self.running.check_open()
    }

    /// Admits a job under `max` running ones and starts it on its own
    /// thread: `make(id, cancel)` builds it there. Returns its id, or the
    /// error to answer with.
    pub(crate) fn start<J: Job>(
        &self,
        max: usize,
        make: impl FnOnce(u64, Arc<AtomicBool>) -> J + Send + 'static,
    ) -> Result<u64, Reply> {
        let cancel = Arc::new(AtomicBool::new(false));
        let plural = self.plural;
        let id = self.running.admit(
            max,
            || {
                format!(
                    "this session already runs {max} {plural}, the most allowed; cancel one \
                     or wait for one to finish, or start the server with a higher --max-searches"
                )
            },
            cancel.clone(),
        )?;
        let running = self.running.clone();
        let (noun, output) = (self.noun, self.output);
        let spawned = std::thread::Builder::new()
            .name(format!("{noun}-{id}"))
            .spawn(move || {
                let mut job = make(id, cancel.clone());
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.execute()));
                let error = outcome.err().map(|_| {
                    tracing::error!(id, "{noun} thread panicked");
                    format!("the {noun} failed unexpectedly; the {output} may be incomplete")
                });
                job.flush();
                running.remove(id);
                // Read after leaving the registry: a cancel that was answered
                // `Ok` set the flag before this point.
                job.finish(cancel.load(Ordering::SeqCst), error);
            });
        if let Err(e) = spawned {
            self.running.remove(id);
            return Err(Reply::error(
                ErrorKind::Other,
                format!("cannot start the {noun}: {e}"),
            ));
        }
        Ok(id)
    }

    /// Stops a running job → `Ok` (it still ends with its terminal reply);
    /// `Ok` too for one that finished already.
    pub(crate) fn cancel(&self, id: u64) -> Reply {
        match self
            .running
            .with_live(id, |flag| flag.store(true, Ordering::SeqCst))
        {
            Ok(_) => Reply::Ok,
            Err(reply) => reply,
        }
    }

    /// The session ended: cancel every job and wait briefly for them.
    pub(crate) async fn shutdown(&self) {
        self.running.close();
        self.running
            .for_each(|flag| flag.store(true, Ordering::SeqCst));
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.running.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

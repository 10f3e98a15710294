//! Shares inotify instances between the watches of one session.
//!
//! The kernel allows few inotify instances per user (128 by default) but
//! many watches per instance, and an editor watches every open file. So a
//! session's watches share one instance as long as their roots cannot
//! disturb each other inside it, and a new instance is made only for a root
//! that overlaps one already there (notify removes a recursive root's whole
//! subtree when it is unwatched, and keeps one descriptor per path). Two
//! watches of the same root in the same mode share the kernel watch and a
//! reference count. Events are delivered to every subscriber whose root
//! covers one of their paths; events without paths (a lost-events notice)
//! go to every subscriber of the instance.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Where a subscriber's raw events go.
pub(super) type EventTx = mpsc::Sender<notify::Result<Event>>;

/// The native (inotify) watchers of one session.
#[derive(Default)]
pub(super) struct Hub {
    instances: Mutex<Vec<Instance>>,
}

/// One inotify instance and the roots registered in it.
struct Instance {
    watcher: RecommendedWatcher,
    roots: Vec<Root>,
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
}

/// A root registered with the kernel, shared by `users` subscribers.
struct Root {
    path: PathBuf,
    /// The path with symlinks resolved, to see overlaps through links.
    canonical: PathBuf,
    recursive: bool,
    users: usize,
}

struct Subscriber {
    id: u64,
    root: PathBuf,
    recursive: bool,
    tx: EventTx,
    overflow: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Root {
    /// Whether registering `other` in the same instance could disturb this
    /// root (or be disturbed by it).
    fn overlaps(&self, canonical: &Path, recursive: bool) -> bool {
        self.canonical == canonical
            || (self.recursive && canonical.starts_with(&self.canonical))
            || (recursive && self.canonical.starts_with(canonical))
    }
}

impl Subscriber {
    fn covers(&self, path: &Path) -> bool {
        if self.recursive {
            path.starts_with(&self.root)
        } else {
            path == self.root || path.parent() == Some(self.root.as_path())
        }
    }

    fn deliver(&self, event: notify::Result<Event>) {
        // A full queue loses events: the watch tells its client to rescan.
        if self.tx.try_send(event).is_err() {
            self.overflow.store(true, Ordering::SeqCst);
        }
    }
}

fn mode(recursive: bool) -> RecursiveMode {
    if recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    }
}

impl Hub {
    /// Registers watch `id` on `root`. Blocking (a recursive watch walks the
    /// tree): call it off the async runtime. On error nothing is registered.
    pub(super) fn subscribe(
        &self,
        id: u64,
        root: &Path,
        recursive: bool,
        tx: &EventTx,
        overflow: &Arc<AtomicBool>,
    ) -> notify::Result<()> {
        let canonical = std::fs::canonicalize(root).map_err(notify::Error::io_watch)?;
        let subscriber = Subscriber {
            id,
            root: root.to_path_buf(),
            recursive,
            tx: tx.clone(),
            overflow: overflow.clone(),
        };
        let mut instances = lock(&self.instances);

        for instance in instances.iter_mut() {
            let same = instance
                .roots
                .iter_mut()
                .find(|r| r.path == root && r.recursive == recursive);
            if let Some(shared) = same {
                shared.users += 1;
                lock(&instance.subscribers).push(subscriber);
                return Ok(());
            }
        }

        let index = match instances
            .iter()
            .position(|i| !i.roots.iter().any(|r| r.overlaps(&canonical, recursive)))
        {
            Some(index) => index,
            None => {
                instances.push(Instance::new()?);
                instances.len() - 1
            }
        };
        let instance = &mut instances[index];
        // Subscribe first so events raised while the tree is walked arrive.
        lock(&instance.subscribers).push(subscriber);
        if let Err(e) = instance.watcher.watch(root, mode(recursive)) {
            lock(&instance.subscribers).retain(|s| s.id != id);
            if instance.roots.is_empty() {
                instances.swap_remove(index);
            }
            return Err(e);
        }
        instance.roots.push(Root {
            path: root.to_path_buf(),
            canonical,
            recursive,
            users: 1,
        });
        Ok(())
    }

    /// Removes watch `id`; the kernel watch goes when its last user does,
    /// and the instance when its last root does.
    pub(super) fn unsubscribe(&self, id: u64) {
        let mut instances = lock(&self.instances);
        let Some(index) = instances
            .iter()
            .position(|i| lock(&i.subscribers).iter().any(|s| s.id == id))
        else {
            return;
        };
        let instance = &mut instances[index];
        let (root, recursive) = {
            let mut subscribers = lock(&instance.subscribers);
            let at = subscribers
                .iter()
                .position(|s| s.id == id)
                .expect("found above");
            let s = subscribers.swap_remove(at);
            (s.root, s.recursive)
        };
        if let Some(at) = instance
            .roots
            .iter()
            .position(|r| r.path == root && r.recursive == recursive)
        {
            instance.roots[at].users -= 1;
            if instance.roots[at].users == 0 {
                instance.roots.swap_remove(at);
                // Fails harmlessly when the kernel already dropped the
                // watch (the root was deleted).
                let _ = instance.watcher.unwatch(&root);
            }
        }
        if instance.roots.is_empty() {
            instances.swap_remove(index);
        }
    }

    /// Watches `id`'s root again: it was replaced (an atomic save renames a
    /// new file over it) and the kernel watch followed the old inode away.
    pub(super) fn rearm(&self, id: u64) -> notify::Result<()> {
        let mut instances = lock(&self.instances);
        for instance in instances.iter_mut() {
            let found = lock(&instance.subscribers)
                .iter()
                .find(|s| s.id == id)
                .map(|s| (s.root.clone(), s.recursive));
            if let Some((root, recursive)) = found {
                let _ = instance.watcher.unwatch(&root);
                return instance.watcher.watch(&root, mode(recursive));
            }
        }
        Ok(())
    }
}

impl Instance {
    fn new() -> notify::Result<Self> {
        let subscribers: Arc<Mutex<Vec<Subscriber>>> = Arc::default();
        let watcher = RecommendedWatcher::new(
            {
                let subscribers = subscribers.clone();
                move |event: notify::Result<Event>| dispatch(&lock(&subscribers), event)
            },
            notify::Config::default(),
        )?;
        Ok(Self {
            watcher,
            roots: Vec::new(),
            subscribers,
        })
    }
}

/// Hands one raw event to every subscriber it concerns.
fn dispatch(subscribers: &[Subscriber], event: notify::Result<Event>) {
    let paths = match &event {
        Ok(e) => &e.paths,
        Err(e) => &e.paths,
    };
    let concerned = |s: &&Subscriber| paths.is_empty() || paths.iter().any(|p| s.covers(p));
    match &event {
        Ok(e) => subscribers
            .iter()
            .filter(concerned)
            .for_each(|s| s.deliver(Ok(e.clone()))),
        Err(e) => subscribers
            .iter()
            .filter(concerned)
            .for_each(|s| s.deliver(Err(duplicate(e)))),
    }
}

/// `notify::Error` is not `Clone`; this keeps what the watch task looks at
/// (the kind, the OS error code, the paths).
fn duplicate(e: &notify::Error) -> notify::Error {
    use notify::ErrorKind as K;
    let kind = match &e.kind {
        K::Generic(s) => K::Generic(s.clone()),
        K::Io(io) => K::Io(match io.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(io.kind(), io.to_string()),
        }),
        K::PathNotFound => K::PathNotFound,
        K::WatchNotFound => K::WatchNotFound,
        K::InvalidConfig(c) => K::InvalidConfig(*c),
        K::MaxFilesWatch => K::MaxFilesWatch,
    };
    notify::Error::new(kind).set_paths(e.paths.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(path: &str, recursive: bool) -> Root {
        Root {
            path: path.into(),
            canonical: path.into(),
            recursive,
            users: 1,
        }
    }

    #[test]
    fn overlap_rules() {
        // Siblings and files in a watched (non-recursive) dir can share.
        assert!(!root("/a", false).overlaps(Path::new("/a/x"), false));
        assert!(!root("/a/x", false).overlaps(Path::new("/a"), false));
        assert!(!root("/a", true).overlaps(Path::new("/b"), true));
        assert!(!root("/a", true).overlaps(Path::new("/ab"), false));
        // Anything under a recursive root, or a recursive root above.
        assert!(root("/a", true).overlaps(Path::new("/a/x"), false));
        assert!(root("/a/x", false).overlaps(Path::new("/a"), true));
        // The same inode under another mode or another spelling.
        assert!(root("/a", false).overlaps(Path::new("/a"), true));
        assert!(root("/a", false).overlaps(Path::new("/a"), false));
    }

    #[test]
    fn subscribers_see_only_what_they_cover() {
        let (tx, _rx) = mpsc::channel(1);
        let s = |root: &str, recursive| Subscriber {
            id: 0,
            root: root.into(),
            recursive,
            tx: tx.clone(),
            overflow: Arc::default(),
        };
        assert!(s("/a", false).covers(Path::new("/a")));
        assert!(s("/a", false).covers(Path::new("/a/x")));
        assert!(!s("/a", false).covers(Path::new("/a/x/y")));
        assert!(s("/a", true).covers(Path::new("/a/x/y")));
        assert!(!s("/a", true).covers(Path::new("/ab")));
    }

    #[test]
    fn full_queues_flag_overflow_instead_of_blocking() {
        let (tx, mut rx) = mpsc::channel(1);
        let s = Subscriber {
            id: 1,
            root: "/a".into(),
            recursive: false,
            tx,
            overflow: Arc::default(),
        };
        let event = || Ok(Event::new(notify::EventKind::Any).add_path("/a/x".into()));
        dispatch(std::slice::from_ref(&s), event());
        assert!(!s.overflow.load(Ordering::SeqCst));
        dispatch(std::slice::from_ref(&s), event());
        assert!(s.overflow.load(Ordering::SeqCst));
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn errors_keep_their_os_code() {
        let e = notify::Error::io(std::io::Error::from_raw_os_error(libc::EMFILE))
            .add_path("/x".into());
        let d = duplicate(&e);
        assert!(
            matches!(&d.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::EMFILE))
        );
        assert_eq!(d.paths, vec![PathBuf::from("/x")]);
    }
}

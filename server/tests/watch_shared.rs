//! Watches of one session share inotify instances: hundreds of watched
//! files cost one instance, overlapping roots get their own and stay
//! independent, a root watched twice survives one unwatch, and an
//! atomically replaced file keeps reporting to every watch of it.
//! One test in its own process, so the count of inotify descriptors is
//! this test's alone.

mod watching;

use std::path::{Path, PathBuf};

use distant_protocol::msg::{ChangeKind, Reply};
use distant_server::limits::Limits;
use distant_server::watch::Watches;
use watching::{is, root, watch, Watched};

/// Open inotify instances of this process.
fn inotify_instances() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.as_os_str() == "anon_inode:inotify")
        .count()
}

async fn unwatch(w: &Watches, s: &mut Watched) {
    assert_eq!(w.unwatch(s.id).await, Reply::Ok);
    assert_eq!(s.ended().await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_share_inotify_instances() {
    let baseline = inotify_instances();
    let dir = tempfile::tempdir().unwrap();
    let top = root(&dir);
    let limits = Limits {
        max_watches: 1000,
        ..Limits::default()
    };
    let w = Watches::new(limits);

    // 200 files in 20 directories, each watched, plus each directory:
    // more watches than the kernel's default of 128 instances per user.
    let mut files: Vec<(PathBuf, Watched)> = Vec::new();
    let mut dirs: Vec<(PathBuf, Watched)> = Vec::new();
    for d in 0..20 {
        let sub = top.join(format!("d{d}"));
        std::fs::create_dir(&sub).unwrap();
        for f in 0..10 {
            let file = sub.join(format!("f{f}.txt"));
            std::fs::write(&file, b"old").unwrap();
            files.push((file.clone(), watch(&w, &file, false, &[]).await));
        }
        dirs.push((sub.clone(), watch(&w, &sub, false, &[]).await));
    }
    assert_eq!(
        inotify_instances() - baseline,
        1,
        "220 watches, one instance"
    );
    for (file, _) in &files {
        std::fs::write(file, b"new").unwrap();
    }
    for (file, s) in &mut files {
        s.wait_for("its file modified", is(ChangeKind::Modified, file))
            .await;
        assert!(
            s.seen.iter().all(|c| Path::new(&c.path) == file.as_path()),
            "a file watch saw another file: {:?}",
            s.seen
        );
    }
    for (sub, s) in &mut dirs {
        let first = sub.join("f0.txt");
        s.wait_for("a child modified", is(ChangeKind::Modified, &first))
            .await;
    }
    for (_, s) in files.iter_mut().chain(dirs.iter_mut()) {
        unwatch(&w, s).await;
    }
    assert_eq!(inotify_instances(), baseline, "the instance is closed");

    // Overlapping roots: a recursive watch of `tree` and two watches of
    // `tree/sub` (the same root twice).
    let tree = top.join("tree");
    let sub = tree.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let mut whole = watch(&w, &tree, true, &[]).await;
    let mut sub_a = watch(&w, &sub, false, &[]).await;
    let mut sub_b = watch(&w, &sub, false, &[]).await;
    assert_eq!(inotify_instances() - baseline, 2);
    let x = sub.join("x");
    std::fs::write(&x, b"x").unwrap();
    for s in [&mut whole, &mut sub_a, &mut sub_b] {
        s.wait_for("x created", is(ChangeKind::Created, &x)).await;
    }
    unwatch(&w, &mut sub_a).await;
    let y = sub.join("y");
    std::fs::write(&y, b"y").unwrap();
    sub_b
        .wait_for("y created after the twin left", is(ChangeKind::Created, &y))
        .await;
    whole
        .wait_for("y created", is(ChangeKind::Created, &y))
        .await;
    unwatch(&w, &mut whole).await;
    let z = sub.join("z");
    std::fs::write(&z, b"z").unwrap();
    sub_b
        .wait_for(
            "z created after the recursive watch left",
            is(ChangeKind::Created, &z),
        )
        .await;
    unwatch(&w, &mut sub_b).await;
    assert_eq!(inotify_instances(), baseline);

    // A file watched twice and replaced by rename (an editor's atomic
    // save): both watches follow the new file.
    let saved = top.join("saved.txt");
    std::fs::write(&saved, b"1").unwrap();
    let mut one = watch(&w, &saved, false, &[]).await;
    let mut two = watch(&w, &saved, false, &[]).await;
    let tmp = top.join(".saved.txt.tmp");
    std::fs::write(&tmp, b"2").unwrap();
    std::fs::rename(&tmp, &saved).unwrap();
    for s in [&mut one, &mut two] {
        s.wait_for("the replacement", |c| Path::new(&c.path) == saved)
            .await;
    }
    // Let the debounce window close and the watches re-arm, then write the
    // new file in place until both report it.
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 50, "no modification of the replaced file seen");
        one.seen.clear();
        two.seen.clear();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        std::fs::write(&saved, format!("3-{rounds}")).unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            for s in [&mut one, &mut two] {
                s.wait_for("an in-place write", is(ChangeKind::Modified, &saved))
                    .await;
            }
        })
        .await;
        if got.is_ok() {
            break;
        }
    }
    unwatch(&w, &mut one).await;
    unwatch(&w, &mut two).await;
    assert_eq!(inotify_instances(), baseline);
}

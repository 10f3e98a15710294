//! Writes: atomicity, preconditions (etag), permissions, chunked writes.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use distant_protocol::msg::{ErrorKind, Op, Reply, WriteOptions, MAX_CHUNK};
use distant_server::Limits;

fn temp_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".distant-") && n.ends_with(".tmp"))
        .collect()
}

#[tokio::test]
async fn atomic_write_keeps_mode_and_replaces_inode() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("script.sh");
    fs::write(&p, b"old").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o751)).unwrap();
    let ino = fs::metadata(&p).unwrap().ino();
    let mut c = Client::start();
    let st = written(
        &c.write(&s(&p), b"new contents", WriteOptions::default())
            .await,
    );
    let m = fs::metadata(&p).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o751);
    assert_ne!(m.ino(), ino, "atomic write renamed a new file into place");
    assert_eq!(fs::read(&p).unwrap(), b"new contents");
    assert_eq!(st.size, 12);
    assert!(temp_files(dir.path()).is_empty());
    // A new file gets the default mode minus the umask (never 0).
    let n = dir.path().join("new");
    written(&c.write(&s(&n), b"x", WriteOptions::default()).await);
    assert_ne!(fs::metadata(&n).unwrap().permissions().mode() & 0o600, 0);
    // Non-atomic keeps the inode.
    let ino = fs::metadata(&p).unwrap().ino();
    written(
        &c.write(&s(&p), b"in place", opts(true, true, None, false))
            .await,
    );
    assert_eq!(fs::metadata(&p).unwrap().ino(), ino);
    assert_eq!(fs::read(&p).unwrap(), b"in place");
    c.close().await;
}

#[tokio::test]
async fn atomic_write_keeps_owner_when_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: only root can give a file to another owner");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("owned");
    fs::write(&p, b"old").unwrap();
    std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    let mut c = Client::start();
    written(&c.write(&s(&p), b"new", WriteOptions::default()).await);
    let m = fs::metadata(&p).unwrap();
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    c.close().await;
}

#[tokio::test]
async fn write_through_symlink_writes_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::write(&real, b"old").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("real", &link).unwrap();
    let mut c = Client::start();
    written(&c.write(&s(&link), b"new", WriteOptions::default()).await);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&real).unwrap(), b"new");
    c.close().await;
}

#[tokio::test]
async fn etag_conflict_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("doc.txt");
    let mut c = Client::start();
    let v1 = written(&c.write(&s(&p), b"v1", WriteOptions::default()).await);
    // Someone else changes the file.
    fs::write(&p, b"theirs").unwrap();
    for atomic in [true, false] {
        let r = c
            .write(&s(&p), b"mine", opts(true, true, Some(&v1.etag), atomic))
            .await;
        assert_eq!(err_kind(&r), ErrorKind::Conflict);
        assert!(
            err_msg(&r).contains("changed since you read it"),
            "{}",
            err_msg(&r)
        );
        assert_eq!(fs::read(&p).unwrap(), b"theirs");
        assert!(temp_files(dir.path()).is_empty());
    }
    // With the current etag the write goes through.
    let (_, now) = c.read(&s(&p)).await.unwrap();
    let v2 = written(
        &c.write(&s(&p), b"mine", opts(true, true, Some(&now.etag), true))
            .await,
    );
    assert_eq!(fs::read(&p).unwrap(), b"mine");
    // "" means must not exist.
    let r = c
        .write(&s(&p), b"x", opts(true, true, Some(""), true))
        .await;
    assert_eq!(err_kind(&r), ErrorKind::Conflict);
    let fresh = dir.path().join("fresh");
    written(
        &c.write(&s(&fresh), b"x", opts(true, true, Some(""), true))
            .await,
    );
    // A removed file conflicts with its old etag.
    fs::remove_file(&p).unwrap();
    let r = c
        .write(&s(&p), b"x", opts(true, true, Some(&v2.etag), true))
        .await;
    assert_eq!(err_kind(&r), ErrorKind::Conflict);
    assert!(!p.exists());
    c.close().await;
}

async fn start(c: &mut Client, path: &Path, options: WriteOptions) -> u64 {
    match c
        .call(Op::FileWriteStart {
            path: s(path),
            options,
        })
        .await
    {
        Reply::WriteHandle { handle } => handle,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn chunked_write_out_of_order_then_finish() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.bin");
    fs::write(&p, b"old").unwrap();
    let data: Vec<u8> = (0..(3 * MAX_CHUNK + 123))
        .map(|i| (i % 251) as u8)
        .collect();
    let mut c = Client::start();
    for atomic in [true, false] {
        let h = start(&mut c, &p, opts(true, true, None, atomic)).await;
        // Send every chunk at once, last first, then await every ack.
        let chunks: Vec<_> = data.chunks(MAX_CHUNK).enumerate().collect();
        let mut ids = Vec::new();
        for (i, chunk) in chunks.iter().rev() {
            ids.push(
                c.send(Op::FileWriteChunk {
                    handle: h,
                    offset: (i * MAX_CHUNK) as u64,
                    data: chunk.to_vec().into(),
                })
                .await,
            );
        }
        for id in ids {
            assert_eq!(c.reply_for(id).await, Reply::Ok);
        }
        assert_eq!(
            fs::read(&p).unwrap(),
            b"old",
            "target untouched until finish"
        );
        let st = written(&c.call(Op::FileWriteFinish { handle: h }).await);
        assert_eq!(st.size, data.len() as u64);
        assert_eq!(fs::read(&p).unwrap(), data);
        assert!(temp_files(dir.path()).is_empty());
        fs::write(&p, b"old").unwrap();
        // The handle is gone.
        let r = c.call(Op::FileWriteFinish { handle: h }).await;
        assert_eq!(err_kind(&r), ErrorKind::InvalidParams);
    }
    c.close().await;
}

#[tokio::test]
async fn chunked_write_abort_conflict_limits_and_bad_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    fs::write(&p, b"orig").unwrap();
    let limits = Limits {
        max_write_handles: 2,
        ..Limits::default()
    };
    let mut c = Client::start_with(64, limits);
    // Abort leaves the target and removes the temp file.
    let h = start(&mut c, &p, WriteOptions::default()).await;
    assert_eq!(temp_files(dir.path()).len(), 1);
    assert_eq!(
        c.call(Op::FileWriteChunk {
            handle: h,
            offset: 0,
            data: "new".into()
        })
        .await,
        Reply::Ok
    );
    assert_eq!(c.call(Op::FileWriteAbort { handle: h }).await, Reply::Ok);
    assert_eq!(fs::read(&p).unwrap(), b"orig");
    assert!(temp_files(dir.path()).is_empty());
    let r = c
        .call(Op::FileWriteChunk {
            handle: h,
            offset: 0,
            data: "x".into(),
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::InvalidParams);

    // Etag checked again at finish: a change in between is a conflict.
    let (_, st) = c.read(&s(&p)).await.unwrap();
    let h = start(&mut c, &p, opts(true, true, Some(&st.etag), true)).await;
    assert_eq!(
        c.call(Op::FileWriteChunk {
            handle: h,
            offset: 0,
            data: "mine".into()
        })
        .await,
        Reply::Ok
    );
    fs::write(&p, b"theirs!").unwrap();
    let r = c.call(Op::FileWriteFinish { handle: h }).await;
    assert_eq!(err_kind(&r), ErrorKind::Conflict);
    assert_eq!(fs::read(&p).unwrap(), b"theirs!");
    assert!(temp_files(dir.path()).is_empty());
    // Start checks preconditions too.
    let r = c
        .call(Op::FileWriteStart {
            path: s(&p),
            options: opts(true, true, Some(&st.etag), true),
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::Conflict);

    // Limits.
    let h1 = start(&mut c, &p, WriteOptions::default()).await;
    let _h2 = start(&mut c, &dir.path().join("g"), WriteOptions::default()).await;
    let r = c
        .call(Op::FileWriteStart {
            path: s(&dir.path().join("h")),
            options: WriteOptions::default(),
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::LimitExceeded);
    // Insane offsets and oversize chunks.
    for (offset, len) in [(u64::MAX - 1, 4), (1u64 << 41, 1), (0, MAX_CHUNK + 1)] {
        let r = c
            .call(Op::FileWriteChunk {
                handle: h1,
                offset,
                data: vec![0u8; len].into(),
            })
            .await;
        assert_eq!(err_kind(&r), ErrorKind::InvalidParams, "{offset} {len}");
    }
    // Session end discards pending writes.
    assert_eq!(temp_files(dir.path()).len(), 2);
    c.close().await;
    assert!(temp_files(dir.path()).is_empty());
    assert_eq!(fs::read(&p).unwrap(), b"theirs!");
}

const CHILD_ENV: &str = "DISTANT_TEST_KILLED_WRITE_TARGET";

/// In the child: start a chunked atomic write of the target, write a
/// chunk, say READY, and hang until killed.
fn killed_write_child(target: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::start();
        let h = start(&mut c, Path::new(target), WriteOptions::default()).await;
        assert_eq!(
            c.call(Op::FileWriteChunk {
                handle: h,
                offset: 0,
                data: vec![b'N'; 100_000].into()
            })
            .await,
            Reply::Ok
        );
        println!("\nDISTANT-CHILD-READY");
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    });
}

#[test]
fn atomic_write_killed_midway_leaves_the_old_file() {
    if let Ok(target) = std::env::var(CHILD_ENV) {
        killed_write_child(&target);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("precious.txt");
    fs::write(&p, b"the old contents").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "atomic_write_killed_midway_leaves_the_old_file",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, s(&p))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut ready = false;
    for line in out.lines() {
        if line.unwrap().trim().ends_with("DISTANT-CHILD-READY") {
            ready = true;
            break;
        }
    }
    assert!(ready, "child never got midway");
    // The temp file holds the partial write.
    assert_eq!(temp_files(dir.path()).len(), 1);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"the old contents");
}

/// The uid of the shared test user (`.ci/setup-ssh.sh` creates it).
fn other_uid() -> u32 {
    let name = std::ffi::CString::new("distant-test").unwrap();
    // SAFETY: getpwnam with a valid C string; the result is read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "the user distant-test is missing: run .ci/setup-ssh.sh"
    );
    // SAFETY: non-null passwd entry from getpwnam.
    unsafe { (*pw).pw_uid }
}

/// Issue 14, item 5: in a sticky world-writable directory (`/tmp`), a
/// symlink planted by another user does not redirect a save (the kernel's
/// `fs.protected_symlinks` rule, which it cannot apply to links the server
/// resolves itself); the user's own links, and links in other directories,
/// are still followed. Needs root (to own a link as another user).
#[tokio::test]
async fn a_symlink_planted_by_another_user_in_a_sticky_directory_is_not_followed() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to create a link owned by another user");
        return;
    }
    let other = other_uid();
    let shared = tempfile::tempdir().unwrap();
    fs::set_permissions(shared.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let private = tempfile::tempdir().unwrap();
    let victim = private.path().join("victim");
    fs::write(&victim, b"precious").unwrap();

    let planted = shared.path().join("notes.txt");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    std::os::unix::fs::lchown(&planted, Some(other), Some(other)).unwrap();
    let mut c = Client::start();
    for options in [
        WriteOptions::default(),
        WriteOptions {
            atomic: false,
            ..WriteOptions::default()
        },
    ] {
        match c.write(&s(&planted), b"attacker's choice", options).await {
            Reply::Error(e) => {
                assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e:?}");
                assert!(e.message.contains("owned by another user"), "{e:?}");
            }
            other => panic!("the planted link was followed: {other:?}"),
        }
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&planted).unwrap().is_symlink());
    }
    // The chunked path resolves the same way.
    match c
        .call(Op::FileWriteStart {
            path: s(&planted),
            options: WriteOptions::default(),
        })
        .await
    {
        Reply::Error(e) => assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e:?}"),
        other => panic!("the planted link was followed: {other:?}"),
    }

    // Our own link in the same directory is followed.
    let own = shared.path().join("own.txt");
    std::os::unix::fs::symlink(&victim, &own).unwrap();
    written(&c.write(&s(&own), b"mine", WriteOptions::default()).await);
    assert_eq!(fs::read(&victim).unwrap(), b"mine");
    // Another user's link in a directory that is not sticky is followed
    // too (the directory's owner chose to let it be there).
    let plain = private.path().join("theirs.txt");
    std::os::unix::fs::symlink(&victim, &plain).unwrap();
    std::os::unix::fs::lchown(&plain, Some(other), Some(other)).unwrap();
    written(
        &c.write(&s(&plain), b"via theirs", WriteOptions::default())
            .await,
    );
    assert_eq!(fs::read(&victim).unwrap(), b"via theirs");
    c.close().await;
}

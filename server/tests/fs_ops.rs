//! Files and paths ops through a session: happy paths and error cases.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use distant_protocol::msg::{ErrorKind, FileType, Op, Reply, WriteOptions};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn write_then_read_round_trips_binary_and_stamps_agree() {
    let dir = tempfile::tempdir().unwrap();
    let p = s(&dir.path().join("a.bin"));
    let mut c = Client::start();
    let data: Vec<u8> = (0..=255u8).cycle().take(3 * 1024 * 1024 + 17).collect();
    // Inline write up to MAX_INLINE_WRITE.
    let st = written(&c.write(&p, &data, WriteOptions::default()).await);
    assert_eq!(st.size, data.len() as u64);
    let (back, rst) = c.read(&p).await.unwrap();
    assert_eq!(back, data);
    assert_eq!(rst, st, "read and write stamp the same file identically");
    match c
        .call(Op::Metadata {
            path: p.clone(),
            follow_symlinks: false,
            hash: true,
        })
        .await
    {
        Reply::Metadata(m) => {
            assert_eq!(m.etag.as_deref(), Some(st.etag.as_str()));
            assert_eq!(m.size, data.len() as u64);
            assert_eq!(m.file_type, FileType::File);
            assert_eq!(m.sha256.unwrap(), hex::encode(Sha256::digest(&data)));
            assert_eq!(m.mtime, st.mtime);
        }
        other => panic!("{other:?}"),
    }
    // Small chunk size streams several chunks in order.
    let id = c
        .send(Op::FileRead {
            path: p.clone(),
            chunk_size: Some(1000),
            offset: 0,
            length: None,
        })
        .await;
    let mut n = 0;
    let mut chunks = 0;
    loop {
        match c.reply_for(id).await {
            Reply::FileChunk { offset, data } => {
                assert_eq!(offset, n);
                assert!(data.len() <= 1000);
                n += data.len() as u64;
                chunks += 1;
            }
            Reply::FileEnd(_) => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(n, data.len() as u64);
    assert!(chunks > 3000);
    c.close().await;
}

/// A byte range of a file: what clients use to read a huge file piece by
/// piece with bounded memory.
#[tokio::test]
async fn a_range_read_returns_exactly_that_range_and_the_whole_file_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let p = s(&dir.path().join("r.bin"));
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    fs::write(&p, &data).unwrap();
    let mut c = Client::start();
    for (offset, length, want) in [
        (0u64, Some(100u64), &data[..100]),
        (9_990, Some(100), &data[9_990..]),
        (5_000, None, &data[5_000..]),
        (20_000, Some(5), &data[..0]),
    ] {
        let id = c
            .send(Op::FileRead {
                path: p.clone(),
                chunk_size: Some(64),
                offset,
                length,
            })
            .await;
        let mut got = Vec::new();
        loop {
            match c.reply_for(id).await {
                Reply::FileChunk { offset: at, data } => {
                    assert_eq!(at, offset + got.len() as u64);
                    got.extend_from_slice(&data);
                }
                Reply::FileEnd(stamp) => {
                    assert_eq!(stamp.size, data.len() as u64);
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, want, "range {offset}+{length:?}");
    }
    c.close().await;
}

#[tokio::test]
async fn etag_changes_with_content_and_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("e.txt");
    let mut c = Client::start();
    let a = written(&c.write(&s(&p), b"one", opts(true, true, None, false)).await);
    let b = written(&c.write(&s(&p), b"two", opts(true, true, None, false)).await);
    assert_ne!(a.etag, b.etag, "same size, new content");
    // Only the mtime moves.
    let f = fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    let (_, st) = c.read(&s(&p)).await.unwrap();
    assert_ne!(st.etag, b.etag);
    assert_eq!(st.mtime, 1_000_000_000);
    c.close().await;
}

#[tokio::test]
async fn read_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::start();
    let missing = s(&dir.path().join("nope"));
    let (k, m) = c.read(&missing).await.unwrap_err();
    assert_eq!(k, ErrorKind::NotFound);
    assert!(m.contains(&missing), "{m}");
    let (k, m) = c.read(&s(dir.path())).await.unwrap_err();
    assert_eq!(k, ErrorKind::IsADirectory);
    assert!(m.contains("ReadDir"), "{m}");
    let (k, _) = c.read("").await.unwrap_err();
    assert_eq!(k, ErrorKind::InvalidParams);
    let (k, _) = c.read("/tmp/a\0b").await.unwrap_err();
    assert_eq!(k, ErrorKind::InvalidParams);
    // Empty file: no chunks, just the end.
    let empty = dir.path().join("empty");
    fs::write(&empty, b"").unwrap();
    let (data, st) = c.read(&s(&empty)).await.unwrap();
    assert!(data.is_empty());
    assert_eq!(st.size, 0);
    c.close().await;
}

#[tokio::test]
async fn write_errors_missing_parent_not_a_directory_exists_create() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::start();
    let p = dir.path().join("no/such/dir/f.txt");
    for atomic in [true, false] {
        let r = c.write(&s(&p), b"x", opts(true, true, None, atomic)).await;
        assert_eq!(err_kind(&r), ErrorKind::NotFound);
        let m = err_msg(&r);
        assert!(
            m.contains(&s(&dir.path().join("no/such/dir"))) && m.contains("parent"),
            "{m}"
        );
    }
    // Parent is a regular file: root cannot do this either.
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let r = c
        .write(&s(&file.join("child")), b"x", WriteOptions::default())
        .await;
    assert_eq!(err_kind(&r), ErrorKind::NotADirectory, "{r:?}");
    // overwrite false on an existing file.
    let r = c
        .write(&s(&file), b"y", opts(true, false, None, true))
        .await;
    assert_eq!(err_kind(&r), ErrorKind::AlreadyExists);
    assert!(err_msg(&r).contains("overwrite"));
    assert_eq!(fs::read(&file).unwrap(), b"x");
    // create false on a missing file.
    let r = c
        .write(
            &s(&dir.path().join("new")),
            b"y",
            opts(false, true, None, true),
        )
        .await;
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    assert!(!dir.path().join("new").exists());
    // Writing a directory.
    let r = c.write(&s(dir.path()), b"y", WriteOptions::default()).await;
    assert_eq!(err_kind(&r), ErrorKind::IsADirectory);
    // Too big for an inline write.
    let big = vec![0u8; distant_protocol::msg::MAX_INLINE_WRITE + 1];
    let r = c.write(&s(&file), &big, WriteOptions::default()).await;
    assert_eq!(err_kind(&r), ErrorKind::InvalidParams);
    assert!(err_msg(&r).contains("FileWriteStart"));
    c.close().await;
}

#[tokio::test]
async fn append_creates_and_extends() {
    let dir = tempfile::tempdir().unwrap();
    let p = s(&dir.path().join("log"));
    let mut c = Client::start();
    let a = written(
        &c.call(Op::FileAppend {
            path: p.clone(),
            data: "a\n".into(),
        })
        .await,
    );
    let b = written(
        &c.call(Op::FileAppend {
            path: p.clone(),
            data: "b\n".into(),
        })
        .await,
    );
    assert_eq!((a.size, b.size), (2, 4));
    assert_ne!(a.etag, b.etag);
    assert_eq!(fs::read(&p).unwrap(), b"a\nb\n");
    let r = c
        .call(Op::FileAppend {
            path: s(&dir.path().join("x/y")),
            data: "b".into(),
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    c.close().await;
}

fn tree(root: &std::path::Path) {
    fs::create_dir_all(root.join("b/c/d")).unwrap();
    fs::create_dir_all(root.join("a")).unwrap();
    fs::write(root.join("a/1.txt"), b"1").unwrap();
    fs::write(root.join("b/c/d/deep.txt"), b"d").unwrap();
    fs::write(root.join("z.txt"), b"z").unwrap();
    fs::write(root.join("a-b"), b"").unwrap();
    std::os::unix::fs::symlink("z.txt", root.join("link")).unwrap();
}

fn entries(r: Reply) -> Vec<(String, FileType, u64)> {
    match r {
        Reply::DirEntries { entries, errors } => {
            assert!(errors.is_empty(), "{errors:?}");
            entries
                .into_iter()
                .map(|e| (e.path, e.file_type, e.depth))
                .collect()
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn read_dir_sorted_with_depth_absolute_and_root() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let mut c = Client::start();
    let rd = |depth, absolute, include_root| Op::ReadDir {
        path: s(dir.path()),
        depth,
        absolute,
        include_root,
    };
    let one = entries(c.call(rd(1, false, false)).await);
    let names: Vec<_> = one.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["a", "a-b", "b", "link", "z.txt"]);
    assert_eq!(one[3].1, FileType::Symlink);
    assert_eq!(one[0].1, FileType::Dir);
    assert!(one.iter().all(|e| e.2 == 1));

    let two = entries(c.call(rd(2, false, false)).await);
    let names: Vec<_> = two.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["a", "a/1.txt", "a-b", "b", "b/c", "link", "z.txt"]);

    let all = entries(c.call(rd(0, false, false)).await);
    let names: Vec<_> = all.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "a",
            "a/1.txt",
            "a-b",
            "b",
            "b/c",
            "b/c/d",
            "b/c/d/deep.txt",
            "link",
            "z.txt"
        ]
    );
    assert_eq!(all[6].2, 4);

    let abs = entries(c.call(rd(1, true, true)).await);
    assert_eq!(abs[0], (s(dir.path()), FileType::Dir, 0));
    assert_eq!(abs[1].0, s(&dir.path().join("a")));

    // Errors: missing, and a file.
    let r = c
        .call(Op::ReadDir {
            path: s(&dir.path().join("missing")),
            depth: 1,
            absolute: false,
            include_root: false,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    let r = c
        .call(Op::ReadDir {
            path: s(&dir.path().join("z.txt")),
            depth: 1,
            absolute: false,
            include_root: false,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::NotADirectory);
    c.close().await;
}

#[tokio::test]
async fn create_dir_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::start();
    let deep = dir.path().join("x/y/z");
    let r = c
        .call(Op::CreateDir {
            path: s(&deep),
            all: false,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    let m = err_msg(&r);
    assert!(
        m.contains(&s(&dir.path().join("x/y"))) && m.contains("all"),
        "{m}"
    );
    assert_eq!(
        c.call(Op::CreateDir {
            path: s(&deep),
            all: true
        })
        .await,
        Reply::Ok
    );
    assert!(deep.is_dir());
    let r = c
        .call(Op::CreateDir {
            path: s(&deep),
            all: false,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::AlreadyExists);
    assert_eq!(
        c.call(Op::CreateDir {
            path: s(&deep),
            all: true
        })
        .await,
        Reply::Ok
    );
    fs::write(deep.join("f"), b"f").unwrap();

    // Non-empty directory without force.
    let x = s(&dir.path().join("x"));
    let r = c
        .call(Op::Remove {
            path: x.clone(),
            force: false,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::DirectoryNotEmpty);
    assert_eq!(
        err_msg(&r),
        format!(
            "cannot remove {x}: directory not empty (pass force to remove it and everything in it)"
        )
    );
    assert!(deep.join("f").exists());
    // File, then forced dir.
    assert_eq!(
        c.call(Op::Remove {
            path: s(&deep.join("f")),
            force: false
        })
        .await,
        Reply::Ok
    );
    assert_eq!(
        c.call(Op::Remove {
            path: x.clone(),
            force: true
        })
        .await,
        Reply::Ok
    );
    assert!(!dir.path().join("x").exists());
    let r = c
        .call(Op::Remove {
            path: x.clone(),
            force: true,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    // A symlink to a directory is removed as a link.
    fs::create_dir(dir.path().join("keep")).unwrap();
    fs::write(dir.path().join("keep/f"), b"").unwrap();
    std::os::unix::fs::symlink(dir.path().join("keep"), dir.path().join("l")).unwrap();
    assert_eq!(
        c.call(Op::Remove {
            path: s(&dir.path().join("l")),
            force: true
        })
        .await,
        Reply::Ok
    );
    assert!(dir.path().join("keep/f").exists());
    let r = c
        .call(Op::Remove {
            path: "/".into(),
            force: true,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::InvalidParams);
    c.close().await;
}

#[tokio::test]
async fn copy_files_trees_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tree(&src);
    fs::set_permissions(src.join("z.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    let mut c = Client::start();
    let dst = dir.path().join("dst");
    assert_eq!(
        c.call(Op::Copy {
            src: s(&src),
            dst: s(&dst),
            overwrite: None,
        })
        .await,
        Reply::Ok
    );
    assert_eq!(fs::read(dst.join("b/c/d/deep.txt")).unwrap(), b"d");
    assert_eq!(
        fs::read_link(dst.join("link")).unwrap(),
        std::path::Path::new("z.txt")
    );
    assert_eq!(
        fs::metadata(dst.join("z.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    // Destination exists (directory).
    let r = c
        .call(Op::Copy {
            src: s(&src),
            dst: s(&dst),
            overwrite: None,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::AlreadyExists);
    // Into itself.
    let r = c
        .call(Op::Copy {
            src: s(&src),
            dst: s(&src.join("a/inner")),
            overwrite: None,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::InvalidParams);
    // File over file overwrites; missing source; missing parent.
    assert_eq!(
        c.call(Op::Copy {
            src: s(&src.join("a/1.txt")),
            dst: s(&dst.join("z.txt")),
            overwrite: None,
        })
        .await,
        Reply::Ok
    );
    assert_eq!(fs::read(dst.join("z.txt")).unwrap(), b"1");
    let r = c
        .call(Op::Copy {
            src: s(&src.join("nope")),
            dst: s(&dst.join("n")),
            overwrite: None,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    let r = c
        .call(Op::Copy {
            src: s(&src.join("z.txt")),
            dst: s(&dir.path().join("q/r")),
            overwrite: None,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    assert!(err_msg(&r).contains(&s(&dir.path().join("q"))));
    c.close().await;
}

#[tokio::test]
async fn rename_respects_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    fs::write(&a, b"A").unwrap();
    fs::write(&b, b"B").unwrap();
    let mut c = Client::start();
    let r = c
        .call(Op::Rename {
            src: s(&a),
            dst: s(&b),
            overwrite: false,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::AlreadyExists);
    assert!(err_msg(&r).contains("overwrite"));
    assert_eq!(fs::read(&b).unwrap(), b"B");
    assert_eq!(
        c.call(Op::Rename {
            src: s(&a),
            dst: s(&b),
            overwrite: true
        })
        .await,
        Reply::Ok
    );
    assert_eq!(fs::read(&b).unwrap(), b"A");
    assert!(!a.exists());
    let r = c
        .call(Op::Rename {
            src: s(&a),
            dst: s(&dir.path().join("c")),
            overwrite: false,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    assert!(err_msg(&r).contains(&s(&a)));
    c.close().await;
}

#[tokio::test]
async fn exists_metadata_and_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, b"hello").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o444)).unwrap();
    std::os::unix::fs::symlink(&f, dir.path().join("l")).unwrap();
    std::os::unix::fs::symlink("gone", dir.path().join("dangling")).unwrap();
    let mut c = Client::start();
    for (p, want) in [
        (f.clone(), true),
        (dir.path().join("l"), true),
        (dir.path().join("dangling"), false),
        (dir.path().join("missing"), false),
        (f.join("under-a-file"), false),
    ] {
        assert_eq!(
            c.call(Op::Exists { path: s(&p) }).await,
            Reply::Exists(want),
            "{p:?}"
        );
    }
    let meta = |path: &std::path::Path, follow| Op::Metadata {
        path: s(path),
        follow_symlinks: follow,
        hash: false,
    };
    match c.call(meta(&dir.path().join("l"), false)).await {
        Reply::Metadata(m) => {
            assert_eq!(m.file_type, FileType::Symlink);
            assert_eq!(m.symlink_target.as_deref(), Some(s(&f).as_str()));
            assert_eq!(m.etag, None);
        }
        other => panic!("{other:?}"),
    }
    match c.call(meta(&dir.path().join("l"), true)).await {
        Reply::Metadata(m) => {
            assert_eq!(m.file_type, FileType::File);
            assert_eq!(m.size, 5);
            assert!(m.readonly);
            assert_eq!(m.mode, Some(0o444));
            assert!(m.etag.is_some());
            assert!(m.mtime > 1_600_000_000_000, "unix ms");
        }
        other => panic!("{other:?}"),
    }
    match c.call(meta(dir.path(), false)).await {
        Reply::Metadata(m) => assert_eq!(m.file_type, FileType::Dir),
        other => panic!("{other:?}"),
    }
    let r = c.call(meta(&dir.path().join("missing"), false)).await;
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    c.close().await;
}

#[tokio::test]
async fn set_permissions_mode_readonly_recursive() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    tree(&root);
    let mode = |p: &std::path::Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    let mut c = Client::start();
    let f = root.join("z.txt");
    assert_eq!(
        c.call(Op::SetPermissions {
            path: s(&f),
            mode: Some(0o600),
            readonly: None,
            recursive: false
        })
        .await,
        Reply::Ok
    );
    assert_eq!(mode(&f), 0o600);
    assert_eq!(
        c.call(Op::SetPermissions {
            path: s(&f),
            mode: None,
            readonly: Some(true),
            recursive: false
        })
        .await,
        Reply::Ok
    );
    assert_eq!(mode(&f), 0o400);
    assert_eq!(
        c.call(Op::SetPermissions {
            path: s(&f),
            mode: None,
            readonly: Some(false),
            recursive: false
        })
        .await,
        Reply::Ok
    );
    assert_eq!(mode(&f), 0o600);
    // Recursive: every file and dir, symlinks untouched.
    let link_mode_before = mode(&root.join("link"));
    assert_eq!(
        c.call(Op::SetPermissions {
            path: s(&root),
            mode: Some(0o750),
            readonly: None,
            recursive: true
        })
        .await,
        Reply::Ok
    );
    for p in ["a", "a/1.txt", "b/c/d", "b/c/d/deep.txt", "z.txt"] {
        assert_eq!(mode(&root.join(p)), 0o750, "{p}");
    }
    assert_eq!(mode(&root.join("link")), link_mode_before);
    for (m, ro) in [(None, None), (Some(0o10000), None)] {
        let r = c
            .call(Op::SetPermissions {
                path: s(&f),
                mode: m,
                readonly: ro,
                recursive: false,
            })
            .await;
        assert_eq!(err_kind(&r), ErrorKind::InvalidParams);
    }
    let r = c
        .call(Op::SetPermissions {
            path: s(&root.join("missing")),
            mode: Some(0o600),
            readonly: None,
            recursive: false,
        })
        .await;
    assert_eq!(err_kind(&r), ErrorKind::NotFound);
    c.close().await;
}

#[tokio::test]
async fn find_up_finds_nearest_marker() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proj");
    fs::create_dir_all(root.join("src/deep/er")).unwrap();
    fs::write(root.join("Cargo.toml"), b"").unwrap();
    fs::create_dir_all(root.join("src/deep/.git")).unwrap();
    fs::write(root.join("src/deep/er/main.rs"), b"").unwrap();
    let mut c = Client::start();
    let up = |path: std::path::PathBuf, names: &[&str]| Op::FindUp {
        path: s(&path),
        names: names.iter().map(|n| n.to_string()).collect(),
    };
    let some = |p: std::path::PathBuf| Reply::FoundUp(Some(s(&p)));
    assert_eq!(
        c.call(up(root.join("src/deep/er/main.rs"), &["Cargo.toml"]))
            .await,
        some(root.clone())
    );
    assert_eq!(
        c.call(up(
            root.join("src/deep/er/main.rs"),
            &["Cargo.toml", ".git"]
        ))
        .await,
        some(root.join("src/deep"))
    );
    // A directory is its own first candidate.
    assert_eq!(
        c.call(up(root.clone(), &["Cargo.toml"])).await,
        some(root.clone())
    );
    // A file that does not exist yet still searches from its directory.
    assert_eq!(
        c.call(up(root.join("src/new.rs"), &["Cargo.toml"])).await,
        some(root.clone())
    );
    assert_eq!(
        c.call(up(root.join("src"), &["no-such-marker-anywhere-3b1f"]))
            .await,
        Reply::FoundUp(None)
    );
    for bad in [&[][..], &["a/b"], &[""], &[".."]] {
        let r = c.call(up(root.clone(), bad)).await;
        assert_eq!(err_kind(&r), ErrorKind::InvalidParams, "{bad:?}");
    }
    c.close().await;
}

#[tokio::test]
async fn copy_with_overwrite_replaces_atomically_and_a_failed_copy_keeps_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.txt");
    fs::write(&a, b"new").unwrap();
    fs::write(&b, b"old").unwrap();
    let mut c = Client::start();
    let copy = |src: &std::path::Path, dst: &std::path::Path, overwrite: Option<bool>| Op::Copy {
        src: s(src),
        dst: s(dst),
        overwrite,
    };
    // overwrite: false refuses even file over file.
    let r = c.call(copy(&a, &b, Some(false))).await;
    assert_eq!(err_kind(&r), ErrorKind::AlreadyExists);
    assert!(err_msg(&r).contains("pass overwrite"), "{}", err_msg(&r));
    assert_eq!(fs::read(&b).unwrap(), b"old");
    // overwrite: true replaces it by a rename: a new inode, the new bytes.
    let before = fs::metadata(&b).unwrap().ino();
    assert_eq!(c.call(copy(&a, &b, Some(true))).await, Reply::Ok);
    assert_eq!(fs::read(&b).unwrap(), b"new");
    assert_ne!(fs::metadata(&b).unwrap().ino(), before);

    // A copy that fails half-way (reading /proc/self/mem fails at offset
    // 0) keeps the destination and leaves no temporary file.
    fs::write(&b, b"keep me").unwrap();
    for overwrite in [Some(true), None] {
        let r = c
            .call(copy(std::path::Path::new("/proc/self/mem"), &b, overwrite))
            .await;
        assert!(matches!(r, Reply::Error { .. }), "{r:?}");
        assert_eq!(fs::read(&b).unwrap(), b"keep me");
    }
    // A directory over a directory (overwrite: true); one that fails on a
    // FIFO inside keeps the old directory whole.
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/f"), b"from src").unwrap();
    fs::create_dir_all(&dst).unwrap();
    fs::write(dst.join("old"), b"old tree").unwrap();
    let r = c.call(copy(&src, &dst, None)).await;
    assert_eq!(err_kind(&r), ErrorKind::AlreadyExists);
    let bad = dir.path().join("bad");
    fs::create_dir_all(&bad).unwrap();
    fs::write(bad.join("a"), b"a").unwrap();
    let fifo = std::ffi::CString::new(s(&bad.join("z-fifo"))).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let r = c.call(copy(&bad, &dst, Some(true))).await;
    assert_eq!(err_kind(&r), ErrorKind::Unsupported, "{r:?}");
    assert_eq!(fs::read(dst.join("old")).unwrap(), b"old tree");
    assert_eq!(c.call(copy(&src, &dst, Some(true))).await, Reply::Ok);
    assert_eq!(fs::read(dst.join("sub/f")).unwrap(), b"from src");
    assert!(!dst.join("old").exists());
    // A file over a directory, with overwrite.
    assert_eq!(c.call(copy(&a, &dst, Some(true))).await, Reply::Ok);
    assert_eq!(fs::read(&dst).unwrap(), b"new");
    let mut left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["a.txt", "b.txt", "bad", "dst", "src"],
        "no temporaries left"
    );
    c.close().await;
}

// The FileSystemProvider against a real bridge and a real local server.
import "./helpers/register";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  readdirSync,
  statSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import * as vscode from "vscode";
import { DistantFileSystemProvider, READ_RANGE, WRITE_RANGE } from "../src/fileSystemProvider";
import { Harness, eventually, startHarness } from "./helpers/harness";

let h: Harness;
let fs: DistantFileSystemProvider;
const uri = (path: string) => vscode.Uri.parse(`distant://local${path}`);

/** Asserts that `promise` rejects with a FileSystemError of `code`. */
async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof vscode.FileSystemError, `not a FileSystemError: ${error}`);
    assert.equal((error as vscode.FileSystemError).code, code);
    if (message) assert.match((error as Error).message, message);
    return true;
  });
}

before(() => {
  h = startHarness();
  fs = new DistantFileSystemProvider(h.bridge, h.connections);
});
after(async () => {
  fs.dispose();
  await h.dispose();
});

describe("stat and readDirectory", () => {
  test("stat of a file, a directory, a symlink and a missing path", async () => {
    writeFileSync(join(h.dir, "a.txt"), "hello");
    mkdirSync(join(h.dir, "sub"));
    symlinkSync(join(h.dir, "sub"), join(h.dir, "link"));
    const file = await fs.stat(uri(`${h.dir}/a.txt`));
    assert.equal(file.type, vscode.FileType.File);
    assert.equal(file.size, 5);
    assert.ok(Math.abs(file.mtime - Date.now()) < 60_000, `mtime ${file.mtime} is not in ms`);
    assert.equal((await fs.stat(uri(`${h.dir}/sub`))).type, vscode.FileType.Directory);
    assert.equal(
      (await fs.stat(uri(`${h.dir}/link`))).type,
      vscode.FileType.Directory | vscode.FileType.SymbolicLink,
    );
    await rejectsWith(fs.stat(uri(`${h.dir}/missing`)), "FileNotFound");
  });

  test("readDirectory lists names with their types", async () => {
    const entries = new Map(await fs.readDirectory(uri(h.dir)));
    assert.equal(entries.get("a.txt"), vscode.FileType.File);
    assert.equal(entries.get("sub"), vscode.FileType.Directory);
    assert.equal(entries.get("link"), vscode.FileType.Directory | vscode.FileType.SymbolicLink);
    assert.deepEqual([...entries.keys()].sort(), readdirSync(h.dir).sort());
  });
});

describe("readFile and writeFile", () => {
  test("round trip of binary content", async () => {
    const bytes = new Uint8Array([0, 1, 2, 0xff, 0xfe, 10, 13, 0xc3]);
    await fs.writeFile(uri(`${h.dir}/bin`), bytes, {
      create: true,
      overwrite: false,
    });
    assert.deepEqual(new Uint8Array(readFileSync(join(h.dir, "bin"))), bytes);
    assert.deepEqual(await fs.readFile(uri(`${h.dir}/bin`)), bytes);
  });

  test("a file larger than one range is read whole, byte for byte", async () => {
    const size = READ_RANGE * 2 + 12345;
    const bytes = randomBytes(size);
    writeFileSync(join(h.dir, "big"), bytes);
    const read = await fs.readFile(uri(`${h.dir}/big`));
    assert.equal(read.length, size);
    assert.ok(Buffer.from(read).equals(bytes), "content differs");
  });

  test("a file larger than one range is saved whole and atomically, with its mode, etag-checked", async () => {
    const path = `${h.dir}/big-save`;
    writeFileSync(path, "old");
    chmodSync(path, 0o640);
    await fs.readFile(uri(path));
    const bytes = randomBytes(WRITE_RANGE * 2 + 777);
    await fs.writeFile(uri(path), bytes, { create: true, overwrite: true });
    assert.ok(readFileSync(path).equals(bytes), "content differs");
    assert.equal(statSync(path).mode & 0o777, 0o640, "the file keeps its mode");
    assert.deepEqual(
      readdirSync(h.dir).filter((n) => n.includes(".distant-")),
      [],
      "no temporary file is left",
    );
    // Changed elsewhere since: the whole chunked save is refused.
    writeFileSync(path, "theirs");
    await rejectsWith(
      fs.writeFile(uri(path), randomBytes(WRITE_RANGE + 1), { create: true, overwrite: true }),
      "Unavailable",
      /changed on the remote/,
    );
    assert.equal(readFileSync(path, "utf8"), "theirs");
  });

  test("create/overwrite flags", async () => {
    const path = `${h.dir}/flags.txt`;
    const data = (s: string) => new TextEncoder().encode(s);
    await rejectsWith(fs.writeFile(uri(path), data("x"), { create: false, overwrite: true }), "FileNotFound");
    assert.equal(existsSync(join(h.dir, "flags.txt")), false);
    await fs.writeFile(uri(path), data("one"), {
      create: true,
      overwrite: false,
    });
    await rejectsWith(fs.writeFile(uri(path), data("two"), { create: true, overwrite: false }), "FileExists");
    assert.equal(readFileSync(path, "utf8"), "one");
    await fs.writeFile(uri(path), data("three"), {
      create: false,
      overwrite: true,
    });
    assert.equal(readFileSync(path, "utf8"), "three");
  });

  test("an external change since the last read is a conflict; nothing is written", async () => {
    const path = `${h.dir}/conflict.txt`;
    writeFileSync(path, "original");
    assert.equal(new TextDecoder().decode(await fs.readFile(uri(path))), "original");
    // Someone else writes (different size, so the etag changes for sure).
    writeFileSync(path, "changed elsewhere");
    await rejectsWith(
      fs.writeFile(uri(path), new TextEncoder().encode("mine"), {
        create: true,
        overwrite: true,
      }),
      "Unavailable",
      /changed on the remote/,
    );
    assert.equal(readFileSync(path, "utf8"), "changed elsewhere");
    // After reading again, the save goes through.
    await fs.readFile(uri(path));
    await fs.writeFile(uri(path), new TextEncoder().encode("mine"), {
      create: true,
      overwrite: true,
    });
    assert.equal(readFileSync(path, "utf8"), "mine");
    // The workbench's own "Overwrite" (after its conflict dialog) stats, then writes: that goes through.
    writeFileSync(path, "changed elsewhere again");
    await fs.stat(uri(path));
    await fs.writeFile(uri(path), new TextEncoder().encode("overwritten"), { create: true, overwrite: true });
    assert.equal(readFileSync(path, "utf8"), "overwritten");
    // A file deleted on the remote is recreated by the workbench's save (stat, then write).
    await fs.readFile(uri(path));
    rmSync(path);
    await rejectsWith(fs.stat(uri(path)), "FileNotFound");
    await fs.writeFile(uri(path), new TextEncoder().encode("mine"), { create: true, overwrite: true });
    assert.equal(readFileSync(path, "utf8"), "mine");
    // And our own write refreshed the etag: a second save is no conflict.
    await fs.writeFile(uri(path), new TextEncoder().encode("mine again"), {
      create: true,
      overwrite: true,
    });
    assert.equal(readFileSync(path, "utf8"), "mine again");
  });
});

describe("tree operations", () => {
  test("createDirectory, then again is FileExists; under a file is FileNotADirectory", async () => {
    await fs.createDirectory(uri(`${h.dir}/made`));
    assert.ok(existsSync(join(h.dir, "made")));
    await rejectsWith(fs.createDirectory(uri(`${h.dir}/made`)), "FileExists");
    writeFileSync(join(h.dir, "plain"), "x");
    await rejectsWith(fs.createDirectory(uri(`${h.dir}/plain/child`)), "FileNotADirectory");
  });

  test("a path the OS refuses is NoPermissions", async () => {
    // root passes permission bits, so as root use a place the kernel refuses.
    let path = "/sys/distant-vscode-test";
    if (process.getuid?.() !== 0) {
      mkdirSync(join(h.dir, "locked"), { mode: 0o500 });
      path = `${h.dir}/locked/child`;
    }
    await rejectsWith(fs.createDirectory(uri(path)), "NoPermissions");
  });

  test("reading a directory is FileIsADirectory", async () => {
    await rejectsWith(fs.readFile(uri(`${h.dir}/made`)), "FileIsADirectory");
  });

  test("delete: a non-empty directory needs recursive", async () => {
    mkdirSync(join(h.dir, "tree/deep"), { recursive: true });
    writeFileSync(join(h.dir, "tree/deep/f"), "x");
    await assert.rejects(fs.delete(uri(`${h.dir}/tree`), { recursive: false }));
    assert.ok(existsSync(join(h.dir, "tree/deep/f")));
    await fs.delete(uri(`${h.dir}/tree`), { recursive: true });
    assert.equal(existsSync(join(h.dir, "tree")), false);
    await rejectsWith(fs.delete(uri(`${h.dir}/tree`), { recursive: true }), "FileNotFound");
  });

  test("rename honours overwrite", async () => {
    writeFileSync(join(h.dir, "r1"), "one");
    writeFileSync(join(h.dir, "r2"), "two");
    await rejectsWith(fs.rename(uri(`${h.dir}/r1`), uri(`${h.dir}/r2`), { overwrite: false }), "FileExists");
    assert.equal(readFileSync(join(h.dir, "r2"), "utf8"), "two");
    await fs.rename(uri(`${h.dir}/r1`), uri(`${h.dir}/r2`), {
      overwrite: true,
    });
    assert.equal(readFileSync(join(h.dir, "r2"), "utf8"), "one");
    assert.equal(existsSync(join(h.dir, "r1")), false);
  });

  test("copy honours overwrite, and copies directories", async () => {
    writeFileSync(join(h.dir, "c1"), "source");
    writeFileSync(join(h.dir, "c2"), "target");
    await rejectsWith(fs.copy(uri(`${h.dir}/c1`), uri(`${h.dir}/c2`), { overwrite: false }), "FileExists");
    assert.equal(readFileSync(join(h.dir, "c2"), "utf8"), "target");
    await fs.copy(uri(`${h.dir}/c1`), uri(`${h.dir}/c2`), { overwrite: true });
    assert.equal(readFileSync(join(h.dir, "c2"), "utf8"), "source");
    // A copy that fails half-way (reading /proc/self/mem fails) keeps the
    // destination: the server copies to a temporary name, then renames.
    await assert.rejects(fs.copy(uri("/proc/self/mem"), uri(`${h.dir}/c2`), { overwrite: true }));
    assert.equal(readFileSync(join(h.dir, "c2"), "utf8"), "source");
    mkdirSync(join(h.dir, "cdir"));
    writeFileSync(join(h.dir, "cdir/inner"), "in");
    await fs.copy(uri(`${h.dir}/cdir`), uri(`${h.dir}/cdir2`), {
      overwrite: false,
    });
    assert.equal(readFileSync(join(h.dir, "cdir2/inner"), "utf8"), "in");
  });
});

describe("watch", () => {
  test("created, changed, deleted and renamed files reach onDidChangeFile", async () => {
    mkdirSync(join(h.dir, "watched"));
    const root = `${h.dir}/watched`;
    const seen: { type: vscode.FileChangeType; path: string }[] = [];
    const sub = fs.onDidChangeFile((events) =>
      seen.push(...events.map((e) => ({ type: e.type, path: e.uri.path }))),
    );
    const watch = fs.watch(uri(root), { recursive: true, excludes: [] });
    const has = (type: vscode.FileChangeType, path: string) =>
      seen.some((e) => e.type === type && e.path === path);
    try {
      // The watch starts asynchronously; keep touching until the first event lands.
      await eventually(
        "the watch to report a created file",
        () => {
          writeFileSync(join(root, "new.txt"), `x${Date.now()}`);
          return (
            has(vscode.FileChangeType.Created, `${root}/new.txt`) ||
            has(vscode.FileChangeType.Changed, `${root}/new.txt`)
          );
        },
        10000,
      );
      writeFileSync(join(root, "new.txt"), "more content");
      await eventually("a changed event", () => has(vscode.FileChangeType.Changed, `${root}/new.txt`));
      await fs.rename(uri(`${root}/new.txt`), uri(`${root}/moved.txt`), {
        overwrite: false,
      });
      await eventually("the rename as created", () =>
        has(vscode.FileChangeType.Created, `${root}/moved.txt`),
      );
      await eventually("the rename as deleted", () => has(vscode.FileChangeType.Deleted, `${root}/new.txt`));
      await fs.delete(uri(`${root}/moved.txt`), { recursive: false });
      await eventually("a deleted event", () => has(vscode.FileChangeType.Deleted, `${root}/moved.txt`));
      assert.equal(fs.watchCount, 1);
    } finally {
      watch.dispose();
      sub.dispose();
    }
    assert.equal(fs.watchCount, 0);
  });
});

describe("watching what does not exist yet", () => {
  test("a watch on a missing path reports its creation, then its changes", async () => {
    const target = `${h.dir}/later/.vscode/settings.json`;
    mkdirSync(join(h.dir, "later"));
    const seen: { type: vscode.FileChangeType; path: string }[] = [];
    const sub = fs.onDidChangeFile((events) =>
      seen.push(...events.map((e) => ({ type: e.type, path: e.uri.path }))),
    );
    const watch = fs.watch(uri(target), { recursive: false, excludes: [] });
    try {
      await eventually("the ancestor watch", () => (fs as any).watches.values().next().value?.watchId);
      writeFileSync(join(h.dir, "later", "unrelated.txt"), "x");
      mkdirSync(join(h.dir, "later", ".vscode"));
      writeFileSync(target, "{}");
      await eventually("the creation of the target", () =>
        seen.some((e) => e.type === vscode.FileChangeType.Created && e.path === target),
      );
      assert.ok(
        seen.every((e) => e.path === target),
        `events about other paths leaked: ${JSON.stringify(seen)}`,
      );
      // Now watched directly: a change to it is reported.
      await eventually(
        "a change of the target",
        () => {
          writeFileSync(target, `{"n": ${Date.now()}}`);
          return seen.some((e) => e.type === vscode.FileChangeType.Changed && e.path === target);
        },
        10000,
      );
    } finally {
      watch.dispose();
      sub.dispose();
    }
  });
});

describe("connection on demand", () => {
  test("a burst of calls on a fresh authority makes one connect", async () => {
    await h.connections.disconnect("local");
    const requests: string[] = [];
    const original = h.bridge.request.bind(h.bridge);
    h.bridge.request = (method: string, params: object, token?: any) => {
      requests.push(method);
      return original(method, params, token);
    };
    try {
      await Promise.all(Array.from({ length: 8 }, () => fs.stat(uri(h.dir))));
      assert.equal(requests.filter((m) => m === "connect").length, 1);
    } finally {
      h.bridge.request = original;
    }
  });
});

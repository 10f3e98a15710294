// Find in Files as a view, against the real bridge: results grouped by file
// with highlights, include/exclude globs, case and regex, cancel, and replace
// (one file, all) through a WorkspaceEdit whose documents are read and saved
// through the real FileSystemProvider (so its etag check applies).
import "./helpers/register";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as vscode from "vscode";
import { DistantFileSystemProvider } from "../src/fileSystemProvider";
import { FindInFiles, FindOptions, replacementFor, utf16Ranges } from "../src/findInFiles";
import { eventually, Harness, startHarness } from "./helpers/harness";
import { recorded, WorkspaceEdit } from "./helpers/vscode-stub";

const literal = (pattern: string, more: Partial<FindOptions> = {}): FindOptions => ({
  pattern,
  regex: false,
  caseSensitive: false,
  include: [],
  exclude: [],
  ...more,
});

describe("find in files, pure parts", () => {
  test("byte offsets become UTF-16 ranges", () => {
    // "é" is 2 bytes, "😀" 4 bytes and 2 UTF-16 units.
    const text = "é😀 needle";
    assert.deepEqual(utf16Ranges(text, [{ start: 7, end: 13 }]), [[4, 10]]);
    assert.equal(text.slice(4, 10), "needle");
  });

  test("regex replacements use the match's groups; literal ones are as typed", () => {
    assert.equal(replacementFor("foo(1)", literal("foo(1)"), "$1"), "$1");
    assert.equal(
      replacementFor("key=value", literal("(\\w+)=(\\w+)", { regex: true }), "$2=$1"),
      "value=key",
    );
    assert.equal(replacementFor("ABC", literal("abc", { regex: true }), "x"), "x");
  });
});

describe("find in files against the real bridge", () => {
  let h: Harness;
  let find: FindInFiles;
  let fs: DistantFileSystemProvider;
  let root: string;
  let folder: vscode.Uri;
  /** Files changed behind the editor's back while an edit is applied. */
  let meddle: (() => void) | undefined;

  before(() => {
    h = startHarness();
    fs = new DistantFileSystemProvider(h.bridge, h.connections);
    find = new FindInFiles(h.connections);
    root = join(h.dir, "proj");
    mkdirSync(join(root, "src"), { recursive: true });
    mkdirSync(join(root, "vendor"), { recursive: true });
    writeFileSync(join(root, "src", "a.ts"), "const needle = 1;\n// Needle again: needle\n");
    writeFileSync(join(root, "src", "b.ts"), "let x = needle + needle;\n");
    writeFileSync(join(root, "notes.md"), "a needle in notes\n");
    writeFileSync(join(root, "vendor", "lib.ts"), "needle\n");
    folder = vscode.Uri.parse(`distant://local${root}`);

    // Documents read and saved through the real provider.
    const docs = new Map<string, { text: string; uri: vscode.Uri }>();
    recorded.openTextDocument = async (uri: any) => {
      const text = Buffer.from(await fs.readFile(uri)).toString("utf8");
      const state = { text, uri };
      docs.set(uri.toString(), state);
      const lines = () => state.text.split("\n");
      return {
        uri,
        get lineCount() {
          return lines().length;
        },
        lineAt: (i: number) => ({ text: lines()[i] }),
        save: async () => {
          try {
            await fs.writeFile(uri, Buffer.from(state.text), { create: false, overwrite: true });
            return true;
          } catch {
            return false;
          }
        },
      };
    };
    recorded.applyEdit = async (edit: WorkspaceEdit) => {
      const byDoc = new Map<string, typeof edit.edits>();
      for (const e of edit.edits) byDoc.set(e.uri.toString(), [...(byDoc.get(e.uri.toString()) ?? []), e]);
      for (const [key, edits] of byDoc) {
        const doc = docs.get(key)!;
        const lines = doc.text.split("\n");
        // Right to left within a line, so earlier ranges stay valid.
        edits.sort(
          (a, b) =>
            b.range.start.line - a.range.start.line || b.range.start.character - a.range.start.character,
        );
        for (const e of edits) {
          const l = lines[e.range.start.line];
          lines[e.range.start.line] =
            l.slice(0, e.range.start.character) + e.text + l.slice(e.range.end.character);
        }
        doc.text = lines.join("\n");
      }
      meddle?.();
      meddle = undefined;
      return true;
    };
  });

  after(async () => {
    recorded.openTextDocument = undefined;
    recorded.applyEdit = undefined;
    find.dispose();
    fs.dispose();
    await h.dispose();
  });

  const summary = () =>
    find
      .results()
      .map((f) => [f.rel, f.matches.map((m) => [m.line + 1, m.ranges.map((r) => m.text.slice(r[0], r[1]))])]);

  test("results grouped by file with each match's ranges; any case by default", async () => {
    await find.search(folder, literal("needle"));
    await find.done();
    assert.deepEqual(summary(), [
      ["notes.md", [[1, ["needle"]]]],
      [
        "src/a.ts",
        [
          [1, ["needle"]],
          [2, ["Needle", "needle"]],
        ],
      ],
      ["src/b.ts", [[1, ["needle", "needle"]]]],
      ["vendor/lib.ts", [[1, ["needle"]]]],
    ]);
    assert.match(String(find.view.message), /7 results in 4 files/);
    // The tree: files, then their matches with highlights and a command to open at the match.
    const [notes] = find.getChildren();
    const match = find.getChildren(notes)[0];
    const item = find.getTreeItem(match) as any;
    assert.deepEqual(item.label, { label: "a needle in notes", highlights: [[2, 8]] });
    assert.equal(item.command.command, "vscode.open");
  });

  test("case, regex and include/exclude globs", async () => {
    await find.search(folder, literal("Needle", { caseSensitive: true }));
    await find.done();
    assert.deepEqual(summary(), [["src/a.ts", [[2, ["Needle"]]]]]);
    await find.search(
      folder,
      literal("needle \\+ \\w+", { regex: true, include: ["src/**"], exclude: ["a.ts"] }),
    );
    await find.done();
    assert.deepEqual(summary(), [["src/b.ts", [[1, ["needle + needle"]]]]]);
    await find.search(folder, literal("needle", { exclude: ["vendor", "*.md"] }));
    await find.done();
    assert.deepEqual(
      find.results().map((f) => f.rel),
      ["src/a.ts", "src/b.ts"],
    );
  });

  test("replace in one file, then in all; a file changed meanwhile is not overwritten", async () => {
    await find.search(folder, literal("needle", { caseSensitive: true }));
    await find.done();
    const b = find.results().find((f) => f.rel === "src/b.ts")!;
    assert.deepEqual(await find.replace([b], "pin"), { replaced: 2, skipped: 0 });
    assert.equal(readFileSync(join(root, "src", "b.ts"), "utf8"), "let x = pin + pin;\n");
    assert.ok(!find.results().some((f) => f.rel === "src/b.ts"), "replaced files leave the results");

    // Replace all, while notes.md changes on the remote under the editor.
    const errors = recorded.errorMessages.length;
    meddle = () => writeFileSync(join(root, "notes.md"), "someone else wrote this\n");
    const r = await find.replace(find.results(), "pin");
    assert.equal(r.replaced, 4);
    assert.equal(readFileSync(join(root, "src", "a.ts"), "utf8"), "const pin = 1;\n// Needle again: pin\n");
    assert.equal(readFileSync(join(root, "vendor", "lib.ts"), "utf8"), "pin\n");
    assert.equal(readFileSync(join(root, "notes.md"), "utf8"), "someone else wrote this\n", "etag check");
    assert.match(recorded.errorMessages[errors] ?? "", /could not save .*notes\.md/);
  });

  test("a line changed since the search is left alone", async () => {
    writeFileSync(join(root, "stale.txt"), "old needle\n");
    await find.search(folder, literal("old needle"));
    await find.done();
    writeFileSync(join(root, "stale.txt"), "new text, old needle gone? no: changed\n");
    const r = await find.replace(find.results(), "x");
    assert.deepEqual(r, { replaced: 0, skipped: 1 });
    assert.equal(readFileSync(join(root, "stale.txt"), "utf8"), "new text, old needle gone? no: changed\n");
  });

  test("cancel ends a running search", async () => {
    const many = join(root, "many");
    mkdirSync(many);
    for (let i = 0; i < 300; i++) writeFileSync(join(many, `f${i}.txt`), "needle\n".repeat(200));
    await find.search(vscode.Uri.parse(`distant://local${many}`), literal("needle"));
    await eventually("the first results", () => find.results().length > 0, 10000);
    await find.cancel();
    await find.done();
    const message = String(find.view.message);
    // Cancelled, unless it had reached the 20 000 matches it keeps first.
    if (!/stopped at/.test(message)) {
      assert.match(message, /\(cancelled\)/);
      const count = find.results().reduce((n, f) => n + f.matches.length, 0);
      assert.ok(count < 60_000, `${count}`);
    }
  });
});

// Go to File: the fuzzy matcher (ranking, incremental narrowing, recency),
// the remote file index against the real bridge (pages, follow), and the
// quick pick that opens a deeply nested file by a fuzzy name.
import "./helpers/register";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as vscode from "vscode";
import { FileIndexes, RemoteIndex } from "../src/fileIndex";
import { FuzzyMatcher, score } from "../src/fuzzy";
import { RecentFiles, goToFile } from "../src/goToFile";
import { eventually, Harness, startHarness } from "./helpers/harness";
import { recorded } from "./helpers/vscode-stub";

const paths = [
  "README.md",
  "src/widgets/widget_factory.ts",
  "src/widgets/widget.ts",
  "src/wide/grid/factory.ts",
  "docs/how-widgets-get-factored.md",
  "test/widget_factory.test.ts",
  "src/main.ts",
  "src/domain/MainWindow.ts",
];

describe("fuzzy matcher", () => {
  test("letters in order, case-insensitive; the rest do not match", () => {
    assert.ok(score("src/main.ts", "src/main.ts", "smn") > 0);
    assert.equal(score("src/main.ts", "src/main.ts", "nms"), -1);
    assert.equal(score("a", "a", "ab"), -1);
  });

  test("the file name, word starts and runs rank first", () => {
    const m = new FuzzyMatcher();
    m.setPaths(paths);
    assert.deepEqual(
      m
        .filter("wdgfct", 10)
        .slice(0, 2)
        .map((r) => r.path)
        .sort(),
      ["src/widgets/widget_factory.ts", "test/widget_factory.test.ts"],
    );
    assert.equal(m.filter("widget_factory.ts", 10)[0].path, "src/widgets/widget_factory.ts");
    assert.equal(m.filter("widget.ts", 10)[0].path, "src/widgets/widget.ts");
    assert.equal(m.filter("main", 10)[0].path, "src/main.ts");
    assert.equal(m.filter("MW", 10)[0].path, "src/domain/MainWindow.ts");
    assert.equal(m.filter("zzz", 10).length, 0);
    assert.equal(m.filter("a", 3).length, 3, "at most `limit` results");
  });

  test("narrowing the previous query gives the same results as a fresh filter", () => {
    const many: string[] = [];
    for (let i = 0; i < 3000; i++) many.push(`pkg${i % 37}/src/mod_${i}/file_${(i * 7919) % 1000}.rs`);
    const incremental = new FuzzyMatcher();
    incremental.setPaths(many);
    for (const query of ["p", "pk", "pkg3", "pkg3/s", "pkg3/sfil", "pkg3/sfil9", "x", "f", "fi1"]) {
      const fresh = new FuzzyMatcher();
      fresh.setPaths(many);
      assert.deepEqual(incremental.filter(query, 50), fresh.filter(query, 50), query);
    }
  });

  test("recent files come first with an empty query and are lifted otherwise", () => {
    const m = new FuzzyMatcher();
    m.setPaths(paths);
    const recent = ["src/main.ts", "test/widget_factory.test.ts"];
    assert.deepEqual(
      m.filter("", 3, recent).map((r) => r.path),
      ["src/main.ts", "test/widget_factory.test.ts", "README.md"],
    );
    assert.equal(
      m.filter("wdgfct", 10, ["test/widget_factory.test.ts"])[0].path,
      "test/widget_factory.test.ts",
    );
  });
});

describe("remote index", () => {
  test("removed paths take what is under them; reset starts over", () => {
    const index = new RemoteIndex("local", "/r");
    index.apply("fs/index/results", { index: "1", paths: ["a/b.txt", "a/c/d.txt", "ab.txt"] });
    index.apply("fs/index/done", { index: "1", count: 3, truncated: false, cancelled: false });
    assert.ok(index.done);
    index.apply("fs/index/changed", { index: "1", removed: ["a"], added: ["a/new.txt"] });
    assert.deepEqual(index.list(), ["a/new.txt", "ab.txt"]);
    index.apply("fs/index/changed", { index: "1", reset: true, removed: [], added: ["z"] });
    assert.deepEqual(index.list(), ["z"]);
    index.apply("fs/index/changed", { index: "1", added: [], ended: "the root vanished" });
    assert.ok(index.stale);
  });
});

describe("go to file against the real bridge", () => {
  let h: Harness;
  let indexes: FileIndexes;

  before(() => {
    h = startHarness();
    indexes = new FileIndexes(h.connections);
  });

  after(async () => {
    indexes.dispose();
    await h.dispose();
  });

  test("the index fills from pages, then follows changes", async () => {
    const root = join(h.dir, "tree");
    for (let d = 0; d < 20; d++) {
      mkdirSync(join(root, `dir${d}`, "inner"), { recursive: true });
      for (let f = 0; f < 100; f++) writeFileSync(join(root, `dir${d}`, "inner", `f${f}.txt`), "");
    }
    writeFileSync(join(root, ".gitignore"), "*.log\n");
    writeFileSync(join(root, "x.log"), "");
    const index = indexes.get("local", root);
    await eventually("the index", () => index.done, 15000);
    assert.equal(index.error, undefined);
    assert.equal(index.paths.size, 2000);
    assert.ok(!index.paths.has("x.log"));
    assert.equal(indexes.get("local", root), index, "one index per folder");

    mkdirSync(join(root, "late", "deep"), { recursive: true });
    writeFileSync(join(root, "late", "deep", "arrived.ts"), "");
    rmSync(join(root, "dir3"), { recursive: true });
    await eventually(
      "the change in the index",
      () => index.paths.has("late/deep/arrived.ts") && !index.paths.has("dir3/inner/f1.txt"),
      15000,
    );
    assert.equal(index.paths.size, 1901);
  });

  test("the quick pick finds a deeply nested file by a fuzzy name and opens it", async () => {
    const root = join(h.dir, "proj");
    const deep = join(root, "packages", "core", "src", "components", "widgets");
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, "WidgetFactory.ts"), "export {};\n");
    writeFileSync(join(root, "packages", "README.md"), "");
    for (let i = 0; i < 50; i++) writeFileSync(join(root, `noise${i}.ts`), "");
    const folder = vscode.Uri.parse(`distant://local${root}`);
    const recent = new RecentFiles();
    const shown = recorded.shownDocuments.length;
    recorded.onQuickPick = (pick: any) => {
      void (async () => {
        await eventually("the index in the picker", () => !pick.busy && pick.items.length > 0, 15000);
        for (const prefix of ["w", "wf", "wfac", "widfact"]) pick.type(prefix);
        assert.equal(pick.items[0].label, "WidgetFactory.ts");
        assert.equal(pick.items[0].description, "packages/core/src/components/widgets");
        pick.selectedItems = [pick.items[0]];
        pick.fireAccept();
      })().catch((e) => {
        pick.error = e;
        pick.hide();
      });
    };
    try {
      const chosen = await goToFile(indexes, recent, folder);
      const pick = recorded.quickPicks[recorded.quickPicks.length - 1] as any;
      if (pick.error) throw pick.error;
      assert.equal(
        chosen?.toString(),
        `distant://local${root}/packages/core/src/components/widgets/WidgetFactory.ts`,
      );
      assert.equal(recorded.shownDocuments.length, shown + 1);
    } finally {
      recorded.onQuickPick = undefined;
      recent.dispose();
    }
  });
});

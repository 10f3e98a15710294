// Source Control against the real bridge and real git on this machine (the
// "remote"): status into groups, quick diff's original resource, stage,
// unstage, discard, commit (git log shows it), refresh on file events, and
// the errors a person can act on.
import "./helpers/register";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import * as vscode from "vscode";
import { parseStatus } from "../src/git";
import { GIT_SCHEME, RemoteSourceControl, Repository } from "../src/scm";
import { procRouter } from "../src/terminal";
import { eventually, Harness, startHarness } from "./helpers/harness";
import { recorded, workspace } from "./helpers/vscode-stub";

function git(dir: string, ...args: string[]): string {
  return execFileSync("git", ["-C", dir, ...args], { encoding: "utf8" });
}

describe("git status parsing", () => {
  test("branch, staged, unstaged, untracked, renames", () => {
    const out = [
      "## main...origin/main [ahead 1]",
      "M  a.txt",
      " M b.txt",
      "R  new.txt",
      "old.txt",
      "?? c d.txt",
      "",
    ].join("\0");
    const s = parseStatus(out);
    assert.equal(s.branch, "main");
    assert.deepEqual(s.entries, [
      { x: "M", y: " ", path: "a.txt" },
      { x: " ", y: "M", path: "b.txt" },
      { x: "R", y: " ", path: "new.txt", orig: "old.txt" },
      { x: "?", y: "?", path: "c d.txt" },
    ]);
    assert.equal(parseStatus("## No commits yet on trunk\0").branch, "trunk");
  });
});

describe("source control against the real bridge", () => {
  let h: Harness;
  let scm: RemoteSourceControl;
  let repoDir: string;
  let plainDir: string;
  const logs: string[] = [];

  before(async () => {
    h = startHarness();
    repoDir = join(h.dir, "repo");
    plainDir = join(h.dir, "plain");
    mkdirSync(join(repoDir, "src"), { recursive: true });
    mkdirSync(plainDir);
    git(repoDir, "init", "-q", "-b", "main");
    git(repoDir, "config", "user.email", "t@example.com");
    git(repoDir, "config", "user.name", "T");
    writeFileSync(join(repoDir, "src", "app.ts"), "const a = 1;\n");
    writeFileSync(join(repoDir, "keep.txt"), "keep\n");
    git(repoDir, "add", ".");
    git(repoDir, "commit", "-q", "-m", "first");
    workspace.workspaceFolders = [
      { uri: vscode.Uri.parse(`distant://local${repoDir}/src`), name: "repo", index: 0 },
      { uri: vscode.Uri.parse(`distant://local${plainDir}`), name: "plain", index: 1 },
    ];
    scm = new RemoteSourceControl(h.connections, procRouter(h.connections), (l) => logs.push(l));
    await scm.scan();
  });

  after(async () => {
    scm.dispose();
    workspace.workspaceFolders = undefined;
    await h.dispose();
  });

  const repo = (): Repository => scm.repositories()[0];
  const paths = (group: vscode.SourceControlResourceGroup) =>
    group.resourceStates.map((s) => s.resourceUri.path.slice(repoDir.length + 1)).sort();

  test("one repository (its top level) for the folder inside it; none for a plain folder", () => {
    assert.equal(scm.repositories().length, 1);
    assert.equal(repo().top, repoDir);
    assert.ok(
      logs.some((l) => l.includes(plainDir) && /not inside a git repository/.test(l)),
      logs.join("\n"),
    );
  });

  test("changes, untracked files and the branch; refreshed by file events", async () => {
    writeFileSync(join(repoDir, "src", "app.ts"), "const a = 2;\n");
    writeFileSync(join(repoDir, "new.txt"), "new\n");
    const watcher = recorded.fileWatchers[recorded.fileWatchers.length - 1];
    watcher.fire("change", vscode.Uri.parse(`distant://local${repoDir}/src/app.ts`));
    await eventually("the refresh after a file event", () => paths(repo().changes).length === 1, 10000);
    assert.deepEqual(paths(repo().changes), ["src/app.ts"]);
    assert.deepEqual(paths(repo().untracked), ["new.txt"]);
    assert.deepEqual(paths(repo().staged), []);
    assert.equal(repo().branch, "main");
    const status = repo().sourceControl.statusBarCommands as { title: string }[];
    assert.equal(status[0].title, "$(git-branch) main");
    assert.equal(repo().sourceControl.count, 2);
  });

  test("quick diff: the original of a file is its HEAD content", async () => {
    const file = vscode.Uri.parse(`distant://local${repoDir}/src/app.ts`);
    const original = (repo().sourceControl.quickDiffProvider as any).provideOriginalResource(
      file,
    ) as vscode.Uri;
    assert.equal(original.scheme, GIT_SCHEME);
    const text = await recorded.contentProviders.get(GIT_SCHEME)!.provideTextDocumentContent(original as any);
    assert.equal(text, "const a = 1;\n");
    assert.equal(
      (repo().sourceControl.quickDiffProvider as any).provideOriginalResource(vscode.Uri.parse("file:///x")),
      undefined,
    );
  });

  test("stage, unstage, stage again, commit: the remote's git log shows it", async () => {
    const [app] = repo().changes.resourceStates;
    await vscode.commands.executeCommand("distant.git.stage", app);
    assert.deepEqual(paths(repo().staged), ["src/app.ts"]);
    assert.deepEqual(paths(repo().changes), []);
    await vscode.commands.executeCommand("distant.git.unstage", repo().staged.resourceStates[0]);
    assert.deepEqual(paths(repo().staged), []);
    await vscode.commands.executeCommand("distant.git.stage", repo().changes.resourceStates[0]);

    // An empty message is refused with a sentence saying what to do.
    const errors = recorded.errorMessages.length;
    await vscode.commands.executeCommand("distant.git.commit", repo());
    assert.match(recorded.errorMessages[errors], /type a commit message/);

    repo().sourceControl.inputBox.value = "Change a to 2\n\nFrom VS Code over distant.";
    await vscode.commands.executeCommand("distant.git.commit", repo());
    assert.equal(repo().sourceControl.inputBox.value, "");
    assert.equal(git(repoDir, "log", "-1", "--format=%s"), "Change a to 2\n");
    assert.deepEqual(paths(repo().staged), []);
    assert.deepEqual(paths(repo().untracked), ["new.txt"]);
  });

  test("discard asks first, then restores tracked files and removes untracked ones", async () => {
    writeFileSync(join(repoDir, "keep.txt"), "changed\n");
    await repo().refresh();
    const keep = repo().changes.resourceStates[0];
    // Declined: nothing happens.
    await vscode.commands.executeCommand("distant.git.discard", keep);
    assert.equal(readFileSync(join(repoDir, "keep.txt"), "utf8"), "changed\n");
    recorded.warningAnswer = "Discard";
    await vscode.commands.executeCommand("distant.git.discard", keep);
    assert.equal(readFileSync(join(repoDir, "keep.txt"), "utf8"), "keep\n");
    recorded.warningAnswer = "Discard";
    await vscode.commands.executeCommand("distant.git.discard", repo().untracked.resourceStates[0]);
    assert.ok(!existsSync(join(repoDir, "new.txt")));
    assert.equal(repo().sourceControl.count, 0);
  });
});

// The extension as the workbench sees it: activate() with the stub, every
// contributed command registered, commands that open terminals and search
// the remote, all against a real bridge.
import "./helpers/register";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as vscode from "vscode";
import { activate, deactivate, DistantApi } from "../src/extension";
import { bridgePath, eventually } from "./helpers/harness";
import { configurationChanged, recorded, settings, workspace } from "./helpers/vscode-stub";

const manifest = JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8"));
let api: DistantApi;
let dir: string;
const subscriptions: { dispose(): unknown }[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), "distant-vscode-ext-"));
  process.env.DISTANT_BRIDGE_NO_MANAGER = "1";
  settings.set("distant.bridgePath", bridgePath());
  workspace.workspaceFolders = [{ uri: vscode.Uri.parse(`distant://local${dir}`), name: "x", index: 0 }];
  const state = new Map<string, unknown>();
  const context = {
    subscriptions,
    globalState: {
      get: (k: string, d?: unknown) => (state.has(k) ? state.get(k) : d),
      update: async (k: string, v: unknown) => void state.set(k, v),
    },
  };
  api = activate(context as any);
});

after(async () => {
  await deactivate();
  const exited = new Promise<void>((done) => {
    if (!api.bridge.running) return done();
    api.bridge.onDidExit(() => done());
  });
  for (const s of subscriptions) s.dispose();
  await exited;
  rmSync(dir, { recursive: true, force: true });
});

describe("activation", () => {
  test("every contributed command is registered, and only those", () => {
    const contributed = manifest.contributes.commands.map((c: { command: string }) => c.command).sort();
    assert.deepEqual([...recorded.commands.keys()].sort(), contributed);
    for (const id of contributed) {
      assert.ok(manifest.activationEvents.includes(`onCommand:${id}`) || id === "distant.reconnect", id);
    }
    assert.ok(manifest.activationEvents.includes("onFileSystem:distant"));
  });

  test("the status bar shows the workspace's remote, then its state", async () => {
    const item = recorded.statusBarItems.at(-1)!;
    assert.equal(item.text, "$(remote) distant: local");
    await api.fileSystem.stat(vscode.Uri.parse(`distant://local${dir}`));
    assert.equal(item.text, "$(remote) distant: local connected");
  });

  test("engines.vscode allows the code-server the e2e uses (1.139)", () => {
    const m = /^\^1\.(\d+)\.\d+$/.exec(manifest.engines.vscode);
    assert.ok(m && Number(m[1]) <= 139, manifest.engines.vscode);
    const types = JSON.parse(
      readFileSync(join(__dirname, "..", "node_modules/@types/vscode/package.json"), "utf8"),
    );
    assert.ok(
      Number(types.version.split(".")[1]) <= Number(m![1]),
      `@types/vscode ${types.version} is newer than engines`,
    );
  });
});

describe("commands", () => {
  test("New Remote Terminal opens a PTY shell in the workspace folder", async () => {
    const before = recorded.terminals.length;
    await vscode.commands.executeCommand("distant.newTerminal");
    assert.equal(recorded.terminals.length, before + 1);
    const { name, pty } = recorded.terminals.at(-1)! as { name: string; pty: vscode.Pseudoterminal };
    assert.equal(name, "distant: local");
    let output = "";
    pty.onDidWrite((t) => (output += t));
    pty.open({ rows: 10, columns: 60 });
    pty.handleInput!("pwd; exit 3\r");
    await eventually("pwd and exit", () => output.includes(dir) && /exit code 3/.test(output), 10000);
  });

  test("Search Remote streams matches into a quick pick; accepting opens the file at the match", async () => {
    mkdirSync(join(dir, "pkg"), { recursive: true });
    writeFileSync(join(dir, "pkg", "a.txt"), "one\nneedle here\nthree\n");
    writeFileSync(join(dir, "b.txt"), "no match\n  a needle\n");
    await vscode.commands.executeCommand("distant.searchRemote", "needle");
    const pick = recorded.quickPicks.at(-1);
    await eventually("the search to finish", () => !pick.busy, 10000);
    const rows = pick.items.map((i: any) => i.description).sort();
    assert.deepEqual(rows, ["b.txt:2:5", "pkg/a.txt:2:1"]);
    assert.match(pick.placeholder, /^2 matches/);
    pick.selectedItems = [pick.items.find((i: any) => i.description === "pkg/a.txt:2:1")];
    pick.fireAccept();
    await eventually("the document to open", () => recorded.shownDocuments.length > 0);
    const shown = recorded.shownDocuments.at(-1)!;
    assert.equal(String(shown.uri), `distant://local${dir}/pkg/a.txt`);
    assert.equal((shown.options as any).selection.start.line, 1);
  });

  test("hiding the quick pick cancels the remote search", async () => {
    const requests: { method: string; params: any }[] = [];
    const original = api.bridge.request.bind(api.bridge);
    api.bridge.request = (method: string, params: any, token?: any) => {
      requests.push({ method, params });
      return original(method, params, token);
    };
    try {
      let pick: any;
      // Hidden right after it shows: before search/start has answered.
      recorded.onQuickPick = (created) => {
        pick = created;
        queueMicrotask(() => created.hide());
      };
      await vscode.commands.executeCommand("distant.searchRemote", "needle");
      recorded.onQuickPick = undefined;
      const started = requests.find((r) => r.method === "search/start");
      assert.ok(started, "search/start was sent");
      await eventually(`search/cancel in ${JSON.stringify(requests.map((r) => r.method))}`, () =>
        requests.find((r) => r.method === "search/cancel"),
      );
      assert.equal(pick.placeholder, "Cancelled");
    } finally {
      api.bridge.request = original;
    }
  });

  test("Disconnect closes the connection; the status bar says so", async () => {
    await vscode.commands.executeCommand("distant.disconnect", "local");
    assert.equal(recorded.statusBarItems.at(-1)!.text, "$(remote) distant: local disconnected");
    // The next file call connects again on demand.
    await api.fileSystem.stat(vscode.Uri.parse(`distant://local${dir}`));
    assert.equal(recorded.statusBarItems.at(-1)!.text, "$(remote) distant: local connected");
  });

  test("changing distant.bridgePath restarts the bridge with it and reconnects", async () => {
    const firstPid = api.bridge.pid;
    assert.ok(firstPid);
    // Same binary, reached through a symlink: proof the new path was used.
    const link = join(dir, "bridge-link");
    symlinkSync(bridgePath(), link);
    settings.set("distant.bridgePath", link);
    const starts: number[] = [];
    api.bridge.onDidStart((pid) => starts.push(pid));
    configurationChanged.fire({ affectsConfiguration: (k) => k === "distant.bridgePath" });
    await eventually("the new bridge", () => starts.length > 0 && api.bridge.pid !== firstPid, 10000);
    assert.equal(readFileSync(`/proc/${api.bridge.pid}/cmdline`, "utf8").split("\0")[0], link);
    await eventually("reconnected", () => api.connections.info("local")?.status === "connected", 10000);
    settings.set("distant.bridgePath", bridgePath());
  });

  test("a failed connection is reported with Retry / Open Settings / Show Log", async () => {
    settings.set("distant.destinations", { broken: "distant://127.0.0.1:1" });
    await assert.rejects(
      api.fileSystem.stat(vscode.Uri.parse("distant://broken/x")),
      (e: any) => e.code !== undefined,
    );
    await eventually("the error message", () =>
      recorded.errorMessages.find((m) => m.startsWith("distant could not connect to broken")),
    );
  });
});

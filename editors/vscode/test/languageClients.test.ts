// Language clients up to the point where the real workbench takes over:
// which documents start a server, and the project root found on the remote.
import "./helpers/register";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as vscode from "vscode";
import { LanguageClients } from "../src/languageClients";
import { Harness, startHarness } from "./helpers/harness";
import { workspace } from "./helpers/vscode-stub";

let h: Harness;
let clients: LanguageClients;
let starts: string[];

before(() => {
  h = startHarness();
  starts = [];
  clients = new LanguageClients(h.connections, {
    bridgeCommand: () => "distant-bridge",
    bridgeGlobalArgs: () => [],
    useManager: () => true,
    servers: () => ({ python: { command: ["pylsp"], rootMarkers: ["pyproject.toml", ".git"] } }),
    destinations: () => ({}),
    log: () => undefined,
  });
  // Stop short of vscode-languageclient (it needs the real workbench).
  (clients as any).start = async (doc: vscode.TextDocument) => {
    starts.push(`${doc.uri.authority}:${doc.languageId}`);
    return undefined;
  };
});
after(async () => {
  clients.dispose();
  await h.dispose();
});

const doc = (uri: string, languageId: string) =>
  ({ uri: vscode.Uri.parse(uri), languageId }) as unknown as vscode.TextDocument;

describe("which documents start a server", () => {
  test("only configured languages on the distant scheme, once per remote and language", async () => {
    await clients.ensureFor(doc("file:///tmp/a.py", "python"));
    await clients.ensureFor(doc("distant://local/tmp/a.rs", "rust"));
    assert.deepEqual(starts, []);
    await clients.ensureFor(doc("distant://local/tmp/a.py", "python"));
    await clients.ensureFor(doc("distant://local/tmp/b.py", "python"));
    assert.deepEqual(starts, ["local:python"]);
  });

  test("nothing starts in Restricted Mode", async () => {
    workspace.isTrusted = false;
    try {
      await clients.ensureFor(doc("distant://other/tmp/a.py", "python"));
      assert.deepEqual(starts, ["local:python"]);
    } finally {
      workspace.isTrusted = true;
    }
  });
});

describe("project root", () => {
  test("the nearest ancestor with a root marker, else the workspace folder, else the file's directory", async () => {
    mkdirSync(join(h.dir, "proj", "pkg", "deep"), { recursive: true });
    writeFileSync(join(h.dir, "proj", "pyproject.toml"), "");
    writeFileSync(join(h.dir, "proj", "pkg", "deep", "m.py"), "");
    const findRoot = (path: string, markers: string[]) =>
      (clients as any).findRoot(vscode.Uri.parse(`distant://local${path}`), markers) as Promise<string>;
    assert.equal(await findRoot(`${h.dir}/proj/pkg/deep/m.py`, ["pyproject.toml"]), `${h.dir}/proj`);
    assert.equal(await findRoot(`${h.dir}/proj/pkg/deep/m.py`, ["no-such-marker"]), `${h.dir}/proj/pkg/deep`);
    workspace.workspaceFolders = [{ uri: vscode.Uri.parse(`distant://local${h.dir}`), name: "w", index: 0 }];
    try {
      assert.equal(await findRoot(`${h.dir}/proj/pkg/deep/m.py`, ["no-such-marker"]), h.dir);
    } finally {
      workspace.workspaceFolders = undefined;
    }
  });
});

// Pure logic: naming, error mapping, change events, status text, history,
// the lsp command line, search rows, early-notification routing.
import "./helpers/register";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as vscode from "vscode";
import type { ErrorKind } from "../src/api";
import { pushHistory } from "../src/commands";
import {
  authorityFor,
  joinRemote,
  redactKeys,
  remotePath,
  resolveDestination,
  uriString,
  withoutKey,
} from "../src/destinations";
import { BridgeError, toFileSystemError } from "../src/errors";
import { changeEvents } from "../src/fileSystemProvider";
import { lspArgs, lspTarget } from "../src/lspCommand";
import { connectOptions } from "../src/settings";
import { settings } from "./helpers/vscode-stub";
import { searchItem } from "../src/search";
import { statusText } from "../src/statusBar";
import { StreamRouter } from "../src/streams";

describe("destinations", () => {
  const named = { work: "ssh://me@work.example:2222", lab: "distant://10.0.0.5:4000", Box: "local" };

  test("authority → destination", () => {
    assert.equal(resolveDestination("local"), "local");
    assert.equal(resolveDestination("LOCAL"), "local");
    assert.equal(resolveDestination("work", named), "ssh://me@work.example:2222");
    assert.equal(resolveDestination("lab", named), "distant://10.0.0.5:4000");
    assert.equal(resolveDestination("box", named), "local", "names match ignoring case");
    assert.equal(resolveDestination("me@host:22", named), "ssh://me@host:22");
    assert.equal(resolveDestination("devbox"), "ssh://devbox");
    assert.throws(() => resolveDestination(""), /needs an authority/);
    assert.throws(() => resolveDestination("bad", { bad: "ftp://x" }), /distant.destinations.bad/);
  });

  test("typed destination → authority", () => {
    assert.equal(authorityFor("local"), "local");
    assert.equal(authorityFor("ssh://me@host:22/"), "me@host:22");
    assert.equal(authorityFor("work", named), "work");
    assert.equal(authorityFor("distant://10.0.0.5:4000", named), "lab");
    assert.equal(authorityFor("distant://1.2.3.4:9"), undefined, "a keyed URL needs a name");
    assert.equal(authorityFor("  "), undefined);
    assert.equal(authorityFor("host"), "host");
  });

  test("paths and URIs", () => {
    assert.equal(remotePath(""), "/");
    assert.equal(remotePath("/"), "/");
    assert.equal(remotePath("/home/me/"), "/home/me");
    assert.equal(remotePath("tmp/x"), "/tmp/x");
    assert.equal(joinRemote("/a", "b/c"), "/a/b/c");
    assert.equal(joinRemote("/", "b"), "/b");
    assert.equal(joinRemote("/a", "/abs"), "/abs");
    assert.equal(joinRemote("/a", ""), "/a");
    assert.equal(uriString("local", "/tmp/a b#c"), "distant://local/tmp/a%20b%23c");
    assert.equal(vscode.Uri.parse(uriString("local", "/tmp/a b#c")).path, "/tmp/a b#c");
  });
});

describe("errors", () => {
  const uri = vscode.Uri.parse("distant://local/tmp/x");
  const cases: [ErrorKind, string][] = [
    ["not_found", "FileNotFound"],
    ["already_exists", "FileExists"],
    ["permission_denied", "NoPermissions"],
    ["auth_failed", "NoPermissions"],
    ["not_a_directory", "FileNotADirectory"],
    ["is_a_directory", "FileIsADirectory"],
    ["not_connected", "Unavailable"],
    ["connection_lost", "Unavailable"],
    ["timeout", "Unavailable"],
    ["conflict", "Unavailable"],
    ["directory_not_empty", "Unknown"],
    ["invalid_params", "Unknown"],
    ["unsupported", "Unknown"],
    ["other", "Unknown"],
  ];
  for (const [kind, code] of cases) {
    test(`${kind} → FileSystemError ${code}`, () => {
      const mapped = toFileSystemError(new BridgeError(`it failed: ${kind}`, kind), uri);
      assert.ok(mapped instanceof vscode.FileSystemError);
      assert.equal(mapped.code, code);
      if (kind !== "conflict") assert.match(mapped.message, new RegExp(`it failed: ${kind}`));
      else assert.match(mapped.message, /changed on the remote since it was read/);
    });
  }

  test("JSON-RPC errors become BridgeErrors with their kind", () => {
    const e = BridgeError.from(
      { code: -32803, message: "no such file", data: { kind: "not_found" } },
      "fs/read",
    );
    assert.equal(e.kind, "not_found");
    assert.equal(e.message, "no such file");
    assert.equal(e.method, "fs/read");
    assert.equal(BridgeError.from({ message: "x", data: { kind: "martian" } }).kind, "other");
    assert.equal(BridgeError.from(new Error("Connection is closed.")).kind, "connection_lost");
  });

  test("other errors pass through untouched", () => {
    const plain = new Error("boom");
    assert.equal(toFileSystemError(plain, uri), plain);
  });
});

describe("watch events", () => {
  test("fs/changed kinds map to workbench events; a rename is delete + create", () => {
    const root = vscode.Uri.parse("distant://local/w");
    const events = changeEvents(root, [
      { kind: "created", path: "/w/a" },
      { kind: "modified", path: "b" },
      { kind: "attributes", path: "/w/c" },
      { kind: "deleted", path: "/w/d" },
      { kind: "renamed", path: "/w/e", to: "/w/f" },
    ]);
    assert.deepEqual(
      events.map((e) => [e.type, e.uri.toString()]),
      [
        [vscode.FileChangeType.Created, "distant://local/w/a"],
        [vscode.FileChangeType.Changed, "distant://local/w/b"],
        [vscode.FileChangeType.Changed, "distant://local/w/c"],
        [vscode.FileChangeType.Deleted, "distant://local/w/d"],
        [vscode.FileChangeType.Deleted, "distant://local/w/e"],
        [vscode.FileChangeType.Created, "distant://local/w/f"],
      ],
    );
  });
});

describe("small helpers", () => {
  test("status text for every state", () => {
    const at = (status: any) => statusText({ authority: "local", destination: "local", status });
    assert.equal(at("connected"), "$(remote) distant: local connected");
    assert.match(at("reconnecting"), /local .*reconnecting…$/);
    assert.match(at("lost"), /local .*lost$/);
    assert.match(at("connecting"), /connecting…$/);
    assert.equal(statusText(undefined), "$(remote) distant");
  });

  test("destination history: most recent first, unique, bounded", () => {
    assert.deepEqual(pushHistory(["a", "b", "c"], "b"), ["b", "a", "c"]);
    assert.deepEqual(pushHistory(["a", "b", "c"], "d", 3), ["d", "a", "b"]);
  });

  test("the lsp proxy command line", () => {
    assert.deepEqual(lspArgs([], { connection: "3" }, "/src/p", ["pylsp", "-v"]), [
      "lsp",
      "--connection",
      "3",
      "--scheme",
      "distant",
      "--cwd",
      "/src/p",
      "--",
      "pylsp",
      "-v",
    ]);
    assert.deepEqual(lspArgs(["--no-manager"], { destination: "local" }, "/", ["clangd"]).slice(0, 4), [
      "--no-manager",
      "lsp",
      "--destination",
      "local",
    ]);
  });

  test("issue 14: a key never goes on the lsp proxy's command line, nor into a log line", () => {
    const key = "ab".repeat(32);
    const dest = `distant://:${key}@10.0.0.5:4000`;
    assert.deepEqual(withoutKey(dest), { destination: "distant://10.0.0.5:4000", key });
    assert.deepEqual(withoutKey("ssh://me@h"), { destination: "ssh://me@h" });
    const { target, env } = lspTarget({ destination: dest }, { PATH: "/bin" });
    const args = lspArgs(["--no-manager"], target, "/", ["pylsp"]);
    assert.ok(!args.join(" ").includes(key), args.join(" "));
    assert.ok(args.includes("distant://10.0.0.5:4000"));
    assert.equal(env.DISTANT_KEY, key);
    assert.equal(env.PATH, "/bin");
    // Through the manager no key is needed at all.
    assert.equal(lspTarget({ connection: "3" }, {}).env.DISTANT_KEY, undefined);
    const line = `connecting lab (${dest}) and "distant://${key}@h:1" ssh://me@h`;
    const redacted = redactKeys(line);
    assert.ok(!redacted.includes(key), redacted);
    assert.ok(redacted.includes("distant://***@10.0.0.5:4000") && redacted.includes("ssh://me@h"));
  });

  test("issue 14: settings that name programs, ssh options or destinations are user-only and restricted", () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8"));
    const props = pkg.contributes.configuration.properties;
    const restricted: string[] = pkg.capabilities.untrustedWorkspaces.restrictedConfigurations;
    for (const name of [
      "distant.bridgePath",
      "distant.connectOptions",
      "distant.destinations",
      "distant.allowSshCommands",
    ]) {
      assert.equal(props[name].scope, "machine", `${name} must not be settable by a workspace`);
      assert.ok(restricted.includes(name), `${name} must be restricted in untrusted workspaces`);
    }
    assert.ok(restricted.includes("distant.languageServers"));
    assert.equal(props["distant.allowSshCommands"].default, false);
  });

  test("issue 14: only distant.allowSshCommands lets ssh options run local commands", () => {
    settings.set("distant.connectOptions", { ssh: ["-F", "/x"], allowLocalCommands: true });
    try {
      assert.deepEqual(connectOptions(), { ssh: ["-F", "/x"] });
      settings.set("distant.allowSshCommands", true);
      assert.deepEqual(connectOptions(), { ssh: ["-F", "/x"], allowLocalCommands: true });
    } finally {
      settings.delete("distant.connectOptions");
      settings.delete("distant.allowSshCommands");
    }
    assert.equal(connectOptions(), undefined);
  });

  test("search rows point at the match", () => {
    const item = searchItem("local", "/src", {
      path: "/src/pkg/a.py",
      line: 12,
      column: 5,
      text: "  def main():\n",
      submatches: [{ start: 4, end: 8 }],
    });
    assert.equal(item.label, "def main():");
    assert.equal(item.description, "pkg/a.py:12:5");
    assert.equal(item.uri.toString(), "distant://local/src/pkg/a.py");
    assert.equal(item.line, 12);
  });
});

describe("stream routing", () => {
  test("notifications that arrive before registration are replayed in order", () => {
    const handlers = new Map<string, (p: any) => void>();
    const fakeBridge = {
      onNotification: (method: string, handler: (p: any) => void) => {
        handlers.set(method, handler);
        return { dispose: () => handlers.delete(method) };
      },
    };
    const router = new StreamRouter(fakeBridge as any, { "x/out": "id", "x/done": "id" });
    handlers.get("x/out")!({ id: "7", n: 1 });
    handlers.get("x/out")!({ id: "8", n: 99 });
    handlers.get("x/out")!({ id: "7", n: 2 });
    const got: [string, number][] = [];
    router.register("7", (method, p) => got.push([method, p.n]));
    handlers.get("x/done")!({ id: "7", n: 3 });
    assert.deepEqual(got, [
      ["x/out", 1],
      ["x/out", 2],
      ["x/done", 3],
    ]);
    router.dispose();
    assert.equal(handlers.size, 0);
  });
});

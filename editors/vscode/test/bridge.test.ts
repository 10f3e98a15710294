// The bridge process and connection state: restart after a crash, calls
// that resume on the restarted bridge, the status bar following
// connection/state, and the manager path that language servers share.
import "./helpers/register";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { AddressInfo, createServer } from "node:net";
import { writeFileSync } from "node:fs";
import * as vscode from "vscode";
import { Connections } from "../src/connections";
import { BridgeError, toFileSystemError } from "../src/errors";
import { DistantFileSystemProvider } from "../src/fileSystemProvider";
import { lspArgs } from "../src/lspCommand";
import { StatusBar } from "../src/statusBar";
import { bridgePath, eventually, startHarness } from "./helpers/harness";

const uri = (path: string) => vscode.Uri.parse(`distant://local${path}`);

describe("bridge process", () => {
  test("a killed bridge is restarted; the connection and watches come back", async () => {
    const h = startHarness({ restartDelaysMs: [50] });
    const fs = new DistantFileSystemProvider(h.bridge, h.connections);
    const status = new StatusBar(h.connections);
    try {
      writeFileSync(`${h.dir}/f`, "before");
      assert.equal(new TextDecoder().decode(await fs.readFile(uri(`${h.dir}/f`))), "before");
      assert.equal(status.item.text, "$(remote) distant: local connected");
      const firstPid = h.bridge.pid;
      const firstConnection = h.connections.connectionId("local");
      const events: vscode.FileChangeEvent[] = [];
      fs.onDidChangeFile((e) => events.push(...e));
      fs.watch(uri(h.dir), { recursive: false, excludes: [] });
      await eventually("the watch", () => (fs as any).watches.values().next().value?.watchId);

      h.bridge.kill("SIGKILL");
      await eventually("the status bar to show the reconnect", () => /reconnecting…/.test(status.item.text));
      // Restarted on its own, and reconnected because the connection was in use.
      await eventually("a new bridge", () => h.bridge.running && h.bridge.pid !== firstPid, 5000);
      await eventually("reconnected", () => h.connections.info("local")?.status === "connected", 10000);
      assert.equal(status.item.text, "$(remote) distant: local connected");
      assert.ok(h.connections.connectionId("local"));
      assert.notEqual(h.bridge.pid, firstPid);
      void firstConnection;

      // Calls work again, and the watch was re-established on the new bridge.
      writeFileSync(`${h.dir}/f`, "after");
      assert.equal(new TextDecoder().decode(await fs.readFile(uri(`${h.dir}/f`))), "after");
      await eventually(
        "a change event from the re-established watch",
        () => {
          writeFileSync(`${h.dir}/g`, String(Date.now()));
          return events.some((e) => e.uri.path === `${h.dir}/g`);
        },
        10000,
      );
    } finally {
      status.dispose();
      fs.dispose();
      await h.dispose();
    }
  });

  test(
    "a request in flight when the bridge dies fails at once as connection_lost",
    { timeout: 10_000 },
    async () => {
      // A server that accepts and then says nothing: `connect` waits on its handshake.
      const silent = createServer(() => undefined);
      await new Promise<void>((done) => silent.listen(0, "127.0.0.1", done));
      const port = (silent.address() as AddressInfo).port;
      const h = startHarness({ restartDelaysMs: [60_000] });
      try {
        const pending = h.bridge
          .request("connect", { destination: `distant://127.0.0.1:${port}`, key: "ab".repeat(32) })
          .catch((e) => e);
        await new Promise((r) => setTimeout(r, 300));
        const started = Date.now();
        h.bridge.kill("SIGKILL");
        const error = (await pending) as BridgeError;
        assert.ok(error instanceof BridgeError, String(error));
        assert.equal(error.kind, "connection_lost");
        assert.ok(Date.now() - started < 2000);
      } finally {
        silent.close();
        await h.dispose();
      }
    },
  );

  test("the first call after a crash starts a new bridge and reconnects", async () => {
    const h = startHarness({ restartDelaysMs: [10_000] }); // no eager restart: the call starts it
    const fs = new DistantFileSystemProvider(h.bridge, h.connections);
    try {
      await fs.stat(uri(h.dir));
      h.bridge.kill("SIGKILL");
      await eventually("the exit", () => !h.bridge.running);
      const stat = await fs.stat(uri(h.dir));
      assert.equal(stat.type, vscode.FileType.Directory);
    } finally {
      fs.dispose();
      await h.dispose();
    }
  });

  test("a bridge that cannot start is Unavailable with advice", async () => {
    const h = startHarness();
    (h.bridge as any).options.command = "/nonexistent/distant-bridge";
    const fs = new DistantFileSystemProvider(h.bridge, h.connections);
    try {
      await assert.rejects(fs.stat(uri("/")), (e: any) => {
        assert.equal(e.code, "Unavailable");
        assert.match(e.message, /was not found.*distant\.bridgePath/);
        return true;
      });
      assert.equal(h.connections.info("local")?.status, "failed");
    } finally {
      fs.dispose();
      await h.dispose();
    }
  });
});

describe("errors from the real bridge", () => {
  test("an unknown connection id is not_connected, which the provider reports as Unavailable", async () => {
    const h = startHarness();
    try {
      const error = await h.bridge.request("fs/metadata", { connection: "999", path: "/" }).catch((e) => e);
      assert.ok(error instanceof BridgeError, String(error));
      assert.equal(error.kind, "not_connected");
      assert.equal((toFileSystemError(error, uri("/")) as vscode.FileSystemError).code, "Unavailable");
      const bad = (await h.bridge
        .request("fs/metadata", { connection: "999" })
        .catch((e) => e)) as BridgeError;
      assert.equal(bad.kind, "invalid_params");
      assert.match(bad.message, /path/);
    } finally {
      await h.dispose();
    }
  });
});

describe("connect options", () => {
  test("distant.connectOptions reach the bridge's connect", async () => {
    const h = startHarness();
    try {
      let options: Record<string, unknown> = { reconnectTimeoutSecs: "soon" };
      const connections = new Connections(
        h.bridge,
        () => ({}),
        undefined,
        () => options,
      );
      const error = (await connections.connect("local").catch((e) => e)) as BridgeError;
      assert.ok(error instanceof BridgeError, String(error));
      assert.equal(error.kind, "invalid_params");
      assert.match(error.message, /reconnectTimeoutSecs/);
      options = { reconnectTimeoutSecs: 30 };
      assert.ok(await connections.connect("local"));
      connections.dispose();
    } finally {
      await h.dispose();
    }
  });
});

describe("connection state", () => {
  test("the status bar follows connect, disconnect and reconnect", async () => {
    const h = startHarness();
    const status = new StatusBar(h.connections);
    const texts: string[] = [];
    h.connections.onDidChange(() => texts.push(status.item.text));
    try {
      await h.connections.connect("local");
      assert.equal(status.item.text, "$(remote) distant: local connected");
      assert.equal(status.item.command, "distant.showConnectionMenu");
      await h.connections.disconnect("local");
      assert.equal(status.item.text, "$(remote) distant: local disconnected");
      await h.connections.reconnect("local");
      assert.equal(status.item.text, "$(remote) distant: local connected");
      assert.ok(texts.some((t) => /connecting…/.test(t)));
    } finally {
      status.dispose();
      await h.dispose();
    }
  });

  test("a connection/state notification from the bridge updates the item", async () => {
    const h = startHarness();
    const status = new StatusBar(h.connections);
    try {
      const id = await h.connections.connect("local");
      // What the bridge sends while it redials (simulated: the real one needs a network fault).
      (h.bridge as any).dispatch("connection/state", {
        connection: id,
        state: "reconnecting",
        detail: "link broke",
      });
      assert.match(status.item.text, /local .*reconnecting…/);
      assert.match(String(status.item.tooltip), /link broke/);
      (h.bridge as any).dispatch("connection/state", { connection: id, state: "connected" });
      assert.equal(status.item.text, "$(remote) distant: local connected");
      (h.bridge as any).dispatch("connection/state", { connection: id, state: "lost", detail: "gone" });
      assert.match(status.item.text, /local .*lost/);
      assert.equal(h.connections.connectionId("local"), undefined, "a lost connection is not reused");
    } finally {
      status.dispose();
      await h.dispose();
    }
  });
});

describe("manager and the lsp proxy", () => {
  test("`distant-bridge lsp --connection ID` shares the window's connection and rewrites URIs", async () => {
    const h = startHarness({ manager: true });
    try {
      const connection = await h.connections.connect("local");
      // `cat` as a "language server": it echoes each framed message, so what
      // comes back went editor → remote (distant:// → file://) → editor.
      const args = lspArgs([], { connection }, h.dir, ["cat"]);
      const proxy = spawn(bridgePath(), args, { env: h.env, stdio: ["pipe", "pipe", "pipe"] });
      let stderr = "";
      proxy.stderr.on("data", (d) => (stderr += d));
      let stdout = "";
      proxy.stdout.on("data", (d) => (stdout += d));
      const body = JSON.stringify({
        jsonrpc: "2.0",
        method: "textDocument/didOpen",
        params: {
          textDocument: { uri: `distant://local${h.dir}/a.py`, text: "distant://local/not/rewritten" },
        },
      });
      proxy.stdin.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      await eventually(`the echo (stderr: ${stderr})`, () => stdout.includes("\r\n\r\n{"), 15000);
      const echoed = JSON.parse(stdout.slice(stdout.indexOf("\r\n\r\n") + 4));
      assert.equal(echoed.params.textDocument.uri, `distant://local${h.dir}/a.py`);
      assert.equal(echoed.params.textDocument.text, "distant://local/not/rewritten");
      // One connection in the manager: the proxy used ours.
      const list = await h.bridge.request<{ connection: string }[]>("connections", {});
      assert.deepEqual(
        list.map((c) => c.connection),
        [connection],
      );
      proxy.stdin.end();
      await new Promise((done) => proxy.once("exit", done));
    } finally {
      await h.dispose();
    }
  });
});

// The Pseudoterminal against a real bridge: a PTY shell, input, resize,
// exit code, close; and UTF-8 decoding across proc/output boundaries.
import "./helpers/register";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Connections } from "../src/connections";
import { DistantPseudoterminal, procRouter } from "../src/terminal";
import { StreamRouter } from "../src/streams";
import { Harness, eventually, startHarness } from "./helpers/harness";

let h: Harness;
let router: StreamRouter;

before(() => {
  h = startHarness();
  router = procRouter(h.connections);
});
after(async () => {
  router.dispose();
  await h.dispose();
});

function openTerminal(command: string[], rows = 24, columns = 80) {
  const pty = new DistantPseudoterminal(h.connections, router, { authority: "local", cwd: h.dir, command });
  let output = "";
  let closedWith: number | void | undefined = undefined;
  let closed = false;
  pty.onDidWrite((text) => (output += text));
  pty.onDidClose((code) => {
    closed = true;
    closedWith = code;
  });
  pty.open({ rows, columns });
  return { pty, output: () => output, closed: () => closed, code: () => closedWith };
}

describe("remote terminal", () => {
  test("runs a command typed into a PTY shell, resizes, and closes with the exit code", async () => {
    const t = openTerminal(["sh"], 24, 80);
    // Typed before the process exists: queued, then sent in order.
    t.pty.handleInput("echo hi-$((40+2))\r");
    await eventually("the echo output", () => t.output().includes("hi-42"), 10000);
    t.pty.handleInput("stty size\r");
    await eventually("the initial size", () => t.output().includes("24 80"));
    t.pty.setDimensions({ rows: 33, columns: 101 });
    t.pty.handleInput("stty size\r");
    await eventually("the new size", () => t.output().includes("33 101"));
    t.pty.handleInput("exit 7\r");
    await eventually("the close event", () => t.closed(), 10000);
    assert.equal(t.code(), 7);
    assert.match(t.output(), /remote process ended: exit code 7/);
    assert.equal(await t.pty.exit, 7);
  });

  test("close kills the remote process", async () => {
    const t = openTerminal(["sh", "-c", "echo started; sleep 30"]);
    await eventually("the process to start", () => t.output().includes("started"), 10000);
    const started = Date.now();
    t.pty.close();
    assert.equal(await t.pty.exit, undefined);
    assert.ok(Date.now() - started < 5000);
  });

  test("a program that does not exist is reported in the terminal", async () => {
    const t = openTerminal(["/nonexistent/shell"]);
    await eventually("the error line", () => /could not start the remote shell/.test(t.output()), 10000);
  });

  test("the default command is the remote user's shell in its working directory", async () => {
    const pty = new DistantPseudoterminal(h.connections, router, { authority: "local", cwd: h.dir });
    let output = "";
    pty.onDidWrite((text) => (output += text));
    pty.open(undefined);
    pty.handleInput("echo shell-is-$0\r");
    await eventually("the shell's answer", () => /shell-is-\S+/.test(output), 10000);
    pty.handleInput("exit 0\r");
    assert.equal(await pty.exit, 0);
  });
});

describe("remote terminal and a dying bridge", () => {
  test("the terminal says the session ended and closes when the bridge dies", async () => {
    const own = startHarness({ restartDelaysMs: [60_000] });
    const ownRouter = procRouter(own.connections);
    try {
      const pty = new DistantPseudoterminal(own.connections, ownRouter, {
        authority: "local",
        cwd: own.dir,
        command: ["sh"],
      });
      let output = "";
      let closedWith: number | void | undefined;
      pty.onDidWrite((t) => (output += t));
      pty.onDidClose((code) => (closedWith = code));
      pty.open({ rows: 10, columns: 40 });
      pty.handleInput("echo alive\r");
      await eventually("the shell", () => output.includes("alive"), 10000);
      own.bridge.kill("SIGKILL");
      assert.equal(await pty.exit, 1);
      assert.equal(closedWith, 1);
      assert.match(output, /the connection was lost \(the bridge process exited\)/);
    } finally {
      ownRouter.dispose();
      await own.dispose();
    }
  });
});

describe("output decoding", () => {
  test("a UTF-8 character split across two proc/output notifications comes out whole", async () => {
    const handlers = new Map<string, (p: any) => void>();
    const fakeBridge = {
      onNotification: (method: string, handler: (p: any) => void) => {
        handlers.set(method, handler);
        return { dispose: () => undefined };
      },
      request: async (method: string) => (method === "proc/spawn" ? { proc: "p1", pid: 1 } : null),
      onDidExit: () => ({ dispose: () => undefined }),
    };
    const fakeConnections = {
      bridge: fakeBridge,
      connect: async () => "c1",
      connectionId: () => "c1",
      call: async (_a: string, method: string) => (method === "proc/spawn" ? { proc: "p1", pid: 1 } : null),
    } as unknown as Connections;
    const fakeRouter = new StreamRouter(fakeBridge as any, { "proc/output": "proc", "proc/exit": "proc" });
    const pty = new DistantPseudoterminal(fakeConnections, fakeRouter, {
      authority: "x",
      cwd: "/",
      command: ["sh"],
    });
    const writes: string[] = [];
    pty.onDidWrite((t) => writes.push(t));
    pty.open({ rows: 1, columns: 1 });
    const bytes = Buffer.from("añ€😀", "utf8");
    // Cut inside ñ, €, and 😀.
    for (const [from, to] of [
      [0, 2],
      [2, 4],
      [4, 8],
      [8, bytes.length],
    ]) {
      handlers.get("proc/output")!({
        proc: "p1",
        stream: "stdout",
        data: bytes.subarray(from, to).toString("base64"),
        encoding: "base64",
      });
    }
    handlers.get("proc/exit")!({ proc: "p1", code: 0 });
    assert.equal(await pty.exit, 0);
    assert.ok(writes.join("").startsWith("añ€😀"), JSON.stringify(writes));
    assert.ok(!writes.join("").includes("\ufffd"));
  });
});

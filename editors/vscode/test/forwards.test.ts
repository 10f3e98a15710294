// Port forwarding against a real bridge: "Forward a Port" to a TCP service
// on the remote (this machine's loopback), the list, Open in Browser, close;
// a web server started on the remote is offered, and forwarded when chosen.
import "./helpers/register";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import * as http from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as vscode from "vscode";
import { PortForwards, parseForwardSpec, registerForwardCommands, tunnelItem } from "../src/forwards";
import { Harness, startHarness } from "./helpers/harness";
import { recorded } from "./helpers/vscode-stub";

let h: Harness;
let forwards: PortForwards;
let commands: vscode.Disposable[];

before(async () => {
  h = startHarness();
  forwards = new PortForwards(h.connections);
  commands = registerForwardCommands(forwards, h.connections);
  await h.connections.connect("local");
});
after(async () => {
  for (const c of commands) c.dispose();
  forwards.dispose();
  await h.dispose();
});

/** Connects to 127.0.0.1:port and reads to EOF. */
function readAll(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, "127.0.0.1");
    s.on("data", (d) => chunks.push(d));
    s.on("end", () => resolve(Buffer.concat(chunks).toString()));
    s.on("error", reject);
  });
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

describe("port forwarding", () => {
  test("parses forward specs", () => {
    assert.deepEqual(parseForwardSpec("8000"), { localPort: 8000, remotePort: 8000 });
    assert.deepEqual(parseForwardSpec("0:8000"), { localPort: 0, remotePort: 8000 });
    assert.deepEqual(parseForwardSpec("9000:localhost:8000"), {
      localPort: 9000,
      remoteHost: "localhost",
      remotePort: 8000,
    });
    for (const bad of ["", "x", "0", "80:", "1:h:0", "1::80", "70000"]) {
      assert.throws(() => parseForwardSpec(bad), /not a/, bad);
    }
  });

  test("forwards a port, lists it, opens it in the browser and closes it", async () => {
    const service = net.createServer((s) => s.end("hello through distant"));
    await new Promise<void>((r) => service.listen(0, "127.0.0.1", r));
    const remotePort = (service.address() as net.AddressInfo).port;
    recorded.infoChoice = (message, items) =>
      message.includes(`:${remotePort} on the remote`)
        ? items.find((i) => i === "Open in Browser")
        : undefined;
    await vscode.commands.executeCommand("distant.forwardPort", "local", `0:${remotePort}`);
    recorded.infoChoice = undefined;
    const list = await forwards.list("local");
    assert.equal(list.length, 1);
    const t = list[0];
    assert.equal(t.remotePort, remotePort);
    assert.ok(
      recorded.openedExternal.includes(`http://127.0.0.1:${t.localPort}/`),
      JSON.stringify(recorded.openedExternal),
    );
    assert.equal(await readAll(t.localPort), "hello through distant");
    const item = tunnelItem((await forwards.list("local"))[0]);
    assert.equal(item.label, `127.0.0.1:${t.localPort} → 127.0.0.1:${remotePort}`);
    assert.match(item.detail ?? "", /21 B in/);

    await forwards.close("local", t.tunnel);
    assert.deepEqual(await forwards.list("local"), []);
    await assert.rejects(readAll(t.localPort));
    service.close();
  });

  test("a bad spec is an error message, not an exception", async () => {
    await vscode.commands.executeCommand("distant.forwardPort", "local", "80:");
    assert.ok(recorded.errorMessages.some((m) => /not a valid remote port/.test(m)));
  });

  test("offers a web server started on the remote and forwards it when chosen", async () => {
    writeFileSync(join(h.dir, "index.html"), "served remotely");
    recorded.infoChoice = (message, items) =>
      /a remote process listens on port \d+ \(.*http\.server.*\)/.test(message) ? items[0] : undefined;
    const spawned = await h.connections.call<{ proc: string }>("local", "proc/spawn", {
      cmd: ["python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"],
      cwd: h.dir,
    });
    let tunnel: { localPort: number } | undefined;
    const deadline = Date.now() + 15000;
    while (!(tunnel = (await forwards.list("local"))[0])) {
      assert.ok(Date.now() < deadline, `no forward of the detected port; messages: ${recorded.infoMessages}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    recorded.infoChoice = undefined;
    const page = await get(`http://127.0.0.1:${tunnel!.localPort}/index.html`);
    assert.equal(page.status, 200);
    assert.equal(page.body, "served remotely");
    await h.connections.call("local", "proc/kill", { proc: spawned.proc, signal: "KILL" });
  });
});

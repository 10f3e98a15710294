// Remote terminals: a Pseudoterminal backed by `proc/spawn` with a PTY.
// Keystrokes go to proc/stdin in order, resizes to proc/resize, output is
// decoded as one UTF-8 stream (a character split across two proc/output
// notifications still comes out whole), and the exit code closes it.
import * as vscode from "vscode";
import type { ProcExitParams, ProcOutputParams, SystemInfo } from "./api";
import type { Connections } from "./connections";
import { StreamRouter } from "./streams";

export interface TerminalTarget {
  authority: string;
  /** Remote working directory; default the remote's currentDir. */
  cwd?: string;
  /** argv; default the remote user's login shell. */
  command?: string[];
}

export class DistantPseudoterminal implements vscode.Pseudoterminal {
  private readonly writeEmitter = new vscode.EventEmitter<string>();
  private readonly closeEmitter = new vscode.EventEmitter<number | void>();
  readonly onDidWrite = this.writeEmitter.event;
  readonly onDidClose = this.closeEmitter.event;

  private proc: string | undefined;
  private connection: string | undefined;
  private exited = false;
  private closed = false;
  /** Input typed before the process exists, sent once it does. */
  private pendingInput: string[] = [];
  private pendingSize: { rows: number; cols: number } | undefined;
  private readonly decoders = {
    stdout: new TextDecoder("utf-8"),
    stderr: new TextDecoder("utf-8"),
  };
  private registration: { dispose(): void } | undefined;
  private bridgeExit: { dispose(): void } | undefined;

  /** Resolves with the exit code (tests, and callers that run a command). */
  readonly exit: Promise<number | undefined>;
  private resolveExit!: (code: number | undefined) => void;

  constructor(
    private readonly connections: Connections,
    private readonly router: StreamRouter,
    private readonly target: TerminalTarget,
  ) {
    this.exit = new Promise((resolve) => (this.resolveExit = resolve));
  }

  open(initialDimensions: vscode.TerminalDimensions | undefined): void {
    const rows = initialDimensions?.rows ?? 24;
    const cols = initialDimensions?.columns ?? 80;
    void this.start(rows, cols);
  }

  handleInput(data: string): void {
    if (this.exited) return;
    if (!this.proc) {
      this.pendingInput.push(data);
      return;
    }
    this.send("proc/stdin", { proc: this.proc, data, encoding: "utf-8" });
  }

  setDimensions(dimensions: vscode.TerminalDimensions): void {
    const size = { rows: dimensions.rows, cols: dimensions.columns };
    if (!this.proc) {
      this.pendingSize = size;
      return;
    }
    if (!this.exited) this.send("proc/resize", { proc: this.proc, ...size });
  }

  close(): void {
    this.closed = true;
    if (this.proc && !this.exited) this.send("proc/kill", { proc: this.proc, signal: "HUP" });
    this.finish(undefined);
  }

  private async start(rows: number, cols: number): Promise<void> {
    const { authority } = this.target;
    try {
      this.connection = await this.connections.connect(authority);
      let command = this.target.command;
      let cwd = this.target.cwd;
      if (!command || !cwd) {
        const info = await this.connections.call<SystemInfo>(authority, "system/info", {});
        command ??= [info.shell || "/bin/sh", "-l"];
        cwd ??= info.currentDir;
      }
      if (this.closed) return;
      const result = await this.connections.call<{ proc: string }>(authority, "proc/spawn", {
        cmd: command,
        cwd,
        env: { TERM: "xterm-256color", COLORTERM: "truecolor" },
        pty: { rows, cols },
        encoding: "base64",
      });
      this.connection = this.connections.connectionId(authority) ?? this.connection;
      this.proc = result.proc;
      this.registration = this.router.register(result.proc, (method, params) => this.onEvent(method, params));
      // Our processes die with the bridge session (the API kills a leaving
      // peer's processes), and no proc/exit will come: say so and close.
      this.bridgeExit = this.connections.bridge.onDidExit(() =>
        this.onEvent("proc/exit", { proc: result.proc, code: null, error: "the bridge process exited" }),
      );
      if (this.closed) {
        this.send("proc/kill", { proc: result.proc, signal: "HUP" });
        return;
      }
      if (this.pendingSize)
        this.setDimensions({
          rows: this.pendingSize.rows,
          columns: this.pendingSize.cols,
        });
      for (const data of this.pendingInput.splice(0)) this.handleInput(data);
    } catch (error) {
      this.writeEmitter.fire(
        `\r\n\x1b[31mdistant: could not start the remote shell: ${(error as Error).message}\x1b[0m\r\n`,
      );
      this.exited = true;
      this.resolveExit(undefined);
    }
  }

  private onEvent(method: string, params: ProcOutputParams | ProcExitParams): void {
    if (method === "proc/output") {
      const p = params as ProcOutputParams;
      const bytes = Buffer.from(p.data, p.encoding === "base64" ? "base64" : "utf8");
      const text = this.decoders[p.stream === "stderr" ? "stderr" : "stdout"].decode(bytes, { stream: true });
      if (text) this.writeEmitter.fire(text);
      return;
    }
    if (this.exited) return;
    const p = params as ProcExitParams;
    this.exited = true;
    const tail = this.decoders.stdout.decode() + this.decoders.stderr.decode();
    if (tail) this.writeEmitter.fire(tail);
    const how =
      p.error !== undefined
        ? `the connection was lost (${p.error})`
        : p.signal
          ? `killed by ${p.signal}`
          : `exit code ${p.code}`;
    this.writeEmitter.fire(`\r\n[remote process ended: ${how}]\r\n`);
    const code = typeof p.code === "number" ? p.code : 1;
    this.finish(code);
    this.closeEmitter.fire(code);
  }

  private finish(code: number | undefined): void {
    this.registration?.dispose();
    this.registration = undefined;
    this.bridgeExit?.dispose();
    this.bridgeExit = undefined;
    this.resolveExit(code);
  }

  /** Ordered fire-and-forget: the bridge applies proc/stdin, resize and kill in arrival order. */
  private send(method: string, params: object): void {
    const connection = this.connection;
    if (!connection) return;
    this.connections.bridge.request(method, { connection, ...params }).catch((error: Error) => {
      if (!this.exited)
        this.writeEmitter.fire(`\r\n\x1b[31mdistant: ${method} failed: ${error.message}\x1b[0m\r\n`);
    });
  }
}

/** Opens a remote terminal in the workbench. */
export function openRemoteTerminal(
  connections: Connections,
  router: StreamRouter,
  target: TerminalTarget,
): vscode.Terminal {
  const pty = new DistantPseudoterminal(connections, router, target);
  const terminal = vscode.window.createTerminal({
    name: `distant: ${target.authority}`,
    pty,
  });
  terminal.show();
  return terminal;
}

/** The router every terminal of a window shares. */
export function procRouter(connections: Connections): StreamRouter {
  return new StreamRouter(connections.bridge, {
    "proc/output": "proc",
    "proc/exit": "proc",
  });
}

// The bridge process: spawns `distant-bridge stdio`, speaks JSON-RPC with
// LSP framing over its stdio (vscode-jsonrpc), routes notifications to
// listeners, and restarts it if it dies. One per window. Knows nothing about
// connections or files; callers get typed BridgeErrors.
import { ChildProcess, spawn } from "node:child_process";
import {
  CancellationToken,
  Disposable,
  Emitter,
  Event,
  MessageConnection,
  createMessageConnection,
} from "vscode-jsonrpc/node";
import { StreamMessageReader, StreamMessageWriter } from "vscode-jsonrpc/node";
import { BridgeError } from "./errors";

export interface BridgeOptions {
  /** The `distant-bridge` executable. */
  command: string;
  /** Arguments before `stdio` (e.g. `--no-manager`). */
  globalArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Where bridge stderr and lifecycle lines go (the Output channel). */
  log: (line: string) => void;
  /** Delays before successive restarts after unexpected exits. */
  restartDelaysMs?: number[];
  clientName?: string;
}

export interface BridgeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when we asked it to stop (dispose/stop). */
  expected: boolean;
}

type NotificationHandler = (params: any) => void;

const DEFAULT_RESTART_DELAYS = [200, 1000, 3000, 10000];
/** An instance that lived this long resets the restart backoff. */
const HEALTHY_UPTIME_MS = 30_000;

export class Bridge implements Disposable {
  private child: ChildProcess | undefined;
  private connection: MessageConnection | undefined;
  private starting: Promise<MessageConnection> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartCount = 0;
  private startedAt = 0;
  private disposed = false;
  private readonly handlers = new Map<string, Set<NotificationHandler>>();
  private readonly didStart = new Emitter<number>();
  private readonly didExit = new Emitter<BridgeExit>();

  /** Fires with the pid each time a bridge process is up (first start and restarts). */
  readonly onDidStart: Event<number> = this.didStart.event;
  /** Fires when a bridge process ends; every connection id it held is void. */
  readonly onDidExit: Event<BridgeExit> = this.didExit.event;

  constructor(private readonly options: BridgeOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.connection !== undefined;
  }

  /** Starts the process unless it runs; resolves once it accepts requests. */
  start(): Promise<MessageConnection> {
    if (this.disposed)
      return Promise.reject(new BridgeError("the distant extension is shutting down", "not_connected"));
    if (this.connection) return Promise.resolve(this.connection);
    if (!this.starting) {
      this.starting = this.spawnProcess().finally(() => {
        this.starting = undefined;
      });
    }
    return this.starting;
  }

  async request<T>(method: string, params: object, token?: CancellationToken): Promise<T> {
    const connection = await this.start();
    try {
      // Pass the token only when there is one: vscode-jsonrpc takes a trailing
      // `undefined` for a second positional parameter and sends an array.
      const pending = token
        ? connection.sendRequest(method, params, token)
        : connection.sendRequest(method, params);
      return (await pending) as T;
    } catch (error) {
      throw BridgeError.from(error, method);
    }
  }

  async notify(method: string, params: object): Promise<void> {
    const connection = await this.start();
    await connection.sendNotification(method, params);
  }

  /** Listens to one notification method, across restarts. */
  onNotification(method: string, handler: NotificationHandler): Disposable {
    let set = this.handlers.get(method);
    if (!set) this.handlers.set(method, (set = new Set()));
    set.add(handler);
    return Disposable.create(() => set!.delete(handler));
  }

  /**
   * New executable or arguments (settings changed): used from the next start;
   * a running bridge is restarted, which reconnects what was connected.
   */
  reconfigure(command: string, globalArgs: string[]): void {
    this.options.command = command;
    this.options.globalArgs = globalArgs;
    this.restartCount = 0;
    this.child?.kill("SIGTERM");
  }

  /** Kills the running process as if it had crashed (tests, "Restart Bridge"). */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.child?.kill(signal);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.restartTimer);
    const { child, connection } = this;
    if (connection && child) {
      // Polite shutdown so the bridge ends its streams, then EOF; SIGKILL if
      // it does not go. stdin is ended only after the last write.
      const endInput = () => child.stdin?.end();
      const fallback = setTimeout(endInput, 1000);
      const killer = setTimeout(() => child.kill("SIGKILL"), 3000);
      fallback.unref();
      killer.unref();
      child.once("exit", () => clearTimeout(killer));
      connection
        .sendRequest("shutdown", {})
        .then(() => connection.sendNotification("exit"))
        .catch(() => undefined)
        .finally(() => {
          clearTimeout(fallback);
          endInput();
        });
    } else {
      child?.kill();
    }
    this.didStart.dispose();
  }

  private spawnProcess(): Promise<MessageConnection> {
    const args = [...(this.options.globalArgs ?? []), "stdio"];
    this.options.log(`starting ${this.options.command} ${args.join(" ")}`);
    return new Promise((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(this.options.command, args, {
          env: this.options.env ?? process.env,
          stdio: ["pipe", "pipe", "pipe"],
        });
      } catch (error) {
        reject(this.spawnError(error));
        return;
      }
      let settled = false;
      child.once("error", (error) => {
        if (!settled) {
          settled = true;
          reject(this.spawnError(error));
        } else {
          this.options.log(`bridge error: ${error.message}`);
        }
      });
      child.stdin!.on("error", (error) => this.options.log(`bridge stdin: ${error.message}`));
      child.stderr!.setEncoding("utf8");
      let partial = "";
      child.stderr!.on("data", (chunk: string) => {
        const lines = (partial + chunk).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) if (line.trim() !== "") this.options.log(line);
      });
      child.once("spawn", () => {
        settled = true;
        const connection = createMessageConnection(
          new StreamMessageReader(child.stdout!),
          new StreamMessageWriter(child.stdin!),
        );
        connection.onNotification((method: string, params: unknown) => this.dispatch(method, params));
        connection.onError(([error]) => this.options.log(`bridge protocol error: ${error.message}`));
        connection.listen();
        this.child = child;
        this.connection = connection;
        this.startedAt = Date.now();
        child.once("exit", (code, signal) => this.onExit(child, connection, code, signal));
        // `initialize` is optional; it names us in the bridge's logs.
        connection
          .sendRequest("initialize", {
            clientName: this.options.clientName ?? "vscode",
          })
          .catch(() => undefined);
        this.options.log(`bridge started (pid ${child.pid})`);
        this.didStart.fire(child.pid ?? 0);
        resolve(connection);
      });
    });
  }

  private spawnError(error: unknown): BridgeError {
    const e = error as NodeJS.ErrnoException;
    const reason =
      e?.code === "ENOENT"
        ? `${this.options.command} was not found. Install distant-bridge or set distant.bridgePath.`
        : `could not start ${this.options.command}: ${e?.message ?? String(error)}`;
    return new BridgeError(reason, "not_connected");
  }

  private onExit(
    child: ChildProcess,
    connection: MessageConnection,
    code: number | null,
    signal: NodeJS.Signals | null,
  ) {
    if (this.child !== child) return;
    this.child = undefined;
    this.connection = undefined;
    connection.dispose();
    const expected = this.disposed;
    this.options.log(`bridge exited (code ${code}, signal ${signal})`);
    this.didExit.fire({ code, signal, expected });
    if (this.disposed) return;
    if (Date.now() - this.startedAt > HEALTHY_UPTIME_MS) this.restartCount = 0;
    const delays = this.options.restartDelaysMs ?? DEFAULT_RESTART_DELAYS;
    const delay = delays[Math.min(this.restartCount, delays.length - 1)];
    this.restartCount += 1;
    this.options.log(`restarting the bridge in ${delay} ms`);
    this.restartTimer = setTimeout(() => {
      this.start().catch((error) => this.options.log(`bridge restart failed: ${error.message}`));
    }, delay);
  }

  private dispatch(method: string, params: unknown): void {
    const set = this.handlers.get(method);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(params);
      } catch (error) {
        this.options.log(`handler for ${method} failed: ${(error as Error).message}`);
      }
    }
  }
}

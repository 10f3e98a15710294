// Connections by authority: AUTHORITY → destination → bridge connection id.
// Connects on demand (single-flight per authority, so a burst of FS calls
// from a freshly opened window makes one `connect`), tracks each one's state
// from `connection/state`, and reconnects after a lost connection or a
// restarted bridge. Every remote call goes through `call`.
import { CancellationToken, Emitter, Event } from "vscode-jsonrpc/node";
import type { ConnectResult, ConnectionStateParams } from "./api";
import type { Bridge } from "./bridge";
import { DestinationMap, redactKeys, resolveDestination } from "./destinations";
import { BridgeError, isConnectionKind } from "./errors";

export type ConnectionStatus =
  "connecting" | "connected" | "reconnecting" | "lost" | "disconnected" | "failed";

export interface ConnectionInfo {
  authority: string;
  destination: string;
  connection?: string;
  status: ConnectionStatus;
  /** Why (reconnecting/lost/failed). */
  detail?: string;
}

interface Entry extends ConnectionInfo {
  pending?: Promise<string>;
  /** Set when the bridge died under a live connection: reconnect on restart. */
  resumeOnRestart?: boolean;
}

export class Connections {
  private readonly entries = new Map<string, Entry>();
  private readonly didChange = new Emitter<ConnectionInfo>();
  private readonly didConnect = new Emitter<{
    authority: string;
    connection: string;
  }>();
  private readonly subscriptions: { dispose(): void }[] = [];

  /** Any change of an authority's status. */
  readonly onDidChange: Event<ConnectionInfo> = this.didChange.event;
  /** A (new) connection id for an authority: re-open its streams. */
  readonly onDidConnect: Event<{ authority: string; connection: string }> = this.didConnect.event;

  constructor(
    readonly bridge: Bridge,
    private readonly destinations: () => DestinationMap,
    private readonly log: (line: string) => void = () => undefined,
    private readonly connectOptions: () => Record<string, unknown> | undefined = () => undefined,
  ) {
    this.subscriptions.push(
      bridge.onNotification("connection/state", (p: ConnectionStateParams) => this.onState(p)),
      bridge.onDidExit(({ expected }) => this.onBridgeExit(expected)),
      bridge.onDidStart(() => this.onBridgeStart()),
    );
  }

  /** The connection id for an authority, connecting (once) if needed. */
  connect(authority: string): Promise<string> {
    let entry = this.entries.get(authority);
    if (entry?.connection && (entry.status === "connected" || entry.status === "reconnecting")) {
      return Promise.resolve(entry.connection);
    }
    if (entry?.pending) return entry.pending;
    let destination: string;
    try {
      destination = resolveDestination(authority, this.destinations());
    } catch (error) {
      return Promise.reject(new BridgeError((error as Error).message, "invalid_params"));
    }
    if (!entry) {
      entry = { authority, destination, status: "connecting" };
      this.entries.set(authority, entry);
    }
    const target = entry;
    target.destination = destination;
    target.connection = undefined;
    this.update(target, "connecting", undefined);
    this.log(`connecting ${authority} (${redactKeys(destination)})`);
    target.pending = this.bridge
      .request<ConnectResult>("connect", { destination, options: this.connectOptions() })
      .then(
        (result) => {
          target.connection = result.connection;
          this.update(target, "connected", undefined);
          this.log(`connected ${authority}: connection ${result.connection}`);
          this.didConnect.fire({ authority, connection: result.connection });
          return result.connection;
        },
        (error: unknown) => {
          const e = BridgeError.from(error, "connect");
          this.update(target, "failed", e.message);
          this.log(`connect ${authority} failed: ${e.message}`);
          throw e;
        },
      )
      .finally(() => {
        target.pending = undefined;
      });
    return target.pending;
  }

  /**
   * A request on the authority's connection (`connection` is added to params).
   * A call that finds the connection gone reconnects and is retried once.
   */
  async call<T>(authority: string, method: string, params: object, token?: CancellationToken): Promise<T> {
    const connection = await this.connect(authority);
    try {
      return await this.bridge.request<T>(method, { connection, ...params }, token);
    } catch (error) {
      const e = BridgeError.from(error, method);
      if (!isConnectionKind(e.kind) || token?.isCancellationRequested) throw e;
      this.forget(authority, connection, e.kind === "connection_lost" ? "lost" : "disconnected", e.message);
      const fresh = await this.connect(authority);
      return await this.bridge.request<T>(method, { connection: fresh, ...params }, token);
    }
  }

  async disconnect(authority: string): Promise<void> {
    const entry = this.entries.get(authority);
    if (!entry?.connection) return;
    const connection = entry.connection;
    entry.connection = undefined;
    this.update(entry, "disconnected", "disconnected by you");
    await this.bridge.request("disconnect", { connection }).catch(() => undefined);
  }

  async reconnect(authority: string): Promise<string> {
    const entry = this.entries.get(authority);
    if (entry?.connection) {
      entry.connection = undefined;
      entry.status = "disconnected";
    }
    return this.connect(authority);
  }

  info(authority: string): ConnectionInfo | undefined {
    const entry = this.entries.get(authority);
    return entry && snapshot(entry);
  }

  all(): ConnectionInfo[] {
    return [...this.entries.values()].map(snapshot);
  }

  /** The id now in use for an authority, without connecting. */
  connectionId(authority: string): string | undefined {
    return this.entries.get(authority)?.connection;
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
    this.didChange.dispose();
    this.didConnect.dispose();
  }

  private forget(authority: string, connection: string, status: ConnectionStatus, detail: string) {
    const entry = this.entries.get(authority);
    if (entry && entry.connection === connection) {
      entry.connection = undefined;
      this.update(entry, status, detail);
    }
  }

  private onState(p: ConnectionStateParams): void {
    for (const entry of this.entries.values()) {
      if (entry.connection !== p.connection) continue;
      if (p.state === "lost" || p.state === "disconnected") entry.connection = undefined;
      this.update(entry, p.state, p.detail);
    }
  }

  private onBridgeExit(expected: boolean): void {
    for (const entry of this.entries.values()) {
      if (!entry.connection && !entry.pending) continue;
      entry.connection = undefined;
      entry.resumeOnRestart = !expected;
      // A crashed bridge is restarted and its connections redialled: that is
      // a reconnect from the user's point of view, not a loss.
      if (expected) this.update(entry, "disconnected", "the bridge stopped");
      else this.update(entry, "reconnecting", "the bridge process exited; restarting it");
    }
  }

  private onBridgeStart(): void {
    for (const entry of this.entries.values()) {
      if (!entry.resumeOnRestart) continue;
      entry.resumeOnRestart = false;
      this.connect(entry.authority).catch(() => undefined);
    }
  }

  private update(entry: Entry, status: ConnectionStatus, detail: string | undefined): void {
    entry.status = status;
    entry.detail = detail;
    this.didChange.fire(snapshot(entry));
  }
}

function snapshot(entry: Entry): ConnectionInfo {
  const { authority, destination, connection, status, detail } = entry;
  return { authority, destination, connection, status, detail };
}

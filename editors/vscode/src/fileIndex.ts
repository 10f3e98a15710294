// The remote file index behind Go to File: one `fs/index` (with `follow`)
// per distant:// folder, its pages collected into a set of relative paths as
// they stream in (the first show at once) and kept true by the bridge's
// `fs/index/changed`. An index whose connection went away or whose following
// ended is rebuilt on next use.
import { Emitter, Event } from "vscode-jsonrpc/node";
import type { Connections } from "./connections";
import { StreamRouter } from "./streams";

/** Files an index lists at most (the bridge's default). */
export const MAX_PATHS = 200_000;

export interface IndexChangedParams {
  index: string;
  removed?: string[];
  added: string[];
  reset?: boolean;
  ended?: string;
}

export interface IndexDoneParams {
  index: string;
  count: number;
  truncated: boolean;
  cancelled: boolean;
  note?: string;
  error?: string;
}

/** One followed index of one folder. */
export class RemoteIndex {
  readonly paths = new Set<string>();
  id: string | undefined;
  done = false;
  truncated = false;
  note: string | undefined;
  error: string | undefined;
  /** Not kept fresh any more: rebuild on next use. */
  stale = false;
  /** Bumped whenever `paths` changes. */
  version = 0;
  private sorted: string[] | undefined;
  private readonly changed = new Emitter<void>();
  readonly onDidChange: Event<void> = this.changed.event;

  constructor(
    readonly authority: string,
    readonly root: string,
  ) {}

  /** The paths, sorted (cached until the next change). */
  list(): string[] {
    this.sorted ??= [...this.paths].sort();
    return this.sorted;
  }

  /** Applies one `fs/index/*` notification (exported for tests). */
  apply(method: string, params: any): void {
    if (method === "fs/index/results") {
      for (const p of params.paths as string[]) this.paths.add(p);
    } else if (method === "fs/index/done") {
      const p = params as IndexDoneParams;
      this.done = true;
      this.truncated = p.truncated;
      this.note = p.note;
      this.error = p.error;
      if (p.error || p.cancelled) this.stale = true;
    } else if (method === "fs/index/changed") {
      const p = params as IndexChangedParams;
      if (p.reset) this.paths.clear();
      const removed = p.removed ?? [];
      if (removed.length > 0) {
        for (const r of removed) this.paths.delete(r);
        const prefixes = removed.map((r) => `${r}/`);
        for (const path of this.paths)
          if (prefixes.some((prefix) => path.startsWith(prefix))) this.paths.delete(path);
      }
      for (const a of p.added) this.paths.add(a);
      if (p.ended) this.stale = true;
    } else {
      return;
    }
    this.sorted = undefined;
    this.version++;
    this.changed.fire();
  }

  dispose(): void {
    this.changed.dispose();
  }
}

export class FileIndexes {
  private readonly router: StreamRouter;
  private readonly indexes = new Map<string, RemoteIndex>();
  private readonly subscription: { dispose(): void };

  constructor(private readonly connections: Connections) {
    this.router = new StreamRouter(connections.bridge, {
      "fs/index/results": "index",
      "fs/index/done": "index",
      "fs/index/changed": "index",
    });
    // A connection that went away took its index with it.
    this.subscription = connections.onDidChange((info) => {
      if (info.status === "connected" || info.status === "connecting") return;
      for (const index of this.indexes.values()) if (index.authority === info.authority) index.stale = true;
    });
  }

  /** The index of `root` on `authority`, started (not awaited) if needed. */
  get(authority: string, root: string): RemoteIndex {
    const key = `${authority}\u0000${root}`;
    const existing = this.indexes.get(key);
    if (existing && !existing.stale) return existing;
    if (existing) this.stop(existing);
    const index = new RemoteIndex(authority, root);
    this.indexes.set(key, index);
    this.connections
      .call<{ index: string }>(authority, "fs/index", { root, follow: true, maxPaths: MAX_PATHS })
      .then((r) => {
        index.id = r.index;
        this.router.register(r.index, (method, params) => index.apply(method, params));
      })
      .catch((error: Error) => {
        index.apply("fs/index/done", {
          index: "",
          count: 0,
          truncated: false,
          cancelled: false,
          error: error.message,
        });
      });
    return index;
  }

  private stop(index: RemoteIndex): void {
    if (index.id) {
      this.router.unregister(index.id);
      const connection = this.connections.connectionId(index.authority);
      if (connection)
        this.connections.bridge
          .request("fs/index/cancel", { connection, index: index.id })
          .catch(() => undefined);
    }
    index.dispose();
  }

  dispose(): void {
    for (const index of this.indexes.values()) this.stop(index);
    this.indexes.clear();
    this.subscription.dispose();
    this.router.dispose();
  }
}

// The FileSystemProvider of the `distant` scheme: every workbench file
// operation on `distant://AUTHORITY/PATH` becomes a bridge call on that
// authority's connection (connected on demand). Owns the etags used for
// conflict detection and the watches behind onDidChangeFile.
import * as vscode from "vscode";
import type { EntryType, FsChangedParams, Metadata, ReadDirResult, ReadResult, WriteResult } from "./api";
import type { Bridge } from "./bridge";
import type { Connections } from "./connections";
import { joinRemote, remotePath } from "./destinations";
import { BridgeError, toFileSystemError } from "./errors";
import { StreamRouter } from "./streams";

/** Files are read in ranges of this size, a few at a time, so memory per call stays bounded. */
export const READ_RANGE = 4 * 1024 * 1024;
const READS_IN_FLIGHT = 3;
/** Contents larger than this are saved as one chunked write of ranges this size. */
export const WRITE_RANGE = 4 * 1024 * 1024;
const WRITES_IN_FLIGHT = 3;
/** How far up a watch of a missing path climbs to find an existing directory. */
const MISSING_WATCH_LEVELS = 3;

interface WatchState {
  uri: vscode.Uri;
  recursive: boolean;
  excludes: string[];
  connection?: string;
  watchId?: string;
  /** What the remote watch is on: the path itself, or an existing ancestor while it does not exist. */
  watchedPath?: string;
  /** The target did not exist at the last watch: report it as created once it does. */
  missing?: boolean;
  disposed: boolean;
  starting: boolean;
  router?: { dispose(): void };
}

export class DistantFileSystemProvider implements vscode.FileSystemProvider, vscode.Disposable {
  private readonly didChangeFile = new vscode.EventEmitter<vscode.FileChangeEvent[]>();
  readonly onDidChangeFile = this.didChangeFile.event;

  /**
   * uri → etag of the content the editor last saw (read, stat or written).
   * `writeFile` passes it as `ifEtag`: a file changed on the remote since
   * then is a conflict, not a silent overwrite. stat refreshes it because the
   * workbench stats before saving and runs its own mtime check (with
   * Compare/Overwrite); ours then closes the gap between that stat and the
   * write.
   */
  private readonly etags = new Map<string, string>();
  private readonly watches = new Set<WatchState>();
  private readonly router: StreamRouter;
  private readonly subscriptions: { dispose(): void }[] = [];

  constructor(
    bridge: Bridge,
    private readonly connections: Connections,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.router = new StreamRouter(bridge, {
      "fs/changed": "watch",
      "fs/watchEnded": "watch",
    });
    this.subscriptions.push(
      connections.onDidConnect(({ authority, connection }) => this.rewatch(authority, connection)),
      // A new bridge process reuses ids ("1"…): every watch of the old one is gone.
      bridge.onDidExit(() => {
        for (const state of this.watches) this.dropWatch(state);
      }),
    );
  }

  // --- stat / list ---------------------------------------------------------

  async stat(uri: vscode.Uri): Promise<vscode.FileStat> {
    return this.guard(uri, async () => {
      let meta: Metadata;
      try {
        meta = await this.call<Metadata>(uri, "fs/metadata", { path: remotePath(uri.path) });
      } catch (error) {
        // Gone: saving it again (the workbench stats first) recreates it, no conflict.
        if (error instanceof BridgeError && error.kind === "not_found") this.etags.delete(uri.toString());
        throw error;
      }
      let type = fileType(meta.type);
      if (meta.type === "symlink") {
        // VS Code wants a link's target type plus the SymbolicLink bit.
        try {
          meta = await this.call<Metadata>(uri, "fs/metadata", {
            path: remotePath(uri.path),
            followSymlinks: true,
          });
          type = fileType(meta.type) | vscode.FileType.SymbolicLink;
        } catch (error) {
          if (!(error instanceof BridgeError && error.kind === "not_found")) throw error;
          type = vscode.FileType.SymbolicLink; // dangling
        }
      }
      if (meta.etag && meta.type === "file") this.etags.set(uri.toString(), meta.etag);
      const stat: vscode.FileStat = {
        type,
        ctime: meta.ctime ?? meta.mtime,
        mtime: meta.mtime,
        size: meta.size,
      };
      if (meta.readonly) stat.permissions = vscode.FilePermission.Readonly;
      return stat;
    });
  }

  async readDirectory(uri: vscode.Uri): Promise<[string, vscode.FileType][]> {
    return this.guard(uri, async () => {
      const dir = remotePath(uri.path);
      const result = await this.call<ReadDirResult>(uri, "fs/readDir", {
        path: dir,
        depth: 1,
      });
      return Promise.all(
        result.entries.map(async (entry): Promise<[string, vscode.FileType]> => {
          const name = entry.path.split("/").pop() ?? entry.path;
          if (entry.type !== "symlink") return [name, fileType(entry.type)];
          // Resolve links so the Explorer can expand linked directories.
          try {
            const target = await this.call<Metadata>(uri, "fs/metadata", {
              path: joinRemote(dir, entry.path),
              followSymlinks: true,
            });
            return [name, fileType(target.type) | vscode.FileType.SymbolicLink];
          } catch {
            return [name, vscode.FileType.SymbolicLink];
          }
        }),
      );
    });
  }

  // --- content -------------------------------------------------------------

  async readFile(uri: vscode.Uri): Promise<Uint8Array> {
    return this.guard(uri, async () => {
      const path = remotePath(uri.path);
      for (let attempt = 0; ; attempt++) {
        const first = await this.readRange(uri, path, 0, READ_RANGE);
        const firstBytes = decode(first);
        if (first.size <= firstBytes.length) {
          this.etags.set(uri.toString(), first.etag);
          return firstBytes;
        }
        const whole = await this.readRest(uri, path, first, firstBytes);
        if (whole) {
          this.etags.set(uri.toString(), first.etag);
          return whole;
        }
        // The file changed between ranges: start over once, then report it.
        if (attempt >= 1) {
          throw new BridgeError(`${path} kept changing while it was read; try again`, "conflict");
        }
      }
    });
  }

  async writeFile(
    uri: vscode.Uri,
    content: Uint8Array,
    options: { readonly create: boolean; readonly overwrite: boolean },
  ): Promise<void> {
    return this.guard(uri, async () => {
      const key = uri.toString();
      const params: Record<string, unknown> = {
        path: remotePath(uri.path),
        create: options.create,
        overwrite: options.overwrite,
      };
      const etag = this.etags.get(key);
      if (etag !== undefined && options.overwrite) params.ifEtag = etag;
      const result =
        content.byteLength <= WRITE_RANGE
          ? await this.call<WriteResult>(uri, "fs/write", {
              ...params,
              data: base64(content),
              encoding: "base64",
            })
          : await this.writeChunked(uri, params, content);
      this.etags.set(key, result.etag);
    });
  }

  // --- tree operations -----------------------------------------------------

  async delete(uri: vscode.Uri, options: { readonly recursive: boolean }): Promise<void> {
    return this.guard(uri, async () => {
      await this.call(uri, "fs/remove", {
        path: remotePath(uri.path),
        force: options.recursive,
      });
      this.forgetEtags(uri);
    });
  }

  async rename(
    oldUri: vscode.Uri,
    newUri: vscode.Uri,
    options: { readonly overwrite: boolean },
  ): Promise<void> {
    return this.guard(newUri, async () => {
      this.sameAuthority(oldUri, newUri);
      await this.call(oldUri, "fs/rename", {
        src: remotePath(oldUri.path),
        dst: remotePath(newUri.path),
        overwrite: options.overwrite,
      });
      this.forgetEtags(oldUri);
      this.forgetEtags(newUri);
    });
  }

  async copy(
    source: vscode.Uri,
    destination: vscode.Uri,
    options: { readonly overwrite: boolean },
  ): Promise<void> {
    return this.guard(destination, async () => {
      this.sameAuthority(source, destination);
      const dst = remotePath(destination.path);
      // The server copies under a temporary name and renames it into
      // place: a failed copy leaves the destination as it was.
      await this.call(source, "fs/copy", {
        src: remotePath(source.path),
        dst,
        overwrite: options.overwrite,
      });
      this.forgetEtags(destination);
    });
  }

  async createDirectory(uri: vscode.Uri): Promise<void> {
    return this.guard(uri, async () => {
      await this.call(uri, "fs/createDir", { path: remotePath(uri.path) });
    });
  }

  // --- watching ------------------------------------------------------------

  watch(
    uri: vscode.Uri,
    options: {
      readonly recursive: boolean;
      readonly excludes: readonly string[];
    },
  ): vscode.Disposable {
    const state: WatchState = {
      uri,
      recursive: options.recursive,
      excludes: [...options.excludes],
      disposed: false,
      starting: false,
    };
    this.watches.add(state);
    void this.startWatch(state);
    return new vscode.Disposable(() => this.stopWatch(state));
  }

  dispose(): void {
    for (const state of [...this.watches]) this.stopWatch(state);
    for (const s of this.subscriptions) s.dispose();
    this.router.dispose();
    this.didChangeFile.dispose();
  }

  /** Number of live watches (tests, status). */
  get watchCount(): number {
    return this.watches.size;
  }

  private async startWatch(state: WatchState): Promise<void> {
    if (state.starting) return;
    state.starting = true;
    const target = remotePath(state.uri.path);
    try {
      const connection = await this.connections.connect(state.uri.authority);
      if (state.disposed) return;
      // The workbench watches paths that do not exist yet (.vscode/settings.json)
      // to hear when they appear: watch the nearest existing ancestor instead
      // (a few levels at most) and keep only the events about the target.
      let path = target;
      let result: { watch: string } | undefined;
      for (let levels = 0; ; levels++) {
        const recursive = state.recursive || levels > 1;
        try {
          result = await this.watchRequest(connection, path, recursive, state.excludes);
          break;
        } catch (error) {
          const parent = path.slice(0, path.lastIndexOf("/")) || "/";
          const missing = error instanceof BridgeError && error.kind === "not_found";
          if (!missing || levels >= MISSING_WATCH_LEVELS || parent === "/" || parent === path) throw error;
          path = parent;
        }
      }
      state.connection = connection;
      state.watchId = result.watch;
      state.watchedPath = path;
      if (path !== target) state.missing = true;
      else if (state.missing) {
        // It appeared between two watches (inotify cannot see into a
        // directory before it watches it): say so ourselves.
        state.missing = false;
        this.didChangeFile.fire([{ type: vscode.FileChangeType.Created, uri: state.uri }]);
      }
      state.router = this.router.register(result.watch, (method, params) =>
        this.onWatchEvent(state, method, params),
      );
      if (state.disposed) this.stopWatch(state);
    } catch (error) {
      // Watching is best effort: the workbench still works, it just polls less.
      this.log(`watch ${state.uri.toString()} failed: ${(error as Error).message}`);
    } finally {
      state.starting = false;
    }
  }

  private async watchRequest(connection: string, path: string, recursive: boolean, excludes: string[]) {
    const base = { connection, path, recursive };
    try {
      return await this.bridgeRequest<{ watch: string }>("fs/watch", { ...base, exclude: excludes });
    } catch (error) {
      // A glob the server cannot parse must not cost us the watch.
      if (!(error instanceof BridgeError && error.kind === "invalid_params") || excludes.length === 0) {
        throw error;
      }
      return await this.bridgeRequest<{ watch: string }>("fs/watch", base);
    }
  }

  /** Forgets a watch's remote side (gone with its connection); keeps the subscription. */
  private dropWatch(state: WatchState): void {
    state.router?.dispose();
    state.router = undefined;
    state.watchId = undefined;
    state.connection = undefined;
    state.watchedPath = undefined;
  }

  private stopWatch(state: WatchState): void {
    state.disposed = true;
    this.watches.delete(state);
    state.router?.dispose();
    const { connection, watchId } = state;
    state.watchId = undefined;
    if (connection && watchId) {
      this.bridgeRequest("fs/unwatch", { connection, watch: watchId }).catch(() => undefined);
    }
  }

  /** After a reconnect (new connection, or a new bridge), the old watches are gone. */
  private rewatch(authority: string, connection: string): void {
    for (const state of this.watches) {
      if (state.uri.authority !== authority || state.starting) continue;
      if (state.watchId && state.connection === connection) continue;
      this.dropWatch(state);
      void this.startWatch(state);
    }
  }

  private onWatchEvent(state: WatchState, method: string, params: any): void {
    if (method === "fs/watchEnded") {
      this.log(`watch ${state.uri.toString()} ended: ${params?.error ?? "no reason given"}`);
      this.dropWatch(state);
      // Usually its path was deleted: watch again (an ancestor, until it is
      // back). A lost connection is picked up by rewatch on reconnect instead.
      const retry = setTimeout(() => {
        if (!state.disposed && !state.watchId && this.connections.connectionId(state.uri.authority)) {
          void this.startWatch(state);
        }
      }, 200);
      retry.unref?.();
      return;
    }
    const target = remotePath(state.uri.path);
    const watched = state.watchedPath ?? target;
    let events = changeEvents(state.uri.with({ path: watched }), (params as FsChangedParams).changes ?? []);
    if (watched !== target) {
      // Watching an ancestor of a missing path: a directory on the way to the
      // target (or the target) appeared, so watch closer; only events about
      // the target (and, for a recursive watch, under it) are reported.
      const closer = events.some(
        (e) =>
          e.type === vscode.FileChangeType.Created &&
          (e.uri.path === target || target.startsWith(`${e.uri.path}/`)),
      );
      events = events.filter(
        (e) =>
          e.type !== vscode.FileChangeType.Created &&
          (e.uri.path === target || (state.recursive && e.uri.path.startsWith(`${target}/`))),
      );
      if (closer) {
        const { connection, watchId } = state;
        this.dropWatch(state);
        if (connection && watchId) {
          this.bridgeRequest("fs/unwatch", { connection, watch: watchId }).catch(() => undefined);
        }
        void this.startWatch(state);
      }
    }
    for (const event of events) {
      // A change keeps the etag we saw (a save over it must be a conflict);
      // a deletion drops it (saving then recreates the file).
      if (event.type === vscode.FileChangeType.Deleted) this.etags.delete(event.uri.toString());
    }
    if (events.length > 0) this.didChangeFile.fire(events);
  }

  // --- helpers -------------------------------------------------------------

  private async readRange(
    uri: vscode.Uri,
    path: string,
    offset: number,
    length: number,
  ): Promise<ReadResult> {
    return this.call<ReadResult>(uri, "fs/read", {
      path,
      offset,
      length,
      encoding: "base64",
    });
  }

  /**
   * Saves big contents as one chunked write (fs/writeStart, ranges a few at
   * a time, fs/writeFinish): as atomic and etag-checked as fs/write, with no
   * size limit. On failure the write is aborted and the remote file is as it
   * was.
   */
  private async writeChunked(uri: vscode.Uri, params: Record<string, unknown>, content: Uint8Array) {
    const { write } = await this.call<{ write: string }>(uri, "fs/writeStart", params);
    const offsets: number[] = [];
    for (let offset = 0; offset < content.byteLength; offset += WRITE_RANGE) offsets.push(offset);
    try {
      const worker = async () => {
        for (let offset = offsets.shift(); offset !== undefined; offset = offsets.shift()) {
          const data = base64(content.subarray(offset, offset + WRITE_RANGE));
          await this.call(uri, "fs/writeChunk", { write, offset, data, encoding: "base64" });
        }
      };
      await Promise.all(Array.from({ length: WRITES_IN_FLIGHT }, worker));
    } catch (error) {
      offsets.length = 0; // the other workers stop after their current range
      await this.call(uri, "fs/writeAbort", { write }).catch(() => undefined);
      throw error;
    }
    return this.call<WriteResult>(uri, "fs/writeFinish", { write });
  }

  /** Reads every range after the first; undefined if the file changed meanwhile. */
  private async readRest(uri: vscode.Uri, path: string, first: ReadResult, firstBytes: Uint8Array) {
    const size = first.size;
    const whole = new Uint8Array(size);
    whole.set(firstBytes, 0);
    const offsets: number[] = [];
    for (let offset = firstBytes.length; offset < size; offset += READ_RANGE) offsets.push(offset);
    let changed = false;
    let filled = firstBytes.length;
    const worker = async () => {
      for (let offset = offsets.shift(); offset !== undefined && !changed; offset = offsets.shift()) {
        const range = await this.readRange(uri, path, offset, Math.min(READ_RANGE, size - offset));
        if (range.etag !== first.etag || range.size !== size) {
          changed = true;
          return;
        }
        const bytes = decode(range);
        whole.set(bytes.subarray(0, size - offset), offset);
        filled += bytes.length;
      }
    };
    await Promise.all(Array.from({ length: READS_IN_FLIGHT }, worker));
    if (changed || filled < size) return undefined;
    return whole;
  }

  private call<T>(uri: vscode.Uri, method: string, params: object): Promise<T> {
    return this.connections.call<T>(uri.authority, method, params);
  }

  private bridgeRequest<T>(method: string, params: object): Promise<T> {
    return this.connections.bridge.request<T>(method, params);
  }

  private sameAuthority(a: vscode.Uri, b: vscode.Uri): void {
    if (a.authority !== b.authority) {
      throw new BridgeError(
        `cannot move or copy between remotes (${a.authority} → ${b.authority})`,
        "unsupported",
      );
    }
  }

  private forgetEtags(uri: vscode.Uri): void {
    const prefix = uri.toString();
    for (const key of this.etags.keys())
      if (key === prefix || key.startsWith(`${prefix}/`)) this.etags.delete(key);
  }

  private async guard<T>(uri: vscode.Uri, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw toFileSystemError(error, uri);
    }
  }
}

export function fileType(type: EntryType): vscode.FileType {
  switch (type) {
    case "file":
      return vscode.FileType.File;
    case "dir":
      return vscode.FileType.Directory;
    case "symlink":
      return vscode.FileType.SymbolicLink;
    default:
      return vscode.FileType.Unknown;
  }
}

/** `fs/changed` entries → workbench events; a rename is a delete plus a create. */
export function changeEvents(
  root: vscode.Uri,
  changes: FsChangedParams["changes"],
): vscode.FileChangeEvent[] {
  const base = remotePath(root.path);
  const at = (path: string) => root.with({ path: joinRemote(base, path) });
  const events: vscode.FileChangeEvent[] = [];
  for (const change of changes) {
    switch (change.kind) {
      case "created":
        events.push({
          type: vscode.FileChangeType.Created,
          uri: at(change.path),
        });
        break;
      case "modified":
      case "attributes":
        events.push({
          type: vscode.FileChangeType.Changed,
          uri: at(change.path),
        });
        break;
      case "deleted":
        events.push({
          type: vscode.FileChangeType.Deleted,
          uri: at(change.path),
        });
        break;
      case "renamed":
        events.push({
          type: vscode.FileChangeType.Deleted,
          uri: at(change.path),
        });
        if (change.to)
          events.push({
            type: vscode.FileChangeType.Created,
            uri: at(change.to),
          });
        break;
    }
  }
  return events;
}

function decode(result: ReadResult): Uint8Array {
  const buffer = Buffer.from(result.data, result.encoding === "base64" ? "base64" : "utf8");
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

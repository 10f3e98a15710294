// Find in Files for distant:// folders, as a view (text search for custom
// schemes is a proposed API): a TreeView of results grouped by file with the
// matches highlighted, streamed from `search/start`; include/exclude globs,
// case and regex toggles, cancel; a click opens the file at the match.
// Replace (one file or all) goes through a WorkspaceEdit — undoable like any
// edit — and saves the touched documents through the FileSystemProvider,
// whose etag check refuses to overwrite a file that changed on the remote.
import * as vscode from "vscode";
import type { SearchDoneParams, SearchMatch, SearchResultsParams } from "./api";
import type { Connections } from "./connections";
import { SCHEME, uriString } from "./destinations";
import { StreamRouter } from "./streams";

/** Matches kept per search (the view says when it stopped there). */
const MAX_RESULTS = 20_000;

export interface FindOptions {
  pattern: string;
  regex: boolean;
  caseSensitive: boolean;
  include: string[];
  exclude: string[];
}

export interface FileNode {
  kind: "file";
  uri: vscode.Uri;
  rel: string;
  matches: MatchNode[];
}

export interface MatchNode {
  kind: "match";
  file: FileNode;
  /** 0-based line. */
  line: number;
  text: string;
  /** UTF-16 ranges of the matches within `text`. */
  ranges: [number, number][];
}

type Node = FileNode | MatchNode;

/** UTF-8 byte offsets of `text` → UTF-16 indexes (exported for tests). */
export function utf16Ranges(text: string, submatches: { start: number; end: number }[]): [number, number][] {
  const bytes = Buffer.from(text, "utf8");
  const at = (b: number) => bytes.subarray(0, Math.min(b, bytes.length)).toString("utf8").length;
  return submatches.map((s) => [at(s.start), at(s.end)]);
}

/**
 * The text replacing `matched` (exported for tests): with `regex`, `$1`…
 * refer to its groups (JavaScript's replace; the search itself used
 * ripgrep's syntax, which agrees for common patterns).
 */
export function replacementFor(matched: string, options: FindOptions, replacement: string): string {
  if (!options.regex) return replacement;
  try {
    const re = new RegExp(`^(?:${options.pattern})$`, options.caseSensitive ? "su" : "isu");
    return matched.replace(re, replacement);
  } catch {
    return replacement;
  }
}

export class FindInFiles implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly router: StreamRouter;
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  readonly view: vscode.TreeView<Node>;
  private files = new Map<string, FileNode>();
  private count = 0;
  private searchId: string | undefined;
  private authority = "";
  private running = false;
  private refreshTimer: NodeJS.Timeout | undefined;
  /** Settles when the current search is over. */
  private finished: Promise<void> = Promise.resolve();
  options: FindOptions = { pattern: "", regex: false, caseSensitive: false, include: [], exclude: [] };
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly connections: Connections) {
    this.router = new StreamRouter(connections.bridge, {
      "search/results": "search",
      "search/done": "search",
    });
    this.view = vscode.window.createTreeView("distant.findResults", {
      treeDataProvider: this,
      showCollapseAll: true,
    });
    this.disposables.push(
      this.view,
      vscode.commands.registerCommand("distant.find", (pattern?: string) => this.ask(pattern)),
      vscode.commands.registerCommand("distant.find.cancel", () => this.cancel()),
      vscode.commands.registerCommand("distant.find.toggleCase", () => this.toggle("caseSensitive")),
      vscode.commands.registerCommand("distant.find.toggleRegex", () => this.toggle("regex")),
      vscode.commands.registerCommand("distant.find.setGlobs", () => this.askGlobs()),
      vscode.commands.registerCommand("distant.find.replaceAll", (replacement?: string) =>
        this.replace([...this.files.values()], replacement),
      ),
      vscode.commands.registerCommand("distant.find.replaceFile", (file: FileNode, replacement?: string) =>
        this.replace(file ? [file] : [], replacement),
      ),
    );
  }

  /** All results, by file (for tests and replace). */
  results(): FileNode[] {
    return [...this.files.values()].sort((a, b) => a.rel.localeCompare(b.rel));
  }

  /** Settles when the running search (if any) is over. */
  done(): Promise<void> {
    return this.finished;
  }

  private folder(): vscode.Uri | undefined {
    const active = vscode.window.activeTextEditor?.document.uri;
    const remote = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === SCHEME);
    return (
      (
        active &&
        remote.find((f) => f.uri.authority === active.authority && active.path.startsWith(f.uri.path))
      )?.uri ?? remote[0]?.uri
    );
  }

  private async ask(pattern?: string): Promise<void> {
    pattern ??= await vscode.window.showInputBox({
      title: `distant: Find in Files (${this.describe()})`,
      prompt: "Text to find in the remote folder's files",
      value: this.options.pattern,
    });
    if (!pattern) return;
    const folder = this.folder();
    if (!folder) {
      void vscode.window.showErrorMessage(
        "distant: Find in Files needs a distant:// folder in the workspace.",
      );
      return;
    }
    await this.search(folder, { ...this.options, pattern });
  }

  private async askGlobs(): Promise<void> {
    const include = await vscode.window.showInputBox({
      title: "distant: files to include (comma-separated globs, e.g. src/**, *.ts)",
      value: this.options.include.join(", "),
    });
    if (include === undefined) return;
    const exclude = await vscode.window.showInputBox({
      title: "distant: files to exclude (comma-separated globs, e.g. node_modules, *.min.js)",
      value: this.options.exclude.join(", "),
    });
    if (exclude === undefined) return;
    const split = (s: string) =>
      s
        .split(",")
        .map((g) => g.trim())
        .filter(Boolean);
    this.options = { ...this.options, include: split(include), exclude: split(exclude) };
    this.updateMessage();
  }

  private toggle(what: "caseSensitive" | "regex"): void {
    this.options = { ...this.options, [what]: !this.options[what] };
    this.updateMessage();
    const folder = this.folder();
    if (this.options.pattern && folder) void this.search(folder, this.options);
  }

  private describe(): string {
    const o = this.options;
    const parts = [o.caseSensitive ? "Aa: match case" : "Aa: any case", o.regex ? ".*: regex" : "literal"];
    if (o.include.length) parts.push(`include ${o.include.join(", ")}`);
    if (o.exclude.length) parts.push(`exclude ${o.exclude.join(", ")}`);
    return parts.join(" · ");
  }

  private updateMessage(status?: string): void {
    this.view.description = this.describe();
    if (status !== undefined) this.view.message = status;
  }

  /** Runs a search under `folder`, replacing the shown results. */
  async search(folder: vscode.Uri, options: FindOptions): Promise<void> {
    await this.cancel();
    this.options = options;
    this.files = new Map();
    this.count = 0;
    this.authority = folder.authority;
    this.running = true;
    void vscode.commands.executeCommand("setContext", "distant.findRunning", true);
    this.updateMessage(`Searching for “${options.pattern}”…`);
    // Show the results view (the workbench's `<view>.focus` command).
    void vscode.commands.executeCommand("distant.findResults.focus").then(undefined, () => undefined);
    this.changed.fire(undefined);
    const root = folder.path || "/";
    let finish!: () => void;
    this.finished = new Promise((resolve) => (finish = resolve));
    const end = (status: string) => {
      this.running = false;
      void vscode.commands.executeCommand("setContext", "distant.findRunning", false);
      this.flush();
      this.updateMessage(status);
      finish();
    };
    try {
      const r = await this.connections.call<{ search: string }>(folder.authority, "search/start", {
        query: {
          target: "contents",
          pattern: options.pattern,
          regex: options.regex,
          caseSensitive: options.caseSensitive,
          paths: [root],
          include: options.include,
          exclude: options.exclude,
          maxResults: MAX_RESULTS,
        },
      });
      this.searchId = r.search;
      const registration = this.router.register(r.search, (method, params) => {
        if (method === "search/results") {
          for (const m of (params as SearchResultsParams).matches) this.add(folder.authority, root, m);
          this.refreshSoon();
          return;
        }
        registration.dispose();
        this.searchId = undefined;
        const p = params as SearchDoneParams & { cancelled?: boolean };
        const files = this.files.size;
        const summary = `${this.count} result${this.count === 1 ? "" : "s"} in ${files} file${files === 1 ? "" : "s"}`;
        end(
          p.error
            ? `Search failed: ${p.error}`
            : p.cancelled
              ? `${summary} (cancelled)`
              : p.truncated
                ? `${summary} (stopped at ${MAX_RESULTS}; narrow the search)`
                : this.count === 0
                  ? `No results for “${options.pattern}”`
                  : summary,
        );
      });
    } catch (error) {
      end(`Search failed: ${(error as Error).message}`);
    }
  }

  private add(authority: string, root: string, m: SearchMatch): void {
    if (m.line === undefined || m.text === undefined) return;
    let file = this.files.get(m.path);
    if (!file) {
      const rel = m.path.startsWith(`${root}/`) ? m.path.slice(root.length + 1) : m.path;
      file = { kind: "file", uri: vscode.Uri.parse(uriString(authority, m.path)), rel, matches: [] };
      this.files.set(m.path, file);
    }
    const ranges = utf16Ranges(m.text, m.submatches);
    file.matches.push({ kind: "match", file, line: m.line - 1, text: m.text, ranges });
    this.count += ranges.length;
  }

  /** Results stream in fast: redraw at most every 100 ms. */
  private refreshSoon(): void {
    this.refreshTimer ??= setTimeout(() => this.flush(), 100);
  }

  private flush(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.changed.fire(undefined);
  }

  async cancel(): Promise<void> {
    const id = this.searchId;
    if (!id || !this.running) return;
    const connection = this.connections.connectionId(this.authority);
    if (connection)
      await this.connections.bridge
        .request("search/cancel", { connection, search: id })
        .catch(() => undefined);
    await this.finished;
  }

  /**
   * Replaces the matches of `files` with `replacement` (asked for when not
   * given) in one WorkspaceEdit, then saves the touched documents. Lines
   * that changed since the search are skipped and reported.
   */
  async replace(files: FileNode[], replacement?: string): Promise<{ replaced: number; skipped: number }> {
    if (files.length === 0) return { replaced: 0, skipped: 0 };
    replacement ??= await vscode.window.showInputBox({
      title: `distant: replace “${this.options.pattern}” in ${files.length === 1 ? files[0].rel : `${files.length} files`} with`,
    });
    if (replacement === undefined) return { replaced: 0, skipped: 0 };
    const edit = new vscode.WorkspaceEdit();
    const documents: vscode.TextDocument[] = [];
    let replaced = 0;
    let skipped = 0;
    for (const file of files) {
      const doc = await vscode.workspace.openTextDocument(file.uri);
      documents.push(doc);
      for (const m of file.matches) {
        if (m.line >= doc.lineCount || doc.lineAt(m.line).text !== m.text) {
          skipped += m.ranges.length;
          continue;
        }
        for (const [start, end] of m.ranges) {
          const range = new vscode.Range(m.line, start, m.line, end);
          edit.replace(file.uri, range, replacementFor(m.text.slice(start, end), this.options, replacement));
          replaced++;
        }
      }
    }
    if (!(await vscode.workspace.applyEdit(edit))) {
      void vscode.window.showErrorMessage(
        "distant: the replacement could not be applied; run the search again.",
      );
      return { replaced: 0, skipped };
    }
    const failed: string[] = [];
    for (const doc of documents)
      if (!(await doc.save())) failed.push(vscode.workspace.asRelativePath(doc.uri));
    if (failed.length)
      void vscode.window.showErrorMessage(
        `distant: replaced, but could not save ${failed.join(", ")} (changed on the remote meanwhile?): the edits are in the editor; compare and save again.`,
      );
    if (skipped)
      void vscode.window.showWarningMessage(
        `distant: ${skipped} match${skipped === 1 ? "" : "es"} left alone: the line changed since the search.`,
      );
    for (const f of files) this.files.delete(f.uri.path);
    this.count = [...this.files.values()].reduce(
      (n, f) => n + f.matches.reduce((k, m) => k + m.ranges.length, 0),
      0,
    );
    this.flush();
    this.updateMessage(
      `Replaced ${replaced} match${replaced === 1 ? "" : "es"}${skipped ? `, ${skipped} left alone` : ""}`,
    );
    return { replaced, skipped };
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === "file") {
      const item = new vscode.TreeItem(node.uri, vscode.TreeItemCollapsibleState.Expanded);
      item.description = `${node.rel.includes("/") ? node.rel.slice(0, node.rel.lastIndexOf("/")) : ""} · ${node.matches.length}`;
      item.contextValue = "file";
      return item;
    }
    // A long line shows around its first match.
    const first = node.ranges[0]?.[0] ?? 0;
    const cut = first > 40 ? first - 20 : 0;
    const text = (cut ? "…" : "") + node.text.slice(cut);
    const shift = cut ? 1 - cut : 0;
    const item = new vscode.TreeItem(
      { label: text, highlights: node.ranges.map(([s, e]) => [s + shift, e + shift] as [number, number]) },
      vscode.TreeItemCollapsibleState.None,
    );
    item.description = `${node.line + 1}`;
    item.contextValue = "match";
    const start = node.ranges[0] ?? [0, 0];
    item.command = {
      command: "vscode.open",
      title: "Open",
      arguments: [node.file.uri, { selection: new vscode.Range(node.line, start[0], node.line, start[1]) }],
    };
    return item;
  }

  getChildren(node?: Node): Node[] {
    if (!node) return this.results();
    return node.kind === "file" ? node.matches : [];
  }

  getParent(node: Node): Node | undefined {
    return node.kind === "match" ? node.file : undefined;
  }

  dispose(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    for (const d of this.disposables) d.dispose();
    this.router.dispose();
    this.changed.dispose();
  }
}

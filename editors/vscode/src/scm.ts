// Source Control for distant:// folders through the public `vscode.scm` API:
// one SourceControl per folder inside a git repository on the remote, with
// staged / changes / untracked groups from `git status`, quick diff against
// HEAD in the gutter (a `distant-git:` content provider as the original
// resource), open changes, stage, unstage, discard, commit with the input
// box's message, and the branch in the status bar. Refreshed by file events
// of the folder (the provider's watch), not by polling. A folder is looked
// at once its remote is connected.
import * as vscode from "vscode";
import type { Connections } from "./connections";
import { SCHEME, uriString } from "./destinations";
import { GitError, RemoteGit, StatusEntry } from "./git";
import type { StreamRouter } from "./streams";

export const GIT_SCHEME = "distant-git";
/** File events are gathered this long before git status runs again. */
const REFRESH_DELAY_MS = 300;

interface Resource extends vscode.SourceControlResourceState {
  repo: Repository;
  entry: StatusEntry;
  group: "staged" | "changes" | "untracked";
}

/** `distant-git://AUTHORITY/ABS/PATH?{"top":…,"ref":…}`: `path` at `ref` (exported for tests). */
export function originalUri(authority: string, top: string, path: string, ref: string): vscode.Uri {
  const file = vscode.Uri.parse(uriString(authority, `${top}/${path}`));
  return file.with({ scheme: GIT_SCHEME, query: JSON.stringify({ top, path, ref }) });
}

const LABELS: Record<string, string> = {
  M: "Modified",
  A: "Added",
  D: "Deleted",
  R: "Renamed",
  C: "Copied",
  U: "Conflict",
  T: "Type changed",
  "?": "Untracked",
};

/** One repository shown in the Source Control view. */
export class Repository implements vscode.Disposable {
  readonly sourceControl: vscode.SourceControl;
  readonly staged: vscode.SourceControlResourceGroup;
  readonly changes: vscode.SourceControlResourceGroup;
  readonly untracked: vscode.SourceControlResourceGroup;
  branch = "";
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    readonly git: RemoteGit,
    readonly folder: vscode.Uri,
    readonly top: string,
  ) {
    const root = vscode.Uri.parse(uriString(folder.authority, top));
    this.sourceControl = vscode.scm.createSourceControl("distant-git", `Git (${folder.authority})`, root);
    this.staged = this.sourceControl.createResourceGroup("staged", "Staged Changes");
    this.changes = this.sourceControl.createResourceGroup("changes", "Changes");
    this.untracked = this.sourceControl.createResourceGroup("untracked", "Untracked");
    for (const g of [this.staged, this.changes, this.untracked]) g.hideWhenEmpty = true;
    this.sourceControl.inputBox.placeholder = "Message (Ctrl+Enter to commit on the remote)";
    this.sourceControl.acceptInputCommand = {
      command: "distant.git.commit",
      title: "Commit",
      arguments: [this],
    };
    this.sourceControl.quickDiffProvider = {
      provideOriginalResource: (uri: vscode.Uri) => {
        if (uri.scheme !== SCHEME || uri.authority !== folder.authority) return undefined;
        if (!uri.path.startsWith(`${top}/`)) return undefined;
        return originalUri(folder.authority, top, uri.path.slice(top.length + 1), "HEAD");
      },
    };
    this.disposables.push(this.sourceControl);
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(root, "**"));
    const later = () => this.refreshSoon();
    this.disposables.push(
      watcher,
      watcher.onDidChange(later),
      watcher.onDidCreate(later),
      watcher.onDidDelete(later),
    );
  }

  refreshSoon(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.refresh().catch(() => undefined);
    }, REFRESH_DELAY_MS);
  }

  /** Runs git status and updates the groups and the branch (one run at a time). */
  async refresh(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        const status = await this.git.status(this.top);
        this.branch = status.branch;
        const staged: Resource[] = [];
        const changes: Resource[] = [];
        const untracked: Resource[] = [];
        for (const entry of status.entries) {
          if (entry.x === "?") {
            untracked.push(this.resource(entry, "untracked", "?"));
            continue;
          }
          if (entry.x !== " " && entry.x !== "!") staged.push(this.resource(entry, "staged", entry.x));
          if (entry.y !== " " && entry.y !== "!") changes.push(this.resource(entry, "changes", entry.y));
        }
        this.staged.resourceStates = staged;
        this.changes.resourceStates = changes;
        this.untracked.resourceStates = untracked;
        this.sourceControl.count = staged.length + changes.length + untracked.length;
        this.sourceControl.statusBarCommands = [
          {
            command: "distant.git.refresh",
            title: `$(git-branch) ${this.branch || "(no branch)"}`,
            tooltip: `${this.folder.authority}:${this.top} on ${this.branch} — click to refresh`,
            arguments: [this],
          },
        ];
      } while (this.again);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private resource(entry: StatusEntry, group: Resource["group"], letter: string): Resource {
    const uri = vscode.Uri.parse(uriString(this.folder.authority, `${this.top}/${entry.path}`));
    const deleted = letter === "D";
    const left = originalUri(
      this.folder.authority,
      this.top,
      entry.orig ?? entry.path,
      group === "staged" ? "HEAD" : "",
    );
    const title = `${entry.path} (${group === "staged" ? "Index" : "Working Tree"})`;
    return {
      resourceUri: uri,
      repo: this,
      entry,
      group,
      contextValue: group,
      decorations: {
        strikeThrough: deleted,
        tooltip: `${LABELS[letter] ?? letter} — ${group === "staged" ? "staged" : group}`,
        faded: deleted,
      },
      command:
        group === "untracked" || deleted
          ? { command: "vscode.open", title: "Open", arguments: [deleted ? left : uri] }
          : {
              command: "vscode.diff",
              title: "Open Changes",
              arguments: [
                left,
                group === "staged" ? originalUri(this.folder.authority, this.top, entry.path, "") : uri,
                title,
              ],
            },
    };
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const d of this.disposables) d.dispose();
  }
}

/** Source Control for every distant:// workspace folder that is in a git repository. */
export class RemoteSourceControl implements vscode.Disposable {
  private readonly repos = new Map<string, Repository>();
  private readonly gits = new Map<string, RemoteGit>();
  private readonly scanning = new Set<string>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly connections: Connections,
    private readonly procs: StreamRouter,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.disposables.push(
      vscode.workspace.registerTextDocumentContentProvider(GIT_SCHEME, {
        provideTextDocumentContent: async (uri: vscode.Uri) => {
          const { top, path, ref } = JSON.parse(uri.query) as { top: string; path: string; ref: string };
          return (await this.git(uri.authority).show(top, ref, path)).toString("utf8");
        },
      }),
      vscode.commands.registerCommand("distant.git.refresh", async (repo?: Repository) => {
        // Also looks again for repositories (a folder that became one).
        if (!repo) await this.scan();
        await this.each(repo, (r) => r.refresh());
      }),
      vscode.commands.registerCommand("distant.git.stage", (...states: Resource[]) =>
        this.onResources(states, "add", (r, paths) => r.git.ok(r.top, ["add", "-A", "--", ...paths])),
      ),
      vscode.commands.registerCommand("distant.git.unstage", (...states: Resource[]) =>
        this.onResources(states, "unstage", async (r, paths) => {
          if (await r.git.hasHead(r.top)) await r.git.ok(r.top, ["reset", "-q", "HEAD", "--", ...paths]);
          else await r.git.ok(r.top, ["rm", "-q", "--cached", "--", ...paths]);
        }),
      ),
      vscode.commands.registerCommand("distant.git.discard", async (...states: Resource[]) => {
        const list = resources(states);
        if (list.length === 0) return;
        const names = list.map((s) => s.entry.path);
        const answer = await vscode.window.showWarningMessage(
          `Discard the changes to ${names.length === 1 ? names[0] : `${names.length} files`} on the remote? This cannot be undone.`,
          { modal: true },
          "Discard",
        );
        if (answer !== "Discard") return;
        await this.onResources(list, "discard", async (r, _paths, items) => {
          const untracked = items.filter((s) => s.group === "untracked").map((s) => s.entry.path);
          const tracked = items.filter((s) => s.group !== "untracked").map((s) => s.entry.path);
          if (untracked.length) await r.git.ok(r.top, ["clean", "-f", "-q", "--", ...untracked]);
          if (tracked.length) await r.git.ok(r.top, ["checkout", "-q", "--", ...tracked]);
        });
      }),
      vscode.commands.registerCommand("distant.git.openChanges", (state?: Resource) => {
        const cmd = state?.command;
        if (cmd) return vscode.commands.executeCommand(cmd.command, ...(cmd.arguments ?? []));
        return undefined;
      }),
      vscode.commands.registerCommand("distant.git.commit", async (repo?: Repository) => {
        const target = repo ?? [...this.repos.values()][0];
        if (!target) return;
        await this.commit(target);
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => void this.scan()),
    );
    // Looked for once a folder's remote is connected (opening the folder
    // connects): activation itself does not connect anywhere.
    const connected = connections.onDidConnect(() => void this.scan());
    this.disposables.push(new vscode.Disposable(() => connected.dispose()));
  }

  /** Looks for a repository behind every distant:// workspace folder. */
  async scan(): Promise<void> {
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      if (folder.uri.scheme !== SCHEME) continue;
      const key = folder.uri.toString();
      if (this.repos.has(key) || this.scanning.has(key)) continue;
      this.scanning.add(key);
      try {
        const git = this.git(folder.uri.authority);
        const top = await git.topLevel(folder.uri.path || "/");
        const repo = new Repository(git, folder.uri, top);
        this.repos.set(key, repo);
        await repo.refresh();
      } catch (error) {
        // Not a repository, or no git there: no Source Control for it.
        this.log(`source control for ${key}: ${(error as Error).message}`);
      } finally {
        this.scanning.delete(key);
      }
    }
  }

  repositories(): Repository[] {
    return [...this.repos.values()];
  }

  /** Commits what is staged with the input box's message. */
  async commit(repo: Repository): Promise<void> {
    const message = repo.sourceControl.inputBox.value.trim();
    if (!message) {
      void vscode.window.showErrorMessage(
        "distant: type a commit message in the Source Control input box first.",
      );
      return;
    }
    if (repo.staged.resourceStates.length === 0) {
      void vscode.window.showErrorMessage(
        "distant: nothing is staged: stage changes first (the + on a file in Changes).",
      );
      return;
    }
    try {
      const r = await repo.git.run(repo.top, ["commit", "-q", "-F", "-"], message + "\n");
      if (r.code !== 0) {
        const why = (r.stderr.trim() || r.stdout.toString("utf8").trim()).split("\n")[0];
        throw new GitError(`git commit failed: ${why}`, "failed");
      }
      repo.sourceControl.inputBox.value = "";
    } catch (error) {
      void vscode.window.showErrorMessage(`distant: ${(error as Error).message}`);
    }
    await repo.refresh().catch(() => undefined);
  }

  private git(authority: string): RemoteGit {
    let git = this.gits.get(authority);
    if (!git) this.gits.set(authority, (git = new RemoteGit(this.connections, this.procs, authority)));
    return git;
  }

  private async each(repo: Repository | undefined, fn: (r: Repository) => Promise<void>): Promise<void> {
    for (const r of repo ? [repo] : this.repos.values()) await fn(r).catch((e) => this.report(e));
  }

  private async onResources(
    states: Resource[],
    what: string,
    fn: (repo: Repository, paths: string[], items: Resource[]) => Promise<unknown>,
  ): Promise<void> {
    const byRepo = new Map<Repository, Resource[]>();
    for (const s of resources(states)) byRepo.set(s.repo, [...(byRepo.get(s.repo) ?? []), s]);
    for (const [repo, items] of byRepo) {
      try {
        await fn(
          repo,
          items.map((s) => s.entry.path),
          items,
        );
      } catch (error) {
        this.report(error, what);
      }
      await repo.refresh().catch((e) => this.report(e));
    }
  }

  private report(error: unknown, what?: string): void {
    const message = (error as Error).message;
    this.log(`git ${what ?? ""}: ${message}`);
    void vscode.window.showErrorMessage(`distant: ${message}`);
  }

  dispose(): void {
    for (const r of this.repos.values()) r.dispose();
    this.repos.clear();
    for (const d of this.disposables) d.dispose();
  }
}

/** The resource states a command was given (a group's states, or several selected). */
function resources(states: unknown[]): Resource[] {
  const out: Resource[] = [];
  for (const s of states.flat()) {
    const r = s as Resource & { resourceStates?: Resource[] };
    if (r?.resourceStates) out.push(...r.resourceStates);
    else if (r?.repo) out.push(r);
  }
  return out;
}

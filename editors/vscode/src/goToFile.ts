// "distant: Go to File…": Quick Open for distant:// folders (file search
// for custom schemes is a proposed API). A QuickPick over the folder's file
// index, fuzzy-filtered by our matcher on every keystroke (items are
// `alwaysShow`, so the workbench does not filter them again), recently
// opened files first; it fills as the index streams in.
import * as vscode from "vscode";
import { SCHEME, uriString } from "./destinations";
import type { FileIndexes, RemoteIndex } from "./fileIndex";
import { FuzzyMatcher } from "./fuzzy";

/** Rows shown at once. */
const SHOWN = 200;
/** Recently opened files remembered per folder. */
const RECENT = 50;

export interface FileItem extends vscode.QuickPickItem {
  path: string;
}

/** Quick-pick row of a relative path (exported for tests). */
export function fileItem(path: string, recent: boolean): FileItem {
  const slash = path.lastIndexOf("/");
  return {
    label: path.slice(slash + 1),
    description: slash >= 0 ? path.slice(0, slash) : "",
    detail: undefined,
    alwaysShow: true,
    path,
    ...(recent ? { iconPath: new vscode.ThemeIcon("history") } : {}),
  };
}

/** Recently opened files of distant:// folders, most recent first. */
export class RecentFiles implements vscode.Disposable {
  private readonly byRoot = new Map<string, string[]>();
  private readonly subscription: vscode.Disposable;

  constructor() {
    this.subscription = vscode.window.onDidChangeActiveTextEditor((editor) => {
      const uri = editor?.document.uri;
      if (uri?.scheme === SCHEME) this.opened(uri);
    });
  }

  opened(uri: vscode.Uri): void {
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      const root = folder.uri;
      if (root.scheme !== SCHEME || root.authority !== uri.authority) continue;
      const prefix = root.path === "/" ? "/" : `${root.path}/`;
      if (!uri.path.startsWith(prefix)) continue;
      this.push(`${root.authority}\u0000${root.path}`, uri.path.slice(prefix.length));
    }
  }

  push(key: string, rel: string): void {
    const list = this.byRoot.get(key) ?? [];
    this.byRoot.set(key, [rel, ...list.filter((p) => p !== rel)].slice(0, RECENT));
  }

  of(authority: string, root: string): string[] {
    return this.byRoot.get(`${authority}\u0000${root}`) ?? [];
  }

  dispose(): void {
    this.subscription.dispose();
  }
}

/** Shows the picker for `folder` (a distant:// URI); resolves when it closes. */
export async function goToFile(
  indexes: FileIndexes,
  recent: RecentFiles,
  folder: vscode.Uri,
  initial?: string,
): Promise<vscode.Uri | undefined> {
  const root = folder.path || "/";
  const index: RemoteIndex = indexes.get(folder.authority, root);
  const matcher = new FuzzyMatcher();
  let version = -1;
  const pick = vscode.window.createQuickPick<FileItem>();
  pick.title = `distant: Go to File in ${folder.authority}:${root}`;
  pick.placeholder = "Type a file name (fuzzy: letters in order, e.g. wdgfct for widget_factory.ts)";
  pick.matchOnDescription = false;
  if (initial) pick.value = initial;

  const update = () => {
    if (index.version !== version) {
      version = index.version;
      matcher.setPaths(index.list());
    }
    const recentPaths = recent.of(folder.authority, root).filter((p) => index.paths.has(p));
    const recentSet = new Set(recentPaths);
    pick.items = matcher
      .filter(pick.value, SHOWN, recentPaths)
      .map((r) => fileItem(r.path, recentSet.has(r.path)));
    pick.busy = !index.done;
    if (index.error) pick.placeholder = `Listing the files failed: ${index.error}`;
    else if (index.truncated && index.note) pick.title = `distant: Go to File — ${index.note}`;
  };
  // Pages can come fast: redraw at most every 50 ms while they stream.
  let timer: NodeJS.Timeout | undefined;
  const changed = index.onDidChange(() => {
    timer ??= setTimeout(() => {
      timer = undefined;
      update();
    }, 50);
  });
  pick.onDidChangeValue(update);
  update();
  pick.show();
  const chosen = await new Promise<vscode.Uri | undefined>((resolve) => {
    pick.onDidAccept(() => {
      const item = pick.selectedItems[0];
      resolve(item ? vscode.Uri.parse(uriString(folder.authority, joinPath(root, item.path))) : undefined);
      pick.hide();
    });
    pick.onDidHide(() => resolve(undefined));
  });
  changed.dispose();
  if (timer) clearTimeout(timer);
  pick.dispose();
  if (chosen) {
    await vscode.window.showTextDocument(chosen, { preview: false });
    recent.opened(chosen);
  }
  return chosen;
}

function joinPath(root: string, rel: string): string {
  return root.endsWith("/") ? root + rel : `${root}/${rel}`;
}

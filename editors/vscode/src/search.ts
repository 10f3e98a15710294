// Search Remote: workspace text search for custom schemes is a proposed API,
// so this runs `search/start` (contents) and streams `search/results` into a
// QuickPick; picking an item opens the file at the match; hiding the picker
// cancels the search on the remote.
import * as vscode from "vscode";
import type { SearchDoneParams, SearchMatch, SearchResultsParams } from "./api";
import type { Connections } from "./connections";
import { uriString } from "./destinations";
import { StreamRouter } from "./streams";

export interface SearchItem extends vscode.QuickPickItem {
  uri: vscode.Uri;
  line: number;
  column: number;
}

const MAX_RESULTS = 2000;

/** One quick-pick row for a match (exported for tests). */
export function searchItem(authority: string, root: string, match: SearchMatch): SearchItem {
  const line = match.line ?? 1;
  const column = match.column ?? (match.submatches[0]?.start ?? 0) + 1;
  const relative = match.path.startsWith(`${root}/`) ? match.path.slice(root.length + 1) : match.path;
  return {
    label: (match.text ?? "").trim() || relative,
    description: `${relative}:${line}:${column}`,
    uri: vscode.Uri.parse(uriString(authority, match.path)),
    line,
    column,
  };
}

export class RemoteSearch implements vscode.Disposable {
  private readonly router: StreamRouter;

  constructor(private readonly connections: Connections) {
    this.router = new StreamRouter(connections.bridge, {
      "search/results": "search",
      "search/done": "search",
    });
  }

  /** Asks for a pattern, then shows streamed results under `root` (a distant:// folder). */
  async run(root: vscode.Uri, pattern?: string): Promise<void> {
    pattern ??= await vscode.window.showInputBox({
      title: `Search ${root.toString()}`,
      prompt: "Regular expression to search file contents for",
      ignoreFocusOut: true,
    });
    if (!pattern) return;
    const authority = root.authority;
    const rootPath = root.path || "/";
    const pick = vscode.window.createQuickPick<SearchItem>();
    pick.title = `distant: “${pattern}” in ${rootPath}`;
    pick.placeholder = "Searching…";
    pick.matchOnDescription = true;
    pick.busy = true;
    pick.show();

    let searchId: string | undefined;
    let hidden = false;
    /** search/done came (or will never come): nothing to cancel. */
    let finished = false;
    const items: SearchItem[] = [];
    let registration: { dispose(): void } | undefined;
    const end = (placeholder: string) => {
      finished = true;
      registration?.dispose();
      bridgeExit.dispose();
      pick.busy = false;
      pick.placeholder = placeholder;
    };
    const bridgeExit = this.connections.bridge.onDidExit(() => {
      if (!finished) end("Search failed: the bridge process exited");
    });
    /** Stops the remote search unless it is over already (or not started: then after start). */
    const cancel = () => {
      if (!searchId) return;
      const connection = this.connections.connectionId(authority);
      if (!finished && connection) {
        this.connections.bridge
          .request("search/cancel", { connection, search: searchId })
          .catch(() => undefined);
      }
      end("Cancelled");
    };
    pick.onDidHide(() => {
      hidden = true;
      cancel();
      pick.dispose();
    });
    pick.onDidAccept(async () => {
      const item = pick.selectedItems[0];
      if (!item) return;
      pick.hide();
      const position = new vscode.Position(item.line - 1, item.column - 1);
      await vscode.window.showTextDocument(item.uri, {
        selection: new vscode.Range(position, position),
      });
    });

    try {
      const result = await this.connections.call<{ search: string }>(authority, "search/start", {
        query: {
          target: "contents",
          pattern,
          paths: [rootPath],
          maxResults: MAX_RESULTS,
        },
      });
      searchId = result.search;
      // Hidden while the start was on its way: cancel it now that it has an id.
      if (hidden) return cancel();
      registration = this.router.register(searchId, (method, params) => {
        if (method === "search/results") {
          for (const match of (params as SearchResultsParams).matches)
            items.push(searchItem(authority, rootPath, match));
          pick.items = items.slice();
          return;
        }
        const p = params as SearchDoneParams;
        end(
          p.error
            ? `Search failed: ${p.error}`
            : `${items.length} match${items.length === 1 ? "" : "es"}${p.truncated ? " (truncated)" : ""}`,
        );
      });
    } catch (error) {
      end(`Search failed: ${(error as Error).message}`);
    }
  }

  dispose(): void {
    this.router.dispose();
  }
}

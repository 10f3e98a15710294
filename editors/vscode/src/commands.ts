// The command palette: Connect, Open Remote Folder, Disconnect, Reconnect,
// New Remote Terminal, Search Remote, the status bar's menu, Show Log.
import * as vscode from "vscode";
import type { SystemInfo } from "./api";
import type { Connections } from "./connections";
import { SCHEME, authorityFor, redactKeys, uriString } from "./destinations";
import type { RemoteSearch } from "./search";
import * as settings from "./settings";
import type { StatusBar } from "./statusBar";
import { openRemoteTerminal } from "./terminal";
import type { StreamRouter } from "./streams";

const HISTORY_KEY = "distant.destinationHistory";
const HISTORY_SIZE = 10;

export interface CommandContext {
  extension: vscode.ExtensionContext;
  connections: Connections;
  statusBar: StatusBar;
  search: RemoteSearch;
  procRouter: StreamRouter;
  output: vscode.OutputChannel;
}

/** Most recent first, without duplicates, bounded (exported for tests). */
export function pushHistory(history: readonly string[], entry: string, size = HISTORY_SIZE): string[] {
  return [entry, ...history.filter((h) => h !== entry)].slice(0, size);
}

export function registerCommands(ctx: CommandContext): vscode.Disposable[] {
  const { connections } = ctx;

  const pickAuthority = async (title: string): Promise<string | undefined> => {
    const history = ctx.extension.globalState.get<string[]>(HISTORY_KEY, []);
    const named = Object.entries(settings.destinations());
    const items: vscode.QuickPickItem[] = [];
    const seen = new Set<string>();
    const add = (label: string, description?: string) => {
      if (seen.has(label)) return;
      seen.add(label);
      items.push({ label, description });
    };
    for (const h of history) add(h, "recent");
    for (const [name, value] of named) add(name, value);
    add("local", "a server started on this machine");
    const pick = vscode.window.createQuickPick();
    pick.title = title;
    pick.placeholder = "local, a name from distant.destinations, [user@]host[:port] or ssh://…";
    pick.items = items;
    const chosen = await new Promise<string | undefined>((resolve) => {
      pick.onDidAccept(() => resolve(pick.selectedItems[0]?.label ?? pick.value));
      pick.onDidHide(() => resolve(undefined));
      pick.show();
    });
    pick.dispose();
    if (!chosen) return undefined;
    const authority = authorityFor(chosen, settings.destinations());
    if (!authority) {
      const open = "Open Settings";
      const answer = await vscode.window.showErrorMessage(
        `distant: "${redactKeys(chosen)}" needs a name: add it to distant.destinations (distant:// destinations carry a key that cannot go in a URI).`,
        open,
      );
      if (answer === open)
        await vscode.commands.executeCommand("workbench.action.openSettings", "distant.destinations");
      return undefined;
    }
    await ctx.extension.globalState.update(HISTORY_KEY, pushHistory(history, authority));
    return authority;
  };

  /** The remote the user most likely means: the workspace's, the editor's, the status bar's, else ask. */
  const currentAuthority = async (title: string): Promise<string | undefined> => {
    const folder = vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === SCHEME);
    const editor = vscode.window.activeTextEditor?.document.uri;
    if (editor?.scheme === SCHEME) return editor.authority;
    if (folder) return folder.uri.authority;
    if (ctx.statusBar.authority) return ctx.statusBar.authority;
    return pickAuthority(title);
  };

  const currentRoot = (authority: string): string | undefined => {
    const folder = vscode.workspace.workspaceFolders?.find(
      (f) => f.uri.scheme === SCHEME && f.uri.authority === authority,
    );
    return folder?.uri.path;
  };

  const connect = async (authority: string): Promise<boolean> => {
    ctx.statusBar.focus(authority);
    try {
      await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `distant: connecting to ${authority}…`,
        },
        () => connections.connect(authority),
      );
      return true;
    } catch {
      return false; // the failure is reported by the state watcher in extension.ts
    }
  };

  const register = (id: string, fn: (...args: any[]) => unknown) => vscode.commands.registerCommand(id, fn);

  return [
    register("distant.connect", async (given?: string) => {
      const authority = given ?? (await pickAuthority("distant: Connect"));
      if (!authority || !(await connect(authority))) return;
      const open = "Open Remote Folder";
      const answer = await vscode.window.showInformationMessage(`distant: connected to ${authority}.`, open);
      if (answer === open) await vscode.commands.executeCommand("distant.openRemoteFolder", authority);
    }),

    register("distant.openRemoteFolder", async (given?: string) => {
      const authority = given ?? (await pickAuthority("distant: Open Remote Folder"));
      if (!authority || !(await connect(authority))) return;
      let initial = "/";
      try {
        initial = (await connections.call<SystemInfo>(authority, "system/info", {})).currentDir || "/";
      } catch {
        // keep "/"
      }
      const path = await vscode.window.showInputBox({
        title: `distant: folder on ${authority}`,
        value: initial,
        prompt: "Remote absolute path of the folder to open",
        ignoreFocusOut: true,
        validateInput: (v) => (v.startsWith("/") ? undefined : "an absolute path, starting with /"),
      });
      if (!path) return;
      await vscode.commands.executeCommand("vscode.openFolder", vscode.Uri.parse(uriString(authority, path)));
    }),

    register("distant.disconnect", async (given?: string) => {
      const live = connections.all().filter((c) => c.connection);
      let authority = given;
      if (!authority) {
        if (live.length === 0)
          return void vscode.window.showInformationMessage("distant: no open connection.");
        authority =
          live.length === 1
            ? live[0].authority
            : await vscode.window.showQuickPick(
                live.map((c) => c.authority),
                { title: "distant: Disconnect" },
              );
      }
      if (authority) await connections.disconnect(authority);
    }),

    register("distant.reconnect", async (given?: string) => {
      const authority = given ?? (await currentAuthority("distant: Reconnect"));
      if (!authority) return;
      ctx.statusBar.focus(authority);
      await connections.reconnect(authority).catch(() => undefined);
    }),

    register("distant.newTerminal", async (given?: string) => {
      const authority = given ?? (await currentAuthority("distant: New Remote Terminal"));
      if (!authority) return;
      openRemoteTerminal(connections, ctx.procRouter, {
        authority,
        cwd: currentRoot(authority),
      });
    }),

    register("distant.searchRemote", async (pattern?: string) => {
      const authority = await currentAuthority("distant: Search Remote");
      if (!authority) return;
      const root = currentRoot(authority) ?? "/";
      await ctx.search.run(vscode.Uri.parse(uriString(authority, root)), pattern);
    }),

    register("distant.showConnectionMenu", async () => {
      const authority = ctx.statusBar.authority;
      const info = authority ? connections.info(authority) : undefined;
      const actions: vscode.QuickPickItem[] = [];
      if (authority && info?.connection) actions.push({ label: "Disconnect", description: authority });
      if (authority) actions.push({ label: "Reconnect", description: authority });
      actions.push({ label: "Connect…" }, { label: "New Remote Terminal" }, { label: "Show Log" });
      const choice = await vscode.window.showQuickPick(actions, {
        title: info ? `distant: ${info.authority} (${info.status})` : "distant",
      });
      switch (choice?.label) {
        case "Disconnect":
          return vscode.commands.executeCommand("distant.disconnect", authority);
        case "Reconnect":
          return vscode.commands.executeCommand("distant.reconnect", authority);
        case "Connect…":
          return vscode.commands.executeCommand("distant.connect");
        case "New Remote Terminal":
          return vscode.commands.executeCommand("distant.newTerminal", authority);
        case "Show Log":
          return vscode.commands.executeCommand("distant.showLog");
      }
      return undefined;
    }),

    register("distant.showLog", () => ctx.output.show(true)),
  ];
}

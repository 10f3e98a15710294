// Entry point: wires one bridge per window to the FileSystemProvider,
// terminals, language clients, search, status bar and commands; reports
// connection failures with actions. Activated by `onFileSystem:distant`
// (a window opened on a distant:// folder) or any distant command.
import * as vscode from "vscode";
import { Bridge } from "./bridge";
import { registerCommands } from "./commands";
import { ConnectionInfo, Connections } from "./connections";
import { SCHEME, redactKeys } from "./destinations";
import { FileIndexes } from "./fileIndex";
import { FindInFiles } from "./findInFiles";
import { DistantFileSystemProvider } from "./fileSystemProvider";
import { RecentFiles, goToFile } from "./goToFile";
import { PortForwards, registerForwardCommands } from "./forwards";
import { LanguageClients } from "./languageClients";
import { RemoteSourceControl } from "./scm";
import { RemoteSearch } from "./search";
import * as settings from "./settings";
import { StatusBar } from "./statusBar";
import { DistantPseudoterminal, procRouter } from "./terminal";

/** What activate returns: handles for tests and other extensions. */
export interface DistantApi {
  bridge: Bridge;
  connections: Connections;
  fileSystem: DistantFileSystemProvider;
  fileIndexes: FileIndexes;
  sourceControl: RemoteSourceControl;
}

let languageClients: LanguageClients | undefined;

export function activate(context: vscode.ExtensionContext): DistantApi {
  const output = vscode.window.createOutputChannel("distant");
  // Nothing logged may carry a key (a distant:// destination from settings).
  const log = (line: string) => output.appendLine(`[${new Date().toISOString()}] ${redactKeys(line)}`);
  context.subscriptions.push(output);

  const bridge = new Bridge({
    command: settings.bridgeCommand(),
    globalArgs: settings.bridgeGlobalArgs(),
    log,
    clientName: `vscode ${vscode.version}`,
  });
  const connections = new Connections(bridge, settings.destinations, log, settings.connectOptions);
  const fileSystem = new DistantFileSystemProvider(bridge, connections, log);
  const statusBar = new StatusBar(connections);
  const search = new RemoteSearch(connections);
  const terminals = procRouter(connections);
  const fileIndexes = new FileIndexes(connections);
  const recentFiles = new RecentFiles();
  const sourceControl = new RemoteSourceControl(connections, terminals, log);
  const findInFiles = new FindInFiles(connections);
  const forwards = new PortForwards(connections, settings.detectedPorts);
  languageClients = new LanguageClients(connections, {
    bridgeCommand: settings.bridgeCommand,
    bridgeGlobalArgs: settings.bridgeGlobalArgs,
    useManager: settings.useManager,
    servers: settings.languageServers,
    destinations: settings.destinations,
    log,
  });

  context.subscriptions.push(
    vscode.workspace.registerFileSystemProvider(SCHEME, fileSystem, {
      isCaseSensitive: true,
    }),
    vscode.window.registerTerminalProfileProvider("distant.terminal", {
      provideTerminalProfile: () => {
        const authority = vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === SCHEME)?.uri;
        if (!authority) return undefined;
        const pty = new DistantPseudoterminal(connections, terminals, {
          authority: authority.authority,
          cwd: authority.path,
        });
        return new vscode.TerminalProfile({
          name: `distant: ${authority.authority}`,
          pty,
        });
      },
    }),
    ...registerCommands({
      extension: context,
      connections,
      statusBar,
      search,
      procRouter: terminals,
      output,
    }),
    watchFailures(connections),
    ...registerForwardCommands(forwards, connections),
    forwards,
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration("distant.bridgePath") || e.affectsConfiguration("distant.useManager")) {
        log(`settings changed: restarting the bridge as ${settings.bridgeCommand()}`);
        bridge.reconfigure(settings.bridgeCommand(), settings.bridgeGlobalArgs());
      }
    }),
    ...registerGoToFile(fileIndexes, recentFiles),
    sourceControl,
    findInFiles,
    languageClients,
    statusBar,
    search,
    terminals,
    fileSystem,
    connections,
    bridge,
  );

  // A window opened on a distant:// folder shows its remote from the start.
  const folder = vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === SCHEME);
  if (folder) statusBar.focus(folder.uri.authority);
  languageClients.scanOpenDocuments();
  log(
    `distant extension activated (bridge: ${settings.bridgeCommand()} ${settings.bridgeGlobalArgs().join(" ")})`,
  );
  return { bridge, connections, fileSystem, fileIndexes, sourceControl };
}

/**
 * "distant: Go to File…" and the `distant.remoteWorkspace` context key that
 * binds it to Ctrl+P / Cmd+P while the workspace has a distant:// folder.
 */
function registerGoToFile(indexes: FileIndexes, recent: RecentFiles): vscode.Disposable[] {
  const setContext = () =>
    vscode.commands.executeCommand(
      "setContext",
      "distant.remoteWorkspace",
      (vscode.workspace.workspaceFolders ?? []).some((f) => f.uri.scheme === SCHEME),
    );
  void setContext();
  const folders = vscode.workspace.onDidChangeWorkspaceFolders?.(() => void setContext());
  return [
    vscode.commands.registerCommand("distant.goToFile", async (initial?: string) => {
      const active = vscode.window.activeTextEditor?.document.uri;
      const remote = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === SCHEME);
      const folder =
        (active &&
          remote.find((f) => f.uri.authority === active.authority && active.path.startsWith(f.uri.path))) ??
        remote[0];
      if (!folder) {
        void vscode.window.showErrorMessage(
          "distant: Go to File needs a distant:// folder in the workspace (distant: Open Remote Folder).",
        );
        return undefined;
      }
      return goToFile(indexes, recent, folder.uri, typeof initial === "string" ? initial : undefined);
    }),
    indexes,
    recent,
    ...(folders ? [folders] : []),
  ];
}

export async function deactivate(): Promise<void> {
  // Language servers get their shutdown/exit before the bridge goes away.
  await languageClients?.stopAll();
  languageClients = undefined;
}

/** Shows a failed or lost connection once per episode, with what to do about it. */
function watchFailures(connections: Connections): vscode.Disposable {
  const reported = new Set<string>();
  const subscription = connections.onDidChange((info: ConnectionInfo) => {
    if (info.status === "connected" || info.status === "connecting") {
      reported.delete(info.authority);
      return;
    }
    if ((info.status !== "failed" && info.status !== "lost") || reported.has(info.authority)) return;
    reported.add(info.authority);
    const verb = info.status === "failed" ? "could not connect to" : "lost the connection to";
    void vscode.window
      .showErrorMessage(
        `distant ${verb} ${info.authority}: ${info.detail ?? "no reason given"}`,
        "Retry",
        "Open Settings",
        "Show Log",
      )
      .then((choice) => {
        if (choice === "Retry") return vscode.commands.executeCommand("distant.reconnect", info.authority);
        if (choice === "Open Settings")
          return vscode.commands.executeCommand("workbench.action.openSettings", "distant.");
        if (choice === "Show Log") return vscode.commands.executeCommand("distant.showLog");
        return undefined;
      });
  });
  return new vscode.Disposable(() => subscription.dispose());
}

// Remote language servers: one vscode-languageclient LanguageClient per
// (authority, configured language), started lazily when the first document
// of that language on that remote opens. Its server command is
// `distant-bridge lsp`, which runs the real server on the remote over the
// window's shared connection and rewrites distant:// ⇄ file:// URIs.
import * as vscode from "vscode";
// Types only at the top: the library itself is loaded on the first server
// start (it is large, and a window without language servers never needs it).
import type { LanguageClient, LanguageClientOptions, ServerOptions } from "vscode-languageclient/node";
import type { Connections } from "./connections";
import { SCHEME, redactKeys, remotePath, resolveDestination, uriString } from "./destinations";
import { lspArgs, lspTarget } from "./lspCommand";

export interface LanguageServerConfig {
  command: string[];
  rootMarkers?: string[];
}

export interface LanguageClientsOptions {
  bridgeCommand: () => string;
  /** Arguments before the subcommand (`--no-manager`, `--socket …`). */
  bridgeGlobalArgs: () => string[];
  /** Through the manager, `--connection ID` shares the window's connection. */
  useManager: () => boolean;
  servers: () => Record<string, LanguageServerConfig>;
  destinations: () => Record<string, string>;
  env?: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

export class LanguageClients implements vscode.Disposable {
  private readonly clients = new Map<string, Promise<LanguageClient | undefined>>();
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly connections: Connections,
    private readonly options: LanguageClientsOptions,
  ) {
    this.subscriptions.push(
      vscode.workspace.onDidOpenTextDocument((doc) => void this.ensureFor(doc)),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.scanOpenDocuments()),
    );
  }

  /** Starts clients for documents already open at activation. */
  scanOpenDocuments(): void {
    for (const doc of vscode.workspace.textDocuments) void this.ensureFor(doc);
  }

  /** The client serving a document, starting it if its language is configured. */
  ensureFor(doc: vscode.TextDocument): Promise<LanguageClient | undefined> {
    if (doc.uri.scheme !== SCHEME) return Promise.resolve(undefined);
    // Language servers run code from the workspace: not in Restricted Mode.
    if (vscode.workspace.isTrusted === false) return Promise.resolve(undefined);
    const config = this.options.servers()[doc.languageId];
    if (!config || !Array.isArray(config.command) || config.command.length === 0)
      return Promise.resolve(undefined);
    const key = `${doc.uri.authority}\u0000${doc.languageId}`;
    let client = this.clients.get(key);
    if (!client) {
      client = this.start(doc, config).catch((error: Error) => {
        this.options.log(
          `language server for ${doc.languageId} on ${doc.uri.authority} failed: ${error.message}`,
        );
        void vscode.window
          .showErrorMessage(
            `distant: the ${doc.languageId} language server could not start: ${error.message}`,
            "Show Log",
          )
          .then((choice) => choice && vscode.commands.executeCommand("distant.showLog"));
        this.clients.delete(key);
        return undefined;
      });
      this.clients.set(key, client);
    }
    return client;
  }

  private async start(doc: vscode.TextDocument, config: LanguageServerConfig): Promise<LanguageClient> {
    const authority = doc.uri.authority;
    const connection = await this.connections.connect(authority);
    const root = await this.findRoot(doc.uri, config.rootMarkers ?? []);
    const rootUri = vscode.Uri.parse(uriString(authority, root));
    const { target, env } = lspTarget(
      this.options.useManager()
        ? { connection }
        : { destination: resolveDestination(authority, this.options.destinations()) },
      this.options.env ?? process.env,
    );
    const args = lspArgs(this.options.bridgeGlobalArgs(), target, root, config.command);
    this.options.log(
      `starting language server: ${this.options.bridgeCommand()} ${redactKeys(args.join(" "))}`,
    );
    const serverOptions: ServerOptions = {
      command: this.options.bridgeCommand(),
      args,
      options: { env },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: SCHEME, language: doc.languageId }],
      workspaceFolder: {
        uri: rootUri,
        name: root.split("/").pop() || root,
        index: 0,
      },
    };
    const name = `distant ${doc.languageId} (${authority})`;
    const { LanguageClient } = await import("vscode-languageclient/node");
    const client = new LanguageClient(
      `distant-${doc.languageId}-${authority}`,
      name,
      serverOptions,
      clientOptions,
    );
    await client.start();
    return client;
  }

  /** The nearest ancestor holding a root marker, else the workspace folder, else the file's directory. */
  private async findRoot(uri: vscode.Uri, markers: string[]): Promise<string> {
    const path = remotePath(uri.path);
    if (markers.length > 0) {
      try {
        const found = await this.connections.call<{ path: string } | null>(uri.authority, "fs/findUp", {
          path,
          names: markers,
        });
        if (found?.path) return found.path;
      } catch (error) {
        this.options.log(`fs/findUp for ${path} failed: ${(error as Error).message}`);
      }
    }
    const folder = vscode.workspace.getWorkspaceFolder(uri);
    if (folder && folder.uri.scheme === SCHEME) return remotePath(folder.uri.path);
    return path.slice(0, path.lastIndexOf("/")) || "/";
  }

  async stopAll(): Promise<void> {
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(
      clients.map(async (pending) => {
        const client = await pending;
        await client?.stop(2000).catch(() => undefined);
      }),
    );
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
    void this.stopAll();
  }
}

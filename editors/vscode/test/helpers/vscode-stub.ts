// A small hand-written stand-in for the `vscode` module: just what the
// extension's modules touch, with real behaviour where tests observe it
// (Uri, EventEmitter, FileSystemError codes) and recorders elsewhere
// (status bar items, messages, registered commands).

export const version = "1.90.0-stub";

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly authority: string,
    readonly path: string,
    readonly query: string,
    readonly fragment: string,
  ) {}

  static parse(value: string): Uri {
    const m = /^([a-zA-Z][\w+.-]*):(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/.exec(value);
    if (!m) throw new Error(`stub Uri.parse: cannot parse ${value}`);
    return new Uri(m[1].toLowerCase(), m[2] ?? "", decodeURIComponent(m[3] || "/"), m[4] ?? "", m[5] ?? "");
  }

  static file(path: string): Uri {
    return new Uri("file", "", path, "", "");
  }

  static from(c: {
    scheme: string;
    authority?: string;
    path?: string;
    query?: string;
    fragment?: string;
  }): Uri {
    return new Uri(c.scheme, c.authority ?? "", c.path ?? "/", c.query ?? "", c.fragment ?? "");
  }

  with(c: { scheme?: string; authority?: string; path?: string; query?: string; fragment?: string }): Uri {
    return new Uri(
      c.scheme ?? this.scheme,
      c.authority ?? this.authority,
      c.path ?? this.path,
      c.query ?? this.query,
      c.fragment ?? this.fragment,
    );
  }

  get fsPath(): string {
    return this.path;
  }

  toString(): string {
    const path = this.path
      .split("/")
      .map((p) => encodeURIComponent(p))
      .join("/");
    return `${this.scheme}://${this.authority}${path}${this.query ? `?${this.query}` : ""}`;
  }
}

export class Disposable {
  constructor(private readonly fn: () => void) {}
  static from(...items: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => items.forEach((i) => i.dispose()));
  }
  dispose(): void {
    this.fn();
  }
}

export type Event<T> = (listener: (e: T) => unknown) => Disposable;

export class EventEmitter<T> {
  private listeners = new Set<(e: T) => unknown>();
  readonly event: Event<T> = (listener) => {
    this.listeners.add(listener);
    return new Disposable(() => this.listeners.delete(listener));
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) l(e);
  }
  dispose(): void {
    this.listeners.clear();
  }
}

export class FileSystemError extends Error {
  constructor(
    messageOrUri?: string | Uri,
    readonly code: string = "Unknown",
  ) {
    super(typeof messageOrUri === "string" ? messageOrUri : (messageOrUri?.toString() ?? code));
    this.name = `${code} (FileSystemError)`;
  }
  static FileNotFound(m?: string | Uri) {
    return new FileSystemError(m, "FileNotFound");
  }
  static FileExists(m?: string | Uri) {
    return new FileSystemError(m, "FileExists");
  }
  static FileNotADirectory(m?: string | Uri) {
    return new FileSystemError(m, "FileNotADirectory");
  }
  static FileIsADirectory(m?: string | Uri) {
    return new FileSystemError(m, "FileIsADirectory");
  }
  static NoPermissions(m?: string | Uri) {
    return new FileSystemError(m, "NoPermissions");
  }
  static Unavailable(m?: string | Uri) {
    return new FileSystemError(m, "Unavailable");
  }
}

export enum FileType {
  Unknown = 0,
  File = 1,
  Directory = 2,
  SymbolicLink = 64,
}
export enum FilePermission {
  Readonly = 1,
}
export enum FileChangeType {
  Changed = 1,
  Created = 2,
  Deleted = 3,
}
export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}
export enum ProgressLocation {
  SourceControl = 1,
  Window = 10,
  Notification = 15,
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export class ThemeIcon {
  constructor(readonly id: string) {}
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
    if (typeof a === "number") {
      this.start = new Position(a, b as number);
      this.end = new Position(c!, d!);
    } else {
      this.start = a;
      this.end = b as Position;
    }
  }
}

export class TerminalProfile {
  constructor(readonly options: unknown) {}
}

/** What the stub recorded, for assertions. */
export const recorded = {
  errorMessages: [] as string[],
  infoMessages: [] as string[],
  statusBarItems: [] as StubStatusBarItem[],
  terminals: [] as { name: string; pty: unknown }[],
  commands: new Map<string, (...args: any[]) => unknown>(),
  executed: [] as { id: string; args: unknown[] }[],
  outputLines: [] as string[],
  quickPicks: [] as any[],
  /** Called with each new quick pick (tests act on it before the caller goes on). */
  onQuickPick: undefined as ((pick: any) => void) | undefined,
  shownDocuments: [] as { uri: unknown; options: unknown }[],
  sourceControls: [] as any[],
  contentProviders: new Map<string, { provideTextDocumentContent(uri: Uri): unknown }>(),
  fileWatchers: [] as { pattern: unknown; fire(kind: "change" | "create" | "delete", uri: Uri): void }[],
  /** What showWarningMessage answers (a button label), then cleared. */
  warningAnswer: undefined as string | undefined,
  warningMessages: [] as string[],
  treeViews: [] as any[],
  /** Tests supply documents and apply edits (e.g. through the real FileSystemProvider). */
  openTextDocument: undefined as ((uri: Uri) => Promise<unknown>) | undefined,
  applyEdit: undefined as ((edit: WorkspaceEdit) => Promise<boolean>) | undefined,
  /** URIs given to env.openExternal. */
  openedExternal: [] as string[],
  /** Picks the button of an information message (default: none). */
  infoChoice: undefined as ((message: string, items: string[]) => string | undefined) | undefined,
};

export class RelativePattern {
  constructor(
    readonly base: unknown,
    readonly pattern: string,
  ) {}
}

export enum TreeItemCollapsibleState {
  None = 0,
  Collapsed = 1,
  Expanded = 2,
}

export class TreeItem {
  description?: string;
  contextValue?: string;
  command?: { command: string; title: string; arguments?: unknown[] };
  constructor(
    readonly label: unknown,
    readonly collapsibleState?: TreeItemCollapsibleState,
  ) {}
}

/** Records replacements; `applyEdit` hands them to `recorded.applyEdit`. */
export class WorkspaceEdit {
  readonly edits: { uri: Uri; range: Range; text: string }[] = [];
  replace(uri: Uri, range: Range, text: string): void {
    this.edits.push({ uri, range, text });
  }
}

export const scm = {
  createSourceControl(id: string, label: string, rootUri?: Uri) {
    const sc = {
      id,
      label,
      rootUri,
      groups: [] as any[],
      inputBox: { value: "", placeholder: "" },
      count: 0,
      statusBarCommands: [] as unknown[],
      quickDiffProvider: undefined as unknown,
      acceptInputCommand: undefined as unknown,
      createResourceGroup(gid: string, glabel: string) {
        const group = {
          id: gid,
          label: glabel,
          resourceStates: [] as any[],
          hideWhenEmpty: false,
          dispose() {},
        };
        sc.groups.push(group);
        return group;
      },
      dispose() {},
    };
    recorded.sourceControls.push(sc);
    return sc;
  },
};

export class StubStatusBarItem {
  text = "";
  tooltip: string | undefined;
  command: string | undefined;
  name: string | undefined;
  backgroundColor: ThemeColor | undefined;
  visible = false;
  constructor(
    readonly id: string,
    readonly alignment?: StatusBarAlignment,
    readonly priority?: number,
  ) {}
  show() {
    this.visible = true;
  }
  hide() {
    this.visible = false;
  }
  dispose() {
    this.visible = false;
  }
}

export const window = {
  createOutputChannel(name: string) {
    return {
      name,
      appendLine: (line: string) => recorded.outputLines.push(line),
      append: (text: string) => recorded.outputLines.push(text),
      show: () => undefined,
      dispose: () => undefined,
    };
  },
  createStatusBarItem(id: string, alignment?: StatusBarAlignment, priority?: number) {
    const item = new StubStatusBarItem(id, alignment, priority);
    recorded.statusBarItems.push(item);
    return item;
  },
  createTerminal(options: { name: string; pty: unknown }) {
    recorded.terminals.push(options);
    return {
      name: options.name,
      show: () => undefined,
      dispose: () => undefined,
    };
  },
  showErrorMessage(message: string, ..._items: string[]) {
    recorded.errorMessages.push(message);
    return Promise.resolve(undefined);
  },
  createTreeView(id: string, options: { treeDataProvider: unknown }) {
    const view = { id, ...options, description: "", message: "", dispose() {} };
    recorded.treeViews.push(view);
    return view;
  },
  showWarningMessage(message: string, ..._items: unknown[]) {
    recorded.warningMessages.push(message);
    const answer = recorded.warningAnswer;
    recorded.warningAnswer = undefined;
    return Promise.resolve(answer);
  },
  showInformationMessage(message: string, ...items: string[]) {
    recorded.infoMessages.push(message);
    return Promise.resolve(recorded.infoChoice?.(message, items));
  },
  showInputBox() {
    return Promise.resolve(undefined);
  },
  showQuickPick() {
    return Promise.resolve(undefined);
  },
  createQuickPick<T>() {
    const hide = new EventEmitter<void>();
    const accept = new EventEmitter<void>();
    const changeValue = new EventEmitter<string>();
    const pick = {
      items: [] as T[],
      selectedItems: [] as T[],
      title: "",
      placeholder: "",
      value: "",
      busy: false,
      matchOnDescription: false,
      onDidHide: hide.event,
      onDidAccept: accept.event,
      onDidChangeValue: changeValue.event,
      /** Types `value` as a user would: sets it and fires onDidChangeValue. */
      type(value: string) {
        pick.value = value;
        changeValue.fire(value);
      },
      show() {},
      hide() {
        hide.fire();
      },
      dispose() {},
      fireAccept() {
        accept.fire();
      },
    };
    recorded.quickPicks.push(pick);
    recorded.onQuickPick?.(pick);
    return pick;
  },
  showTextDocument(uri: unknown, options?: unknown) {
    recorded.shownDocuments.push({ uri, options });
    return Promise.resolve(undefined);
  },
  registerTerminalProfileProvider() {
    return new Disposable(() => undefined);
  },
  withProgress<T>(_options: unknown, task: () => Promise<T>) {
    return task();
  },
  activeTextEditor: undefined as unknown,
  onDidChangeActiveTextEditor: new EventEmitter<unknown>().event,
};

/** Settings the stub's getConfiguration returns, by full key (`distant.bridgePath`). */
export const settings = new Map<string, unknown>();

const openDocument = new EventEmitter<unknown>();
/** Fire with `{ affectsConfiguration: (key) => boolean }` to simulate a settings change. */
export const configurationChanged = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();

export const workspace = {
  workspaceFolders: undefined as { uri: Uri; name: string; index: number }[] | undefined,
  textDocuments: [] as unknown[],
  onDidOpenTextDocument: openDocument.event,
  onDidChangeConfiguration: configurationChanged.event,
  onDidGrantWorkspaceTrust: new EventEmitter<void>().event,
  onDidChangeWorkspaceFolders: new EventEmitter<void>().event,
  openTextDocument(uri: Uri) {
    if (!recorded.openTextDocument) return Promise.reject(new Error("no documents in the stub"));
    return recorded.openTextDocument(uri);
  },
  applyEdit(edit: WorkspaceEdit) {
    return recorded.applyEdit ? recorded.applyEdit(edit) : Promise.resolve(false);
  },
  asRelativePath(uri: Uri | string) {
    return typeof uri === "string" ? uri : uri.path;
  },
  registerTextDocumentContentProvider(
    scheme: string,
    provider: { provideTextDocumentContent(uri: Uri): unknown },
  ) {
    recorded.contentProviders.set(scheme, provider);
    return new Disposable(() => recorded.contentProviders.delete(scheme));
  },
  createFileSystemWatcher(pattern: unknown) {
    const change = new EventEmitter<Uri>();
    const create = new EventEmitter<Uri>();
    const del = new EventEmitter<Uri>();
    const watcher = {
      pattern,
      onDidChange: change.event,
      onDidCreate: create.event,
      onDidDelete: del.event,
      fire(kind: "change" | "create" | "delete", uri: Uri) {
        (kind === "change" ? change : kind === "create" ? create : del).fire(uri);
      },
      dispose() {},
    };
    recorded.fileWatchers.push(watcher);
    return watcher;
  },
  isTrusted: true,
  getConfiguration(section: string) {
    return {
      get<T>(key: string, fallback?: T): T | undefined {
        const full = `${section}.${key}`;
        return settings.has(full) ? (settings.get(full) as T) : fallback;
      },
    };
  },
  getWorkspaceFolder(uri: Uri) {
    return workspace.workspaceFolders?.find(
      (f) =>
        f.uri.scheme === uri.scheme && f.uri.authority === uri.authority && uri.path.startsWith(f.uri.path),
    );
  },
  registerFileSystemProvider() {
    return new Disposable(() => undefined);
  },
};

export const env = {
  openExternal(uri: Uri) {
    recorded.openedExternal.push(uri.toString());
    return Promise.resolve(true);
  },
};

export const commands = {
  registerCommand(id: string, fn: (...args: any[]) => unknown) {
    recorded.commands.set(id, fn);
    return new Disposable(() => recorded.commands.delete(id));
  },
  executeCommand(id: string, ...args: unknown[]) {
    recorded.executed.push({ id, args });
    const fn = recorded.commands.get(id);
    return Promise.resolve(fn ? fn(...args) : undefined);
  },
};

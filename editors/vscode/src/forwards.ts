// Port forwarding: "distant: Forward a Port" (`tunnel/open`), "distant: Port
// Forwards" (a quick pick of `tunnels` with Open in Browser and Close), and
// a notification offering ports a remote process starts listening on
// (`tunnel/detected`, setting `distant.detectedPorts`).
import * as vscode from "vscode";
import type { Connections } from "./connections";

export interface ForwardSpec {
  localPort: number;
  remoteHost?: string;
  remotePort: number;
}

export interface TunnelInfo {
  tunnel: string;
  localPort: number;
  remoteHost: string;
  remotePort: number;
  connections: number;
  bytesIn: number;
  bytesOut: number;
  lastError?: string;
}

export interface TunnelDetectedParams {
  connection: string;
  port: number;
  pid?: number;
  command?: string;
}

function port(text: string, what: string, zeroOk: boolean): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535 || (n === 0 && !zeroOk)) {
    throw new Error(
      `${JSON.stringify(text)} is not a valid ${what}: use PORT, LOCAL:PORT or LOCAL:HOST:PORT`,
    );
  }
  return n;
}

/** `PORT`, `LOCAL:PORT` or `LOCAL:HOST:PORT` (LOCAL 0 = any free port). */
export function parseForwardSpec(spec: string): ForwardSpec {
  const parts = spec.trim().split(":");
  if (parts.length === 1) {
    const p = port(parts[0], "port", false);
    return { localPort: p, remotePort: p };
  }
  if (parts.length === 2) {
    return {
      localPort: port(parts[0], "local port", true),
      remotePort: port(parts[1], "remote port", false),
    };
  }
  if (parts.length === 3 && parts[1] !== "") {
    return {
      localPort: port(parts[0], "local port", true),
      remoteHost: parts[1],
      remotePort: port(parts[2], "remote port", false),
    };
  }
  throw new Error(`${JSON.stringify(spec)} is not a forward: use PORT, LOCAL:PORT or LOCAL:HOST:PORT`);
}

/** The quick-pick row of one tunnel (exported for tests). */
export function tunnelItem(t: TunnelInfo): vscode.QuickPickItem & { tunnel: TunnelInfo } {
  return {
    label: `127.0.0.1:${t.localPort} → ${t.remoteHost}:${t.remotePort}`,
    description: `${t.connections} open`,
    detail: `${t.bytesIn} B in, ${t.bytesOut} B out${t.lastError ? ` — last error: ${t.lastError}` : ""}`,
    tunnel: t,
  };
}

export class PortForwards implements vscode.Disposable {
  private readonly subscriptions: { dispose(): void }[] = [];
  /** "connection:port" already offered. */
  private readonly offered = new Set<string>();

  constructor(
    private readonly connections: Connections,
    private readonly detectedPorts: () => string = () => "notify",
  ) {
    this.subscriptions.push(
      connections.bridge.onNotification(
        "tunnel/detected",
        (p: TunnelDetectedParams) => void this.onDetected(p),
      ),
    );
  }

  /** Opens a forward on `authority`'s connection. */
  open(authority: string, spec: ForwardSpec): Promise<{ tunnel: string; localPort: number }> {
    return this.connections.call(authority, "tunnel/open", {
      remotePort: spec.remotePort,
      remoteHost: spec.remoteHost,
      localPort: spec.localPort,
    });
  }

  list(authority: string): Promise<TunnelInfo[]> {
    return this.connections.call(authority, "tunnels", {});
  }

  async close(authority: string, tunnel: string): Promise<void> {
    await this.connections.call(authority, "tunnel/close", { tunnel });
  }

  /** The local end in the default browser. */
  openInBrowser(localPort: number): Thenable<boolean> {
    return vscode.env.openExternal(vscode.Uri.parse(`http://127.0.0.1:${localPort}/`));
  }

  /** "distant: Forward a Port": asks for a spec, opens it, offers the browser. */
  async forwardCommand(authority: string, given?: string): Promise<void> {
    const spec =
      given ??
      (await vscode.window.showInputBox({
        title: `distant: Forward a Port (${authority})`,
        prompt: "Remote port to forward: PORT, LOCAL:PORT or LOCAL:HOST:PORT (LOCAL 0 = any free port)",
        ignoreFocusOut: true,
        validateInput: (v) => {
          try {
            parseForwardSpec(v);
            return undefined;
          } catch (e) {
            return (e as Error).message;
          }
        },
      }));
    if (!spec) return;
    const parsed = parseForwardSpec(spec);
    const opened = await this.open(authority, parsed);
    await this.announce(opened.localPort, parsed);
  }

  /** "distant: Port Forwards": pick one, then Open in Browser or Close. */
  async showForwards(authority: string): Promise<void> {
    const list = await this.list(authority);
    if (list.length === 0) {
      void vscode.window.showInformationMessage(
        `distant: no port forwards on ${authority}; run "distant: Forward a Port"`,
      );
      return;
    }
    const picked = await vscode.window.showQuickPick(list.map(tunnelItem), {
      title: `distant: port forwards on ${authority}`,
    });
    if (!picked) return;
    const action = await vscode.window.showQuickPick(["Open in Browser", "Close"], {
      title: picked.label,
    });
    if (action === "Open in Browser") await this.openInBrowser(picked.tunnel.localPort);
    if (action === "Close") await this.close(authority, picked.tunnel.tunnel);
  }

  private async announce(localPort: number, spec: ForwardSpec): Promise<void> {
    const choice = await vscode.window.showInformationMessage(
      `distant: forwarding 127.0.0.1:${localPort} to ${spec.remoteHost ?? "127.0.0.1"}:${spec.remotePort} on the remote`,
      "Open in Browser",
    );
    if (choice === "Open in Browser") await this.openInBrowser(localPort);
  }

  private async onDetected(p: TunnelDetectedParams): Promise<void> {
    if (this.detectedPorts() === "off") return;
    const key = `${p.connection}:${p.port}`;
    if (this.offered.has(key)) return;
    this.offered.add(key);
    const authority = this.connections.all().find((c) => c.connection === p.connection)?.authority;
    if (!authority) return;
    const what = p.command ? ` (${p.command})` : "";
    const choice = await vscode.window.showInformationMessage(
      `distant: a remote process listens on port ${p.port}${what}. Forward it?`,
      "Forward",
      "Forward and Open in Browser",
    );
    if (!choice) return;
    let opened: { localPort: number };
    try {
      opened = await this.open(authority, { localPort: p.port, remotePort: p.port });
    } catch {
      // The same port is taken here: any free one.
      opened = await this.open(authority, { localPort: 0, remotePort: p.port });
    }
    if (choice === "Forward and Open in Browser") await this.openInBrowser(opened.localPort);
    else await this.announce(opened.localPort, { localPort: opened.localPort, remotePort: p.port });
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
  }
}

/** The commands: "distant.forwardPort" and "distant.showForwards". */
export function registerForwardCommands(
  forwards: PortForwards,
  connections: Connections,
): vscode.Disposable[] {
  const authority = async (given?: unknown): Promise<string | undefined> => {
    if (typeof given === "string") return given;
    const live = connections.all().filter((c) => c.status === "connected" || c.status === "reconnecting");
    if (live.length === 1) return live[0].authority;
    if (live.length === 0) {
      void vscode.window.showErrorMessage('distant: not connected; run "distant: Connect to a Remote" first');
      return undefined;
    }
    return vscode.window.showQuickPick(
      live.map((c) => c.authority),
      { title: "distant: which remote?" },
    );
  };
  const guarded =
    (fn: (a: string, ...rest: unknown[]) => Promise<void>) =>
    async (given?: unknown, ...rest: unknown[]) => {
      const a = await authority(given);
      if (!a) return;
      try {
        await fn(a, ...rest);
      } catch (e) {
        void vscode.window.showErrorMessage(`distant: ${(e as Error).message}`);
      }
    };
  return [
    vscode.commands.registerCommand(
      "distant.forwardPort",
      guarded((a, spec) => forwards.forwardCommand(a, typeof spec === "string" ? spec : undefined)),
    ),
    vscode.commands.registerCommand(
      "distant.showForwards",
      guarded((a) => forwards.showForwards(a)),
    ),
  ];
}

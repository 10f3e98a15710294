// The status bar item: the state of the window's current remote, updated
// from Connections (which follows `connection/state`). Clicking it opens the
// connection menu (Disconnect, Reconnect, Show Log).
import * as vscode from "vscode";
import type { ConnectionInfo, Connections } from "./connections";

/** The item's text for one connection state (exported for tests). */
export function statusText(info: ConnectionInfo | undefined): string {
  if (!info) return "$(remote) distant";
  const word: Record<ConnectionInfo["status"], string> = {
    connecting: "$(sync~spin) connecting…",
    connected: "connected",
    reconnecting: "$(sync~spin) reconnecting…",
    lost: "$(error) lost",
    disconnected: "disconnected",
    failed: "$(error) failed",
  };
  return `$(remote) distant: ${info.authority} ${word[info.status]}`;
}

export function statusTooltip(info: ConnectionInfo | undefined): string {
  if (!info) return "distant: not connected. Click to connect.";
  const lines = [`${info.authority} → ${info.destination}: ${info.status}`];
  if (info.connection) lines.push(`connection ${info.connection}`);
  if (info.detail) lines.push(info.detail);
  lines.push("Click for Disconnect, Reconnect, Show Log.");
  return lines.join("\n");
}

export class StatusBar implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  private current: string | undefined;
  private readonly subscription: { dispose(): void };

  constructor(private readonly connections: Connections) {
    this.item = vscode.window.createStatusBarItem("distant.status", vscode.StatusBarAlignment.Left, 1000);
    this.item.name = "distant";
    this.item.command = "distant.showConnectionMenu";
    this.subscription = connections.onDidChange((info) => {
      // Follow the remote that last changed: in a distant window that is the
      // workspace's own remote almost always.
      this.current = info.authority;
      this.render();
    });
    this.render();
  }

  /** The authority the item shows (the menu acts on it). */
  get authority(): string | undefined {
    return this.current;
  }

  /** Shows an authority (e.g. the workspace folder's) before it connects. */
  focus(authority: string): void {
    this.current = authority;
    this.render();
  }

  private render(): void {
    const info = this.current ? this.connections.info(this.current) : undefined;
    // A remote in focus that has not connected yet still shows its name.
    this.item.text = info || !this.current ? statusText(info) : `$(remote) distant: ${this.current}`;
    this.item.tooltip = statusTooltip(info);
    const bad = info && (info.status === "lost" || info.status === "failed");
    this.item.backgroundColor = bad ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
    this.item.show();
  }

  dispose(): void {
    this.subscription.dispose();
    this.item.dispose();
  }
}

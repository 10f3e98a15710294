// Reads the extension's settings (`distant.*`) in one place, with the
// environment overrides the tests and CI use.
import * as vscode from "vscode";
import type { DestinationMap } from "./destinations";
import type { LanguageServerConfig } from "./languageClients";

const DEFAULT_BRIDGE = "distant-bridge";

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration("distant");
}

/**
 * The bridge executable: `distant.bridgePath` when set to something else
 * than the default, else `$DISTANT_BRIDGE`, else `distant-bridge` on PATH.
 */
export function bridgeCommand(): string {
  const configured = config().get<string>("bridgePath")?.trim();
  if (configured && configured !== DEFAULT_BRIDGE) return configured;
  return process.env.DISTANT_BRIDGE?.trim() || DEFAULT_BRIDGE;
}

export function useManager(): boolean {
  if (process.env.DISTANT_BRIDGE_NO_MANAGER === "1") return false;
  return config().get<boolean>("useManager", true);
}

/** Arguments every bridge invocation gets before its subcommand. */
export function bridgeGlobalArgs(): string[] {
  return useManager() ? [] : ["--no-manager"];
}

export function destinations(): DestinationMap {
  const value = config().get<Record<string, string>>("destinations", {});
  return value && typeof value === "object" ? value : {};
}

/**
 * `options` for every `connect` (`distant.connectOptions`); none when empty.
 * ssh options that run local commands pass only when the user setting
 * `distant.allowSshCommands` is on (it alone sets `allowLocalCommands`).
 */
export function connectOptions(): Record<string, unknown> | undefined {
  const raw = config().get<Record<string, unknown>>("connectOptions", {});
  const value: Record<string, unknown> = raw && typeof raw === "object" ? { ...raw } : {};
  delete value.allowLocalCommands;
  if (config().get<boolean>("allowSshCommands", false) === true) value.allowLocalCommands = true;
  return Object.keys(value).length > 0 ? value : undefined;
}

export function languageServers(): Record<string, LanguageServerConfig> {
  const value = config().get<Record<string, LanguageServerConfig>>("languageServers", {});
  return value && typeof value === "object" ? value : {};
}

/** `distant.detectedPorts`: "notify" (offer to forward) or "off". */
export function detectedPorts(): string {
  return config().get<string>("detectedPorts", "notify") ?? "notify";
}

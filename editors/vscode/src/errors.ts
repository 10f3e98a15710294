// Bridge errors: the typed error every bridge call rejects with, and its
// mapping onto VS Code's FileSystemError (the only error type the workbench
// understands from a FileSystemProvider).
import * as vscode from "vscode";
import type { ErrorKind } from "./api";

const KNOWN_KINDS: ReadonlySet<string> = new Set<ErrorKind>([
  "not_found",
  "permission_denied",
  "already_exists",
  "not_a_directory",
  "is_a_directory",
  "directory_not_empty",
  "conflict",
  "invalid_params",
  "not_connected",
  "connection_lost",
  "auth_failed",
  "timeout",
  "unsupported",
  "other",
]);

/** A failed bridge call: the bridge's sentence plus its `data.kind`. */
export class BridgeError extends Error {
  constructor(
    message: string,
    readonly kind: ErrorKind,
    readonly method?: string,
  ) {
    super(message);
    this.name = "BridgeError";
  }

  /** Builds one from whatever a JSON-RPC call rejected with. */
  static from(error: unknown, method?: string): BridgeError {
    if (error instanceof BridgeError) return error;
    const e = error as {
      message?: unknown;
      data?: { kind?: unknown };
      code?: unknown;
    };
    const message = typeof e?.message === "string" ? e.message : String(error);
    const rawKind = e?.data?.kind;
    let kind: ErrorKind = "other";
    if (typeof rawKind === "string" && KNOWN_KINDS.has(rawKind)) kind = rawKind as ErrorKind;
    // vscode-jsonrpc rejects with "Connection is closed"/"disposed" when the
    // bridge process died under a pending request: the remote is unavailable.
    else if (/connection (is )?(closed|disposed)|pending response rejected/i.test(message))
      kind = "connection_lost";
    return new BridgeError(message, kind, method);
  }
}

/** Kinds after which a fresh `connect` may succeed (so a call is worth one retry). */
export function isConnectionKind(kind: ErrorKind): boolean {
  return kind === "not_connected" || kind === "connection_lost";
}

/**
 * Maps a bridge failure to the FileSystemError the workbench expects, keeping
 * the bridge's sentence (it says what to do). Anything that is not a
 * BridgeError is passed through untouched.
 */
export function toFileSystemError(error: unknown, uri: vscode.Uri): unknown {
  if (!(error instanceof BridgeError)) return error;
  const message = `${error.message} (${uri.toString()})`;
  switch (error.kind) {
    case "not_found":
      return vscode.FileSystemError.FileNotFound(message);
    case "already_exists":
      return vscode.FileSystemError.FileExists(message);
    case "permission_denied":
    case "auth_failed":
      return vscode.FileSystemError.NoPermissions(message);
    case "not_a_directory":
      return vscode.FileSystemError.FileNotADirectory(message);
    case "is_a_directory":
      return vscode.FileSystemError.FileIsADirectory(message);
    case "not_connected":
    case "connection_lost":
    case "timeout":
      return vscode.FileSystemError.Unavailable(message);
    case "conflict":
      // No FileSystemError code means "precondition failed"; Unavailable with
      // a sentence naming the conflict makes the save fail visibly and
      // leaves the editor dirty, so nothing is lost.
      return vscode.FileSystemError.Unavailable(
        `${uri.toString()} changed on the remote since it was read; nothing was written. ` +
          `Reopen the file (or compare) before saving again.`,
      );
    default:
      return new vscode.FileSystemError(message);
  }
}

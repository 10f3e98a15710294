// The command line of `distant-bridge lsp` for one remote language server.
// Kept apart from languageClients.ts so it can be tested without
// vscode-languageclient (which needs the real workbench).
import { SCHEME } from "./destinations";

/** The argv of `distant-bridge lsp` for one server (exported for tests). */
export function lspArgs(
  globalArgs: string[],
  target: { connection?: string; destination?: string },
  root: string,
  command: string[],
): string[] {
  const which = target.connection
    ? ["--connection", target.connection]
    : ["--destination", target.destination ?? "local"];
  return [...globalArgs, "lsp", ...which, "--scheme", SCHEME, "--cwd", root, "--", ...command];
}

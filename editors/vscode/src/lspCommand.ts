// The command line of `distant-bridge lsp` for one remote language server.
// Kept apart from languageClients.ts so it can be tested without
// vscode-languageclient (which needs the real workbench).
import { SCHEME, withoutKey } from "./destinations";

/**
 * The target and environment of `distant-bridge lsp`: a key in a
 * `distant://` destination moves to `DISTANT_KEY` (the bridge reads and
 * removes it at start), so no command line carries it.
 */
export function lspTarget(
  target: { connection?: string; destination?: string },
  env: NodeJS.ProcessEnv,
): { target: { connection?: string; destination?: string }; env: NodeJS.ProcessEnv } {
  if (!target.destination) return { target, env };
  const { destination, key } = withoutKey(target.destination);
  if (key === undefined) return { target: { destination }, env };
  return { target: { destination }, env: { ...env, DISTANT_KEY: key } };
}

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

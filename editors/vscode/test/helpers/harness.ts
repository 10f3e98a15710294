// Test harness: a real `distant-bridge stdio` (target/debug, or
// $DISTANT_BRIDGE) with destination `local`, wrapped in the extension's own
// Bridge and Connections, plus a scratch directory that is removed after.
import { mkdtempSync, rmSync, existsSync, readFileSync, chmodSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Bridge } from "../../src/bridge";
import { Connections } from "../../src/connections";

/** The repository root (tests run from editors/vscode/out-test/). */
export const repoRoot = resolve(__dirname, "..", "..", "..");

export function bridgePath(): string {
  const path = process.env.DISTANT_BRIDGE || join(repoRoot, "target", "debug", "distant-bridge");
  if (!existsSync(path)) throw new Error(`${path} is missing: run cargo build --workspace --bins`);
  return path;
}

export interface Harness {
  bridge: Bridge;
  connections: Connections;
  /** A scratch directory on the "remote" (this machine). */
  dir: string;
  logs: string[];
  env: NodeJS.ProcessEnv;
  dispose(): Promise<void>;
}

/**
 * `manager: false` runs the bridge in-process (`--no-manager`); `true` gives
 * it a private manager in a scratch XDG_RUNTIME_DIR, killed at the end.
 */
export function startHarness(options: { manager?: boolean; restartDelaysMs?: number[] } = {}): Harness {
  const dir = mkdtempSync(join(tmpdir(), "distant-vscode-test-"));
  const logs: string[] = [];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RUST_LOG: process.env.RUST_LOG ?? "warn",
  };
  let runtime: string | undefined;
  if (options.manager) {
    runtime = mkdtempSync(join(tmpdir(), "distant-vscode-run-"));
    chmodSync(runtime, 0o700);
    mkdirSync(join(runtime, "distant"), { mode: 0o700 });
    env.XDG_RUNTIME_DIR = runtime;
    delete env.DISTANT_BRIDGE_SOCKET;
    env.DISTANT_BRIDGE_MANAGER_IDLE_EXIT = "5";
  }
  const bridge = new Bridge({
    command: bridgePath(),
    globalArgs: options.manager ? [] : ["--no-manager"],
    env,
    log: (line) => logs.push(line),
    restartDelaysMs: options.restartDelaysMs ?? [50],
  });
  const connections = new Connections(
    bridge,
    () => ({}),
    (line) => logs.push(line),
  );
  return {
    bridge,
    connections,
    dir,
    logs,
    env,
    async dispose() {
      connections.dispose();
      const exited = new Promise<void>((done) => {
        if (!bridge.running) return done();
        const sub = bridge.onDidExit(() => {
          sub.dispose();
          done();
        });
        setTimeout(done, 3000).unref();
      });
      bridge.dispose();
      await exited;
      if (runtime) {
        const pidFile = join(runtime, "distant", "manager.pid");
        if (existsSync(pidFile)) {
          const pid = Number(readFileSync(pidFile, "utf8").trim());
          if (pid > 0) {
            try {
              process.kill(pid, "SIGTERM");
            } catch {
              // already gone
            }
          }
        }
        rmSync(runtime, { recursive: true, force: true });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves when `check` holds, polling; rejects with `what` after `ms`. */
export async function eventually<T>(what: string, check: () => T | undefined | false, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// git on the remote, for Source Control: runs `git` through `proc/spawn`
// (output collected from the shared proc router, bounded), parses
// `git status --porcelain=v1 -z`, and turns failures into sentences a person
// can act on (git missing on the remote, not a repository).
import type { ProcExitParams, ProcOutputParams } from "./api";
import type { Connections } from "./connections";
import type { StreamRouter } from "./streams";

/** Output kept per git run; more fails the run (a diff of a huge file, say). */
const MAX_OUTPUT = 64 * 1024 * 1024;

export class GitError extends Error {
  constructor(
    message: string,
    readonly kind: "missing" | "not_a_repository" | "failed",
  ) {
    super(message);
  }
}

export interface GitResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export interface StatusEntry {
  /** Index (staged) status letter, ' ' for none, '?' untracked. */
  x: string;
  /** Worktree status letter. */
  y: string;
  /** Relative to the repository's top level. */
  path: string;
  /** The old path of a rename or copy. */
  orig?: string;
}

export interface Status {
  branch: string;
  entries: StatusEntry[];
}

/** Parses `git status --porcelain=v1 -z --branch` (exported for tests). */
export function parseStatus(out: string): Status {
  const fields = out.split("\0");
  let branch = "";
  const entries: StatusEntry[] = [];
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    if (f.startsWith("## ")) {
      // "main...origin/main [ahead 1]" or "No commits yet on main"
      const head = f.slice(3);
      const noCommits = /^No commits yet on (.*)$/.exec(head);
      branch = noCommits ? noCommits[1] : head.split("...")[0].split(" ")[0];
      continue;
    }
    if (f.length < 4) continue;
    const entry: StatusEntry = { x: f[0], y: f[1], path: f.slice(3) };
    if (entry.x === "R" || entry.x === "C") entry.orig = fields[++i];
    entries.push(entry);
  }
  return { branch, entries };
}

/** Runs git in remote directories of one authority. */
export class RemoteGit {
  constructor(
    private readonly connections: Connections,
    private readonly procs: StreamRouter,
    readonly authority: string,
  ) {}

  /** Runs `git ARGS` in `cwd`; resolves with its exit code and output. */
  async run(cwd: string, args: string[], stdin?: string): Promise<GitResult> {
    const cmd = ["git", "-c", "core.quotepath=false", "--no-pager", ...args];
    let result: { proc: string };
    try {
      result = await this.connections.call<{ proc: string }>(this.authority, "proc/spawn", {
        cmd,
        cwd,
        env: { GIT_TERMINAL_PROMPT: "0", LC_ALL: "C" },
      });
    } catch (error) {
      const e = error as Error & { kind?: string };
      if (e.kind === "not_found" || /command not found|No such file/.test(e.message))
        throw new GitError(
          `git is not installed on ${this.authority} (or not on its PATH): install it there to use Source Control`,
          "missing",
        );
      throw e;
    }
    return new Promise<GitResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      let tooBig = false;
      const registration = this.procs.register(result.proc, (method, params) => {
        if (method === "proc/output") {
          const p = params as ProcOutputParams;
          const bytes = Buffer.from(p.data, p.encoding === "base64" ? "base64" : "utf8");
          size += bytes.length;
          if (size > MAX_OUTPUT) {
            if (!tooBig) {
              tooBig = true;
              const connection = this.connections.connectionId(this.authority);
              if (connection)
                this.connections.bridge
                  .request("proc/kill", { connection, proc: result.proc, signal: "KILL" })
                  .catch(() => undefined);
            }
            return;
          }
          (p.stream === "stderr" ? err : out).push(bytes);
          return;
        }
        const p = params as ProcExitParams;
        registration.dispose();
        if (tooBig)
          return reject(new GitError(`git ${args[0]} printed more than 64 MiB; stopped it`, "failed"));
        if (p.error && p.code === null) return reject(new GitError(`git ${args[0]}: ${p.error}`, "failed"));
        resolve({ code: p.code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8") });
      });
      if (stdin !== undefined) {
        const connection = this.connections.connectionId(this.authority);
        if (connection)
          this.connections.bridge
            .request("proc/stdin", { connection, proc: result.proc, data: stdin, encoding: "utf-8" })
            .then(() => this.connections.bridge.request("proc/closeStdin", { connection, proc: result.proc }))
            .catch(() => undefined);
      }
    });
  }

  /** Runs git and fails (with git's own first line) unless it exits 0. */
  async ok(cwd: string, args: string[]): Promise<string> {
    const r = await this.run(cwd, args);
    if (r.code === 0) return r.stdout.toString("utf8");
    if (/not a git repository/i.test(r.stderr))
      throw new GitError(`${cwd} is not inside a git repository on ${this.authority}`, "not_a_repository");
    const first = r.stderr.trim().split("\n")[0] || `exit code ${r.code}`;
    throw new GitError(`git ${args[0]} failed: ${first}`, "failed");
  }

  /** The repository's top level holding `dir`. */
  async topLevel(dir: string): Promise<string> {
    return (await this.ok(dir, ["rev-parse", "--show-toplevel"])).trim();
  }

  async status(top: string): Promise<Status> {
    return parseStatus(
      await this.ok(top, ["status", "--porcelain=v1", "-z", "--branch", "--untracked-files=all"]),
    );
  }

  /** The content of `path` (relative to `top`) at `ref` ("HEAD", or "" for the index); empty when absent. */
  async show(top: string, ref: string, path: string): Promise<Buffer> {
    const r = await this.run(top, ["show", `${ref}:${path}`]);
    return r.code === 0 ? r.stdout : Buffer.alloc(0);
  }

  async hasHead(top: string): Promise<boolean> {
    return (await this.run(top, ["rev-parse", "--verify", "-q", "HEAD"])).code === 0;
  }
}

#!/usr/bin/env node
// End-to-end test of the distant VS Code extension in a real VS Code:
// code-server (npm package, a built VS Code) with the extension's .vsix
// installed, driven by Debian's headless Chromium through playwright-core.
//
// It opens `distant://local/<temp dir>` as the workspace folder and checks, in
// the workbench: the Explorer lists the remote files; a file opens with its
// content; an edit saved with Ctrl+S is on disk; a remote terminal runs a
// command and shows its output; pylsp answers go-to-definition in the same
// file and across files, landing in a `distant://` document; "distant: Search
// Remote" lists a match in its QuickPick and opens it at its line; a file
// created on disk behind the workbench's back shows up in the Explorer, and an
// open file changed on disk is reloaded (the extension's watch). A screenshot
// of every step goes to the artifacts dir. The last line is `N passed, N failed`;
// the exit code is nonzero on any failure.
//
// `--smoke` checks the harness itself without the extension: a plain file://
// folder, the built-in terminal, no language server.
//
// Environment (scripts/test-vscode-e2e sets what it needs):
//   DISTANT_CODE_SERVER  code-server's out/node/entry.js (default: under
//                        ${DISTANT_TOOLS_DIR:-/opt/distant-tools}/code-server)
//   DISTANT_NODE         Node 24 for code-server (default: this process's node)
//   DISTANT_VSIX         the extension (default: newest editors/vscode/*.vsix)
//   DISTANT_BRIDGE       distant-bridge (default: target/debug/distant-bridge)
//   DISTANT_CHROMIUM     browser (default: /usr/bin/chromium)
//   DISTANT_E2E_ARTIFACTS screenshots and logs (default: target/vscode-e2e)
//   DISTANT_E2E_KEEP=1   keep the temp dirs (printed) for debugging
//   DISTANT_E2E_HEADED=1 show the browser (needs a display)

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../../..");
const SMOKE = process.argv.includes("--smoke");
const env = process.env;

const TOOLS = env.DISTANT_TOOLS_DIR || "/opt/distant-tools";
const CODE_SERVER =
  env.DISTANT_CODE_SERVER || path.join(TOOLS, "code-server/node_modules/code-server/out/node/entry.js");
const NODE = env.DISTANT_NODE || process.execPath;
const BRIDGE = path.resolve(env.DISTANT_BRIDGE || path.join(REPO, "target/debug/distant-bridge"));
const CHROMIUM = env.DISTANT_CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = path.resolve(env.DISTANT_E2E_ARTIFACTS || path.join(REPO, "target/vscode-e2e"));
const KEEP = env.DISTANT_E2E_KEEP === "1";

// Generous: polling, never asserting speed. A step fails only when its
// condition is still false after this long.
const STARTUP_TIMEOUT = 120_000;
const STEP_TIMEOUT = 60_000;
const LSP_TIMEOUT = 150_000;

const MARK = `distant-e2e-${process.pid}-${Date.now()}`;

// ---------------------------------------------------------------------------
// small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...args) => console.log(...args);
const norm = (s) => (s ?? "").replace(/\u00a0/g, " ");

/** Polls `fn` until it returns a truthy value; throws `what` with the last value seen. */
async function waitFor(what, fn, { timeout = STEP_TIMEOUT, interval = 250 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastError;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const seen = lastError ? `last error: ${lastError.message}` : `last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeout / 1000}s waiting for ${what} (${seen})`);
    }
    await sleep(interval);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function findVsix() {
  if (env.DISTANT_VSIX) return path.resolve(env.DISTANT_VSIX);
  const dir = path.join(REPO, "editors/vscode");
  const found = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".vsix"))
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (found.length === 0) throw new Error(`no .vsix in ${dir} (run \`npm run package\` there, or set DISTANT_VSIX)`);
  return found[0];
}

/** Every process whose environment carries this run's mark (code-server, its children, the bridge and its manager). */
function markedPids() {
  const pids = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const environ = fs.readFileSync(`/proc/${entry}/environ`, "latin1");
      if (environ.split("\0").includes(`DISTANT_E2E_MARK=${MARK}`)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

async function killMarked() {
  for (const signal of ["SIGTERM", "SIGKILL"]) {
    const pids = markedPids();
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && markedPids().length > 0) await sleep(100);
  }
  const left = markedPids();
  if (left.length > 0) log(`warning: processes still alive after SIGKILL: ${left.join(" ")}`);
}

function tail(text, lines) {
  const all = text.split("\n");
  return all.slice(Math.max(0, all.length - lines)).join("\n");
}

async function listFiles(dir) {
  const out = [];
  async function walk(d) {
    let entries;
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(p);
    }
  }
  await walk(dir);
  return out;
}

// ---------------------------------------------------------------------------
// the project the test opens remotely

const MAIN_PY = `from util import helper


def greet(name):
    return "hello, " + name


print(greet("world"))
print(helper())
`;
// Line 8 uses greet (defined on line 4, column 5); line 9 uses helper
// (defined in util.py, line 2, column 5).
const UTIL_PY = `
def helper():
    return 42
`;
const README = `# e2e project

This file is read through distant.
`;
// Search Remote finds SEARCH_TOKEN in notes.txt only, on line 3, column 8.
const SEARCH_TOKEN = "zq7-needle-e2e";
const NOTES_TXT = `Notes for the e2e test.

Token: ${SEARCH_TOKEN} (searched for).
`;
// Changed on disk behind the editor's back (step 8).
const CHANGES_TXT = `before the remote change
`;

// ---------------------------------------------------------------------------
// the run

const results = [];
const cleanups = []; // run last-in first-out
let TMP;
let page;
let stepNo = 0;

async function screenshot(name) {
  if (!page) return undefined;
  const file = path.join(ARTIFACTS, `${name}.png`);
  try {
    await page.screenshot({ path: file, timeout: 15_000 });
    log(`  screenshot: ${file}`);
    return file;
  } catch (error) {
    log(`  (screenshot ${file} failed: ${error.message})`);
    return undefined;
  }
}

/** Runs one check; `needs` lists earlier step numbers that must have passed (else it fails at once, not run). */
async function step(title, fn, { needs = [] } = {}) {
  stepNo += 1;
  const slug = `${String(stepNo).padStart(2, "0")}-${title.replace(/[^a-z0-9]+/gi, "-").replace(/^-|-$/g, "").toLowerCase()}`;
  const started = Date.now();
  log(`# step ${stepNo}: ${title}`);
  const unmet = needs.filter((n) => !results[n - 1]?.ok);
  if (unmet.length > 0) {
    log(`not ok ${stepNo} - ${title} (not run: step ${unmet.join(", ")} failed)`);
    results.push({ title, ok: false, error: new Error("not run") });
    return;
  }
  try {
    await fn();
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    log(`ok ${stepNo} - ${title} (${secs}s)`);
    await screenshot(slug);
    results.push({ title, ok: true });
  } catch (error) {
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    log(`not ok ${stepNo} - ${title} (${secs}s)`);
    log(`  ${String(error.stack || error).split("\n").join("\n  ")}`);
    await screenshot(`${slug}-FAILED`);
    results.push({ title, ok: false, error });
    // Leave the workbench in a neutral state for the next step.
    await page?.keyboard.press("Escape").catch(() => {});
  }
}

async function main() {
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  for (const f of await fsp.readdir(ARTIFACTS)) {
    if (f.endsWith(".png") || f.endsWith(".log") || f === "logs") {
      await fsp.rm(path.join(ARTIFACTS, f), { recursive: true, force: true });
    }
  }
  if (!fs.existsSync(CODE_SERVER)) throw new Error(`code-server not found at ${CODE_SERVER} (run .ci/setup-code-server.sh)`);
  if (!SMOKE && !fs.existsSync(BRIDGE)) throw new Error(`distant-bridge not found at ${BRIDGE} (cargo build)`);

  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), "distant-vscode-e2e-"));
  TMP = tmp;
  cleanups.push(async () => {
    if (KEEP) log(`kept temp dir ${tmp}`);
    else await fsp.rm(tmp, { recursive: true, force: true });
  });
  const dirs = {};
  for (const d of ["extensions", "user-data", "runtime", "config", "data", "cache", "browser", "project"]) {
    dirs[d] = path.join(tmp, d);
    await fsp.mkdir(dirs[d], { recursive: true, mode: 0o700 });
  }
  await fsp.chmod(dirs.runtime, 0o700);
  const project = await fsp.realpath(dirs.project);
  await fsp.writeFile(path.join(project, "main.py"), MAIN_PY);
  await fsp.writeFile(path.join(project, "util.py"), UTIL_PY);
  await fsp.writeFile(path.join(project, "README.md"), README);
  await fsp.writeFile(path.join(project, "notes.txt"), NOTES_TXT);
  await fsp.writeFile(path.join(project, "changes.txt"), CHANGES_TXT);

  const settings = {
    "distant.bridgePath": BRIDGE,
    "terminal.integrated.gpuAcceleration": "off",
    "terminal.integrated.enablePersistentSessions": false,
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "workbench.enableExperiments": false,
    "workbench.welcomePage.walkthroughs.openOnInstall": false,
    "workbench.editor.enablePreview": false,
    "telemetry.telemetryLevel": "off",
    "security.workspace.trust.enabled": false,
    "extensions.autoUpdate": false,
    "extensions.autoCheckUpdates": false,
    "extensions.ignoreRecommendations": true,
    "update.mode": "none",
    "git.enabled": false,
    "remote.autoForwardPorts": false, // code-server would offer distant-server's port
    "chat.disableAIFeatures": true,
    "files.autoSave": "off",
    "editor.quickSuggestions": { other: false, comments: false, strings: false },
    "editor.suggestOnTriggerCharacters": false,
    "editor.acceptSuggestionOnEnter": "off",
    "editor.hover.enabled": false,
    "window.title": "${activeEditorLong}",
  };
  await fsp.mkdir(path.join(dirs["user-data"], "User"), { recursive: true });
  await fsp.writeFile(path.join(dirs["user-data"], "User/settings.json"), JSON.stringify(settings, null, 2));
  // Settings that name a local program are machine-scoped (docs/SECURITY.md):
  // to code-server's workbench the extension host is the "remote", whose
  // machine settings live in user-data/Machine, where a code-server user sets
  // them ("Remote" settings).
  await fsp.mkdir(path.join(dirs["user-data"], "Machine"), { recursive: true });
  await fsp.writeFile(path.join(dirs["user-data"], "Machine/settings.json"), JSON.stringify({ "distant.bridgePath": BRIDGE }, null, 2));
  await fsp.writeFile(path.join(tmp, "code-server.yaml"), "auth: none\ncert: false\n");

  const childEnv = {
    ...env,
    DISTANT_E2E_MARK: MARK,
    XDG_RUNTIME_DIR: dirs.runtime,
    XDG_CONFIG_HOME: dirs.config,
    XDG_DATA_HOME: dirs.data,
    XDG_CACHE_HOME: dirs.cache,
    EXTENSIONS_GALLERY: "{}",
    // The bridge's manager goes when this run ends (we kill it anyway).
    DISTANT_BRIDGE_MANAGER_IDLE_EXIT: "60",
  };
  delete childEnv.DISTANT_BRIDGE; // the extension would prefer it to the setting
  delete childEnv.VSCODE_IPC_HOOK_CLI;
  const csArgs = [
    CODE_SERVER,
    "--config",
    path.join(tmp, "code-server.yaml"),
    "--extensions-dir",
    dirs.extensions,
    "--user-data-dir",
    dirs["user-data"],
  ];
  cleanups.push(killMarked);

  // Install the extension.
  let terminalCommand = "Terminal: Create New Terminal";
  if (!SMOKE) {
    const vsix = findVsix();
    log(`vsix: ${vsix}`);
    const install = spawnSync(NODE, [...csArgs, "--force", "--install-extension", vsix], {
      env: childEnv,
      encoding: "utf8",
      timeout: 180_000,
    });
    if (install.status !== 0) {
      throw new Error(`installing ${vsix} failed (${install.status}):\n${install.stdout}\n${install.stderr}`);
    }
    const installed = fs.readdirSync(dirs.extensions).filter((d) => !d.startsWith("."));
    const extDir = installed.find((d) => /distant/i.test(d));
    if (!extDir) throw new Error(`the extension is not in ${dirs.extensions} after install: ${installed.join(", ")}`);
    const manifest = JSON.parse(fs.readFileSync(path.join(dirs.extensions, extDir, "package.json"), "utf8"));
    const cmd = (manifest.contributes?.commands ?? []).find((c) => /terminal/i.test(c.title));
    if (!cmd) throw new Error(`the extension contributes no terminal command`);
    terminalCommand = cmd.category ? `${cmd.category}: ${cmd.title}` : cmd.title;
    log(`extension: ${extDir} (terminal command: ${cmd.command} "${terminalCommand}")`);
  }

  // Start code-server.
  const port = await freePort();
  const csLog = path.join(ARTIFACTS, "code-server.log");
  const csOut = fs.openSync(csLog, "w");
  const cs = spawn(
    NODE,
    [
      ...csArgs,
      "--auth",
      "none",
      "--bind-addr",
      `127.0.0.1:${port}`,
      "--disable-telemetry",
      "--disable-update-check",
      "--disable-workspace-trust",
      "--disable-getting-started-override",
      "--ignore-last-opened",
    ],
    { env: childEnv, stdio: ["ignore", csOut, csOut], detached: true },
  );
  fs.closeSync(csOut);
  let csExit;
  cs.on("exit", (code, signal) => (csExit = `code-server exited (${code ?? signal})`));
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    "code-server to answer /healthz",
    async () => {
      if (csExit) throw Object.assign(new Error(csExit), { fatal: true });
      const r = await fetch(`${base}/healthz`);
      return r.ok;
    },
    { timeout: STARTUP_TIMEOUT },
  ).catch((error) => {
    throw new Error(`${error.message}\n${tail(fs.readFileSync(csLog, "utf8"), 40)}`);
  });
  log(`code-server: ${base} (log: ${csLog})`);

  // Start the browser on the workbench.
  const browserLog = fs.createWriteStream(path.join(ARTIFACTS, "browser-console.log"));
  const context = await chromium.launchPersistentContext(dirs.browser, {
    executablePath: CHROMIUM,
    headless: env.DISTANT_E2E_HEADED !== "1",
    chromiumSandbox: false,
    viewport: { width: 1600, height: 1000 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  cleanups.push(() => context.close().catch(() => {}));
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => browserLog.write(`[${m.type()}] ${m.text()}\n`));
  page.on("pageerror", (e) => browserLog.write(`[pageerror] ${e.message}\n`));

  const folder = SMOKE ? project : `distant://local${project}`; // as ?folder=
  const url = `${base}/?folder=${encodeURIComponent(folder).replace(/%2F/g, "/").replace(/%3A/g, ":")}`;
  log(`workbench: ${url}`);
  await page.goto(url, { timeout: STARTUP_TIMEOUT });
  await page.locator(".monaco-workbench").waitFor({ timeout: STARTUP_TIMEOUT });

  const explorerRows = () =>
    page.$$eval(".explorer-folders-view .monaco-list-row", (rows) =>
      rows.map((r) => (r.querySelector(".label-name")?.textContent ?? r.getAttribute("aria-label") ?? "").trim()),
    );
  const activeEditorText = () =>
    page
      .$eval(".editor-group-container.active .editor-instance .monaco-editor .view-lines", (e) => e.innerText)
      .then(norm);
  const cursorStatus = () =>
    page.$eval("#status\\.editor\\.selection", (e) => e.textContent.trim()).catch(() => "");

  async function openFromExplorer(name, expect) {
    const row = page.locator(".explorer-folders-view .monaco-list-row", { hasText: name }).first();
    await row.waitFor({ timeout: STEP_TIMEOUT });
    await row.click();
    await waitFor(`${name} to open in the editor with its content`, async () => {
      const text = await activeEditorText();
      return text.includes(expect) ? text : false;
    });
    const title = await page.title();
    if (!title.includes(name)) throw new Error(`window title ${JSON.stringify(title)} does not name ${name}`);
  }

  async function commandPalette(command) {
    await waitFor("the command palette to open", async () => {
      await page.keyboard.press("F1");
      await page.locator(".quick-input-widget .quick-input-box input").waitFor({ state: "visible", timeout: 3000 });
      return true;
    });
    const input = page.locator(".quick-input-widget .quick-input-box input");
    await input.fill(`>${command}`);
    await waitFor(`"${command}" in the command palette`, async () => {
      const label = await page
        .locator(".quick-input-widget .quick-input-list .monaco-list-row.focused")
        .first()
        .textContent({ timeout: 1000 });
      return norm(label).includes(command.split(": ").pop());
    });
    await page.keyboard.press("Enter");
  }

  async function goToLine(line, column) {
    await page.locator(".editor-group-container.active .monaco-editor .view-lines").click();
    await page.keyboard.press("Control+g");
    const input = page.locator(".quick-input-widget .quick-input-box input");
    await input.waitFor({ state: "visible", timeout: 10_000 });
    await input.fill(`:${line}:${column}`);
    await page.keyboard.press("Enter");
    await waitFor(`the cursor at Ln ${line}, Col ${column}`, async () =>
      (await cursorStatus()).startsWith(`Ln ${line}, Col ${column}`),
    );
  }

  // The active editor's document URI: VS Code puts it on the editor's DOM
  // node (data-uri). Its labels (tab, title, breadcrumbs) show just the path,
  // whatever the scheme.
  const activeEditorUri = () =>
    page
      .$eval(".editor-group-container.active .editor-instance .monaco-editor[data-uri]", (e) => e.getAttribute("data-uri"))
      .catch(() => "");
  // (code-server serves a plain folder as vscode-remote://HOST:PORT/PATH.)
  const folderUri = SMOKE ? `vscode-remote://127.0.0.1:${port}${project}` : `distant://local${project}`;
  async function expectActiveEditor(name) {
    const uri = await activeEditorUri();
    if (uri !== `${folderUri}/${name}`) {
      throw new Error(`the active editor shows ${JSON.stringify(uri)}, not ${folderUri}/${name}`);
    }
    log(`  active editor: ${uri}`);
  }

  /** F12 at (line, column) until the cursor lands on `want` (retried: the server may still be starting). */
  async function goToDefinition(fromLine, fromColumn, wantFile, wantLine, wantColumn) {
    let attempts = 0;
    await waitFor(
      `go to definition from ${fromLine}:${fromColumn} to ${wantFile}:${wantLine}:${wantColumn}`,
      async () => {
        attempts += 1;
        if ((await activeEditorUri()) !== `${folderUri}/main.py`) {
          // A previous attempt may have landed elsewhere: back to main.py.
          await openFromExplorer("main.py", "def greet");
        }
        await goToLine(fromLine, fromColumn);
        await page.keyboard.press("F12");
        return waitFor(
          "the cursor to move",
          async () => {
            const status = await cursorStatus();
            const uri = await activeEditorUri();
            return uri.endsWith(`/${wantFile}`) && status.startsWith(`Ln ${wantLine}, Col ${wantColumn}`);
          },
          { timeout: 5000 },
        ).catch(() => false);
      },
      { timeout: LSP_TIMEOUT, interval: 2000 },
    );
    log(`  landed after ${attempts} attempt(s) at ${await cursorStatus()}`);
    await expectActiveEditor(wantFile);
  }


  // 1. The Explorer lists the remote files.
  await step("Explorer lists the remote files", async () => {
    const rows = await waitFor(
      "main.py, util.py and README.md in the Explorer",
      async () => {
        const names = await explorerRows();
        return ["main.py", "util.py", "README.md"].every((n) => names.includes(n)) && names;
      },
      { timeout: STARTUP_TIMEOUT },
    );
    log(`  explorer: ${rows.join(", ")}`);
    if (!SMOKE) {
      // The extension's status bar item names the remote and its state.
      const status = await waitFor("the status bar to say distant: local connected", async () => {
        const items = await page.$$eval(".statusbar-item", (all) => all.map((e) => e.textContent.trim()));
        return items.map(norm).find((t) => /distant: local connected/.test(t));
      });
      log(`  status bar: ${status}`);
    }
  });

  // 2. A file opens with its content.
  await step("a file opens with its content", async () => {
    await openFromExplorer("README.md", "This file is read through distant.");
    await expectActiveEditor("README.md");
  }, { needs: [1] });

  // 3. An edit saved with Ctrl+S is on disk.
  await step("an edit saved with Ctrl+S is on disk", async () => {
    const file = path.join(project, "README.md");
    const line = `Saved by the e2e test ${MARK}.`;
    await page.locator(".editor-group-container.active .monaco-editor .view-lines").click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type(line);
    await waitFor("the edit in the editor", async () => (await activeEditorText()).includes(line));
    await page.keyboard.press("Control+s");
    await waitFor(`${file} to hold the edit`, async () => {
      const onDisk = await fsp.readFile(file, "utf8");
      return onDisk === `${README}${line}`;
    });
    await waitFor("the editor tab to be clean", async () =>
      page.$eval(".editor-group-container.active .tab.active", (t) => !t.classList.contains("dirty")),
    );
  }, { needs: [2] });

  // 4. A remote terminal runs a command and shows its output.
  await step("a remote terminal runs a command and shows its output", async () => {
    await commandPalette(terminalCommand);
    const terminal = page.locator(".terminal-wrapper.active .xterm, .terminal-group .xterm").first();
    await terminal.waitFor({ state: "visible", timeout: STEP_TIMEOUT });
    const rowsText = () =>
      page.$$eval(".xterm-rows", (all) => all.map((r) => r.innerText).join("\n")).then(norm);
    // Wait for a prompt (any output) before typing.
    await waitFor("the remote shell's prompt", async () => (await rowsText()).trim().length > 0);
    await terminal.click();
    // Where the shell runs and what started it: distant-server's PTY, not
    // code-server's own terminal backend.
    await page.keyboard.type("echo distant-e2e-$((6*7)) in $(pwd) under $(cat /proc/$PPID/comm)");
    await page.keyboard.press("Enter");
    const text = await waitFor("distant-e2e-42 in the terminal", async () => {
      const t = await rowsText();
      return t.includes("distant-e2e-42") && t;
    });
    log(`  terminal:\n    ${text.trim().split("\n").filter(Boolean).slice(-4).join("\n    ")}`);
    const line = text.split("\n").find((l) => l.includes("distant-e2e-42"));
    if (!line.includes(`distant-e2e-42 in ${project} under`)) {
      throw new Error(`the terminal does not start in the workspace folder ${project}: ${line}`);
    }
    if (!SMOKE && !line.includes(" under distant-server")) {
      throw new Error(`the terminal's shell is not distant-server's child: ${line}`);
    }
    const tabs = norm(
      await page.$$eval(".single-terminal-tab, .terminal-tabs-entry", (all) => all.map((e) => e.textContent).join(" | ")),
    );
    log(`  terminal tab: ${tabs}`);
    if (!SMOKE && !tabs.includes("distant")) throw new Error(`the terminal is not distant's: ${tabs}`);
  }, { needs: [1] });

  if (!SMOKE) {
    // 5. pylsp answers go-to-definition in the same distant:// document.
    await step("go to definition (pylsp) lands on the definition in main.py", async () => {
      await openFromExplorer("main.py", "def greet");
      await goToDefinition(8, 8, "main.py", 4, 5);
    }, { needs: [1] });

    // 6. ... and across files: the location is a distant:// URI.
    await step("go to definition (pylsp) opens util.py as a distant:// document", async () => {
      await goToDefinition(9, 8, "util.py", 2, 5);
    }, { needs: [5] });

    // 7. Search Remote: F1, the pattern, the streamed results in a QuickPick,
    // Enter opens the match.
    await step("Search Remote finds a match and opens it at its line", async () => {
      const searchCommand = "distant: Search Remote";
      await commandPalette(searchCommand);
      const widget = page.locator(".quick-input-widget");
      const input = widget.locator(".quick-input-box input");
      // The same widget now asks for the pattern (showInputBox).
      await waitFor("the pattern prompt", async () => {
        const text = norm(await widget.innerText({ timeout: 1000 }));
        return (await input.isVisible()) && text.includes("Regular expression") && text;
      });
      await input.fill(SEARCH_TOKEN);
      await page.keyboard.press("Enter");
      const rowsOf = () =>
        page.$$eval(".quick-input-widget .quick-input-list .monaco-list-row", (rows) =>
          rows.map((r) => ({
            text: r.innerText.replace(/\s+/g, " ").trim(),
            focused: r.classList.contains("focused"),
          })),
        );
      // The QuickPick of results: its title names the pattern, a row the match.
      const rows = await waitFor("the match in the Search Remote QuickPick", async () => {
        const title = norm(await widget.locator(".quick-input-title").innerText({ timeout: 1000 }));
        if (!title.includes(SEARCH_TOKEN)) return false;
        const all = (await rowsOf()).map((r) => ({ ...r, text: norm(r.text) }));
        return all.some((r) => r.focused && r.text.includes("notes.txt:3:8")) && all;
      });
      log(`  results: ${rows.map((r) => `${r.focused ? "> " : ""}${r.text}`).join(" | ")}`);
      // Done (search/done): the count replaces "Searching…"; only notes.txt matches.
      const placeholder = await waitFor("the search to end (its count in the placeholder)", async () => {
        const p = norm(await input.getAttribute("placeholder", { timeout: 1000 }));
        return /\d+ match/.test(p) && p;
      });
      log(`  placeholder: ${placeholder}`);
      const final = await rowsOf();
      if (placeholder !== "1 match" || final.length !== 1) {
        throw new Error(`expected one match, got "${placeholder}" and ${final.length} row(s)`);
      }
      await page.keyboard.press("Enter");
      await waitFor("notes.txt active at Ln 3, Col 8", async () => {
        const uri = await activeEditorUri();
        const status = await cursorStatus();
        return uri === `${folderUri}/notes.txt` && status.startsWith("Ln 3, Col 8") && `${uri} ${status}`;
      });
      await waitFor("the quick input to close", async () => !(await widget.isVisible()));
      if (!(await activeEditorText()).includes(SEARCH_TOKEN)) throw new Error("notes.txt shows no token");
      await expectActiveEditor("notes.txt");
      log(`  cursor: ${await cursorStatus()}`);
    }, { needs: [1] });
  }

  // 8. Someone else changes the remote: the workbench hears it through the
  // extension's watch (onDidChangeFile), without any user action.
  await step("a remote change shows up (new file in the Explorer, open file reloaded)", async () => {
    await openFromExplorer("changes.txt", "before the remote change");
    await expectActiveEditor("changes.txt");
    const dirty = await page.$eval(".editor-group-container.active .tab.active", (t) => t.classList.contains("dirty"));
    if (dirty) throw new Error("changes.txt is dirty before the change");
    // A new file, written directly on disk.
    const newName = "created-remotely.txt";
    await fsp.writeFile(path.join(project, newName), "made by someone else\n");
    const rows = await waitFor(`${newName} in the Explorer`, async () => {
      const names = await explorerRows();
      return names.includes(newName) && names;
    });
    log(`  explorer: ${rows.join(", ")}`);
    // The open, unmodified file, changed on disk: the editor reloads it.
    const after = `after the remote change ${MARK}\n`;
    await fsp.writeFile(path.join(project, "changes.txt"), after);
    await waitFor("the editor to show changes.txt's new content", async () => {
      const text = await activeEditorText();
      return text.includes(after.trim()) && !text.includes("before the remote change");
    });
    await expectActiveEditor("changes.txt");
    const stillClean = await page.$eval(".editor-group-container.active .tab.active", (t) => !t.classList.contains("dirty"));
    if (!stillClean) throw new Error("changes.txt is dirty after the reload");
  }, { needs: [1] });

  if (!SMOKE) {
    const git = (...args) => {
      const r = spawnSync("git", ["-C", project, ...args], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    const quickInput = page.locator(".quick-input-widget");
    const quickInputBox = quickInput.locator(".quick-input-box input");
    const focusedRow = () =>
      page
        .locator(".quick-input-widget .quick-input-list .monaco-list-row.focused")
        .first()
        .innerText({ timeout: 1000 })
        .then(norm)
        .catch(() => "");

    // 9. Go to File (Ctrl+P in a distant:// workspace) finds a deeply nested
    // file by a fuzzy name.
    await step("Go to File (Ctrl+P) finds a deeply nested file by a fuzzy name", async () => {
      const rel = "packages/core/src/components/widgets/WidgetFactory.ts";
      await fsp.mkdir(path.join(project, path.dirname(rel)), { recursive: true });
      await fsp.writeFile(path.join(project, rel), `export const factory = "${MARK}";\n`);
      await page.keyboard.press("Escape");
      await waitFor("the Go to File picker", async () => {
        if (!(await quickInputBox.isVisible())) await page.keyboard.press("Control+p");
        const title = norm(await quickInput.locator(".quick-input-title").innerText({ timeout: 1000 }).catch(() => ""));
        return title.includes("Go to File") && title;
      });
      await quickInputBox.fill("wdgtfctry");
      const row = await waitFor("WidgetFactory.ts first in the picker", async () => {
        const text = await focusedRow();
        return text.includes("WidgetFactory.ts") && text;
      });
      log(`  first row: ${row}`);
      await page.keyboard.press("Enter");
      await waitFor(`${rel} active`, async () => (await activeEditorUri()) === `${folderUri}/${rel}`);
      await waitFor("its content", async () => (await activeEditorText()).includes(MARK));
      await expectActiveEditor(rel);
    }, { needs: [1] });

    // 10. Find in Files (a view) and Replace All across two files.
    await step("Find in Files finds a token in two files and Replace All rewrites both", async () => {
      const token = `FINDME_${process.pid}`;
      await fsp.writeFile(path.join(project, "alpha.txt"), `one ${token} here\n`);
      await fsp.writeFile(path.join(project, "beta.txt"), `two\n${token} there\n`);
      await page.keyboard.press("Escape");
      await commandPalette("distant: Find in Files");
      await waitFor("the pattern prompt", async () => (await quickInputBox.isVisible()) && (await quickInput.innerText()).includes("Text to find"));
      await quickInputBox.fill(token);
      await page.keyboard.press("Enter");
      await waitFor('"2 results in 2 files" in the Find in Files view', async () =>
        page.locator("text=2 results in 2 files").first().isVisible().catch(() => false),
      );
      await screenshot("find-in-files");
      await commandPalette("distant: Replace All");
      await waitFor("the replacement prompt", async () => (await quickInputBox.isVisible()) && (await quickInput.innerText()).includes("replace"));
      await quickInputBox.fill("REPLACED");
      await page.keyboard.press("Enter");
      await waitFor("both files rewritten on disk", async () => {
        const a = await fsp.readFile(path.join(project, "alpha.txt"), "utf8");
        const b = await fsp.readFile(path.join(project, "beta.txt"), "utf8");
        return a === "one REPLACED here\n" && b === "two\nREPLACED there\n";
      });
    }, { needs: [1] });

    // 11. Source Control: a modified file shows up; stage it, commit it.
    await step("Source Control shows a modified file; stage and commit it (git log shows it)", async () => {
      git("init", "-q", "-b", "main");
      git("config", "user.email", "e2e@example.com");
      git("config", "user.name", "e2e");
      git("add", ".");
      git("commit", "-q", "-m", "initial");
      await fsp.appendFile(path.join(project, "notes.txt"), `changed for the commit ${MARK}\n`);
      await page.keyboard.press("Escape");
      await commandPalette("distant git: Refresh");
      await page.keyboard.press("Control+Shift+g");
      const scmRow = page.locator(".scm-view .monaco-list-row", { hasText: "notes.txt" }).first();
      await waitFor("notes.txt in the Source Control view", async () => {
        if (!(await scmRow.isVisible().catch(() => false))) {
          await commandPalette("distant git: Refresh");
          await page.keyboard.press("Control+Shift+g");
          return false;
        }
        return true;
      });
      await screenshot("scm-changes");
      await scmRow.hover();
      await scmRow.locator('.action-label[aria-label="Stage Changes"]').click();
      await waitFor("notes.txt staged in the remote repository", async () =>
        git("diff", "--cached", "--name-only").split("\n").includes("notes.txt"),
      );
      const message = `Commit from VS Code over distant ${process.pid}`;
      await page.locator(".scm-editor .monaco-editor").first().click();
      await page.keyboard.type(message);
      await page.keyboard.press("Control+Enter");
      await waitFor("the commit in the remote's git log", async () => git("log", "-1", "--format=%s").trim() === message);
      log(`  git log: ${git("log", "--oneline", "-2").trim().replace(/\n/g, " | ")}`);
      // A change made on disk shows up by itself (the folder's file events).
      await fsp.appendFile(path.join(project, "util.py"), "# changed behind the workbench\n");
      await waitFor("util.py in the Source Control view with no command", async () =>
        page.locator(".scm-view .monaco-list-row", { hasText: "util.py" }).first().isVisible().catch(() => false),
      );
      await screenshot("scm-after-remote-change");
    }, { needs: [1] });
  }
}

async function dumpLogs() {
  // code-server's own log, the extension host's logs and output channels,
  // the bridge manager's log: copied into the artifacts, tails printed.
  const csLog = path.join(ARTIFACTS, "code-server.log");
  if (fs.existsSync(csLog)) log(`\n--- ${csLog} (tail)\n${tail(fs.readFileSync(csLog, "utf8"), 60)}`);
  if (TMP) {
    const root = TMP;
    const files = [
      ...(await listFiles(path.join(root, "user-data/logs"))),
      ...(await listFiles(path.join(root, "runtime"))).filter((f) => f.endsWith(".log")),
    ];
    const dest = path.join(ARTIFACTS, "logs");
    for (const f of files) {
      const rel = path.relative(root, f);
      await fsp.mkdir(path.dirname(path.join(dest, rel)), { recursive: true });
      await fsp.copyFile(f, path.join(dest, rel)).catch(() => {});
      if (/distant|manager|remoteexthost|remoteagent|ptyhost/i.test(rel)) {
        const text = fs.readFileSync(f, "utf8");
        if (text.trim()) log(`\n--- ${f} (tail)\n${tail(text, 60)}`);
      }
    }
  }
}

// Interrupted: still leave no code-server, bridge or manager behind.
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    for (const pid of markedPids()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    if (TMP && !KEEP) fs.rmSync(TMP, { recursive: true, force: true });
    process.exit(130);
  });
}

let fatal;
try {
  await main();
} catch (error) {
  fatal = error;
  log(`not ok - setup: ${String(error.stack || error)}`);
  await screenshot("setup-FAILED");
}
const failed = results.filter((r) => !r.ok).length + (fatal ? 1 : 0);
if (failed > 0) await dumpLogs().catch((e) => log(`(dumping logs failed: ${e.message})`));
for (const c of cleanups.reverse()) {
  try {
    await c();
  } catch (e) {
    log(`(cleanup failed: ${e.message})`);
  }
}
const pngs = fs.existsSync(ARTIFACTS) ? fs.readdirSync(ARTIFACTS).filter((f) => f.endsWith(".png")).sort() : [];
if (pngs.length) log(`\nscreenshots:\n${pngs.map((f) => `  ${path.join(ARTIFACTS, f)}`).join("\n")}`);
const passed = results.filter((r) => r.ok).length;
log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);

// Figures (not a test): the remote file index of 100 000 files through a
// real bridge (first page, all pages) and Go to File's fuzzy filter time per
// keystroke over those paths. `npm run bench:index`.
import "./helpers/register";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FileIndexes } from "../src/fileIndex";
import { FuzzyMatcher } from "../src/fuzzy";
import { startHarness } from "./helpers/harness";

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

async function main() {
  const h = startHarness();
  const indexes = new FileIndexes(h.connections);
  try {
    const root = join(h.dir, "tree");
    // 100 000 files: 10 packages × 10 modules × 10 dirs × 100 files.
    for (let a = 0; a < 10; a++)
      for (let b = 0; b < 10; b++)
        for (let c = 0; c < 10; c++) {
          const dir = join(root, `package_${a}`, `src`, `module_${b}`, `component${c}`);
          mkdirSync(dir, { recursive: true });
          for (let f = 0; f < 100; f++) writeFileSync(join(dir, `file_${f}_${a}${b}${c}.ts`), "");
        }
    await h.connections.connect("local");
    for (let run = 0; run < 3; run++) {
      const start = performance.now();
      let first = 0;
      const index = indexes.get("local", root);
      const sub = index.onDidChange(() => {
        if (!first && index.paths.size > 0) first = performance.now() - start;
      });
      while (!index.done) await new Promise((r) => setTimeout(r, 1));
      const all = performance.now() - start;
      sub.dispose();
      console.log(
        `index of ${index.paths.size} files: first page ${first.toFixed(1)} ms, all ${all.toFixed(0)} ms (through the bridge, loopback)`,
      );
      index.stale = true; // the next get() walks again
    }
    const paths = indexes.get("local", root);
    while (!paths.done) await new Promise((r) => setTimeout(r, 1));
    const matcher = new FuzzyMatcher();
    let t = performance.now();
    matcher.setPaths(paths.list());
    console.log(`setPaths(${paths.paths.size}): ${(performance.now() - t).toFixed(1)} ms`);
    // One warm-up pass (JIT): an editor filters many times per session.
    const queries = ["file_42_735", "pkg5modcomp3", "p5/s/m7/c3/f9", "component", "zzzz", "f"];
    for (const query of [...queries].reverse())
      for (let i = 1; i <= query.length; i++) matcher.filter(query.slice(0, i), 200);
    matcher.setPaths(paths.list()); // forget what the warm-up cached
    const times: number[] = [];
    const cpu: number[] = [];
    for (const query of queries) {
      matcher.filter("", 200);
      for (let i = 1; i <= query.length; i++) {
        t = performance.now();
        const before = process.cpuUsage();
        matcher.filter(query.slice(0, i), 200, ["package_1/src/module_2/component3/file_4_123.ts"]);
        const used = process.cpuUsage(before);
        times.push(performance.now() - t);
        cpu.push((used.user + used.system) / 1000);
      }
    }
    times.sort((a, b) => a - b);
    cpu.sort((a, b) => a - b);
    console.log(
      `fuzzy filter per keystroke over ${paths.paths.size} paths (${times.length} keystrokes): median ${percentile(times, 50).toFixed(2)} ms, p95 ${percentile(times, 95).toFixed(2)} ms, max ${times[times.length - 1].toFixed(2)} ms wall; CPU time median ${percentile(cpu, 50).toFixed(2)} ms, p95 ${percentile(cpu, 95).toFixed(2)} ms, max ${cpu[cpu.length - 1].toFixed(2)} ms (load average ${require("node:os").loadavg()[0].toFixed(1)})`,
    );
  } finally {
    indexes.dispose();
    await h.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

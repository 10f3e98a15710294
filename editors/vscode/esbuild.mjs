// Bundles the extension (and, with --tests, the unit tests) with esbuild.
// The extension bundle carries its npm dependencies so the .vsix needs no
// node_modules; `vscode` stays external (the extension host provides it).
import * as esbuild from "esbuild";
import { readdirSync } from "node:fs";

const tests = process.argv.includes("--tests");

if (tests) {
  // One output file per test file; the vscode stub is resolved at run time by
  // test/helpers/register.ts, so `vscode` stays external here too.
  const entryPoints = readdirSync("test")
    .filter((f) => f.endsWith(".test.ts"))
    .map((f) => `test/${f}`);
  await esbuild.build({
    entryPoints,
    outdir: "out-test",
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    sourcemap: "inline",
    external: ["vscode"],
    logLevel: "warning",
  });
} else {
  await esbuild.build({
    entryPoints: ["src/extension.ts"],
    outfile: "dist/extension.js",
    bundle: true,
    platform: "node",
    target: "node18",
    format: "cjs",
    sourcemap: false,
    minify: false,
    external: ["vscode"],
    logLevel: "warning",
  });
}

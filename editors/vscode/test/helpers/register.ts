// Makes `require("vscode")` return the stub. Imported first by every test
// file (esbuild keeps `vscode` external, so the require happens at run time).
import Module from "node:module";
import * as stub from "./vscode-stub";

const mod = Module as unknown as {
  _resolveFilename: (request: string, ...rest: unknown[]) => string;
  _cache: Record<string, unknown>;
};
const original = mod._resolveFilename;
mod._resolveFilename = function (request: string, ...rest: unknown[]) {
  if (request === "vscode") return "vscode";
  return original.call(this, request, ...rest);
};
require.cache["vscode"] = {
  id: "vscode",
  filename: "vscode",
  loaded: true,
  exports: stub,
} as unknown as NodeJS.Module;

// Figures (not a test): readFile/writeFile of a 10 MiB file through the
// FileSystemProvider and a real bridge. `npm run bench`.
import "./helpers/register";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import * as vscode from "vscode";
import { DistantFileSystemProvider } from "../src/fileSystemProvider";
import { startHarness } from "./helpers/harness";

async function main() {
  const h = startHarness();
  const fs = new DistantFileSystemProvider(h.bridge, h.connections);
  try {
    const size = 10 * 1024 * 1024;
    const bytes = randomBytes(size);
    writeFileSync(`${h.dir}/big`, bytes);
    const uri = vscode.Uri.parse(`distant://local${h.dir}/big`);
    await fs.stat(uri); // connect first: time the transfer, not the server start
    for (let i = 0; i < 3; i++) {
      let t = performance.now();
      const read = await fs.readFile(uri);
      const readMs = performance.now() - t;
      if (!Buffer.from(read).equals(bytes)) throw new Error("content differs");
      t = performance.now();
      await fs.writeFile(uri, read, { create: true, overwrite: true });
      const writeMs = performance.now() - t;
      console.log(`10 MiB: readFile ${readMs.toFixed(0)} ms, writeFile ${writeMs.toFixed(0)} ms`);
    }
  } finally {
    fs.dispose();
    await h.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

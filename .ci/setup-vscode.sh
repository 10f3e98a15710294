#!/usr/bin/env bash
# Installs the VS Code extension's npm dependencies (editors/vscode), from
# package-lock.json. Idempotent: `npm ci` is skipped when node_modules
# matches the lock file already. Needs node >= 20 and npm.
set -euo pipefail
cd "$(dirname "$0")/../editors/vscode"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  # Our machines ship Node 20 and npm 11; Debian's nodejs (18) is too old for vsce.
  echo "setup-vscode: node (>= 20) and npm are needed on PATH" >&2
  exit 1
fi
node -e 'const [maj] = process.versions.node.split("."); if (+maj < 20) { console.error(`setup-vscode: node ${process.version} is too old (need >= 20)`); process.exit(1); }'

# npm writes node_modules/.package-lock.json on install; when it equals the
# lock file's content, the tree is already what `npm ci` would make.
if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  echo "setup-vscode: node_modules is up to date"
else
  npm ci --no-audit --no-fund
fi

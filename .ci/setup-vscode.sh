#!/usr/bin/env bash
# Installs the VS Code extension's npm dependencies (editors/vscode), from
# package-lock.json. Idempotent: `npm ci` is skipped when node_modules
# matches the lock file already. Needs node >= 20 and npm.
set -euo pipefail
cd "$(dirname "$0")/../editors/vscode"

if ! command -v npm >/dev/null 2>&1; then
  echo "setup-vscode: npm is missing; installing Debian's nodejs and npm"
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
node -e 'const [maj] = process.versions.node.split("."); if (+maj < 20) { console.error(`setup-vscode: node ${process.version} is too old (need >= 20)`); process.exit(1); }'

# npm writes node_modules/.package-lock.json on install; when it equals the
# lock file's content, the tree is already what `npm ci` would make.
if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  echo "setup-vscode: node_modules is up to date"
else
  npm ci --no-audit --no-fund
fi

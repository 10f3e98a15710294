#!/usr/bin/env bash
# Prepares this machine for the ssh tests (bridge/tests/ssh_*.rs): Debian's
# OpenSSH client and server, and a test user `distant-test` the tests log
# in as. Idempotent; run as root. The tests start their own sshd (on
# 127.0.0.1, a free port, their own keys and config); nothing here starts
# a daemon or opens a port.
set -euo pipefail

USER_NAME=distant-test

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-ssh.sh: run as root" >&2
    exit 1
fi

if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends openssh-server openssh-client; then
        apt-get update
        apt-get install -y --no-install-recommends openssh-server openssh-client
    fi
fi

# A login shell that is plain sh: a user's bash startup files would slow
# every ssh command down and could print banners.
if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --create-home --home-dir "/home/$USER_NAME" --shell /bin/sh "$USER_NAME"
fi
[ "$(getent passwd "$USER_NAME" | cut -d: -f7)" = /bin/sh ] || usermod --shell /bin/sh "$USER_NAME"
# With `UsePAM no`, sshd refuses an account whose password is locked ("!",
# what useradd leaves); "*" means "no password" without locking it.
usermod -p '*' "$USER_NAME"
home="$(getent passwd "$USER_NAME" | cut -d: -f6)"
mkdir -p "$home"
chown "$USER_NAME:" "$home"
chmod 0755 "$home"

# sshd's privilege separation directory.
mkdir -p /run/sshd
chmod 0755 /run/sshd

echo "setup-ssh.sh: ready (user $USER_NAME, home $home; sshd $(/usr/sbin/sshd -V 2>&1 | head -1 || true))"

# Sourced by the bench scripts: a throwaway OpenSSH server on loopback for
# the OpenSSH side of a comparison. Needs root (it creates the user
# `distant-bench`, login shell /bin/sh, key login only) and $WORK.
#
#   start_bench_sshd   starts it; sets SSH_PORT SSH_USER SSH_KEY SSHD_PID;
#                      fails (status 1) when not root or sshd is missing
#   stop_bench_sshd    stops it

SSH_PORT=${BENCH_SSH_PORT:-42022}
SSH_USER=distant-bench
SSH_KEY=$WORK/work/id_ed25519
SSHD_PID=$WORK/work/sshd.pid

start_bench_sshd() {
    [ "$(id -u)" = 0 ] && command -v sshd >/dev/null 2>&1 || return 1
    mkdir -p "$WORK/work"
    if ! id "$SSH_USER" >/dev/null 2>&1; then
        useradd -m -s /bin/sh "$SSH_USER"
    fi
    usermod -s /bin/sh -p '*' "$SSH_USER" # no password, key login only
    H=$(getent passwd "$SSH_USER" | cut -d: -f6)
    [ -f "$SSH_KEY" ] || ssh-keygen -q -t ed25519 -N '' -f "$SSH_KEY"
    [ -f "$WORK/work/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$WORK/work/host_ed25519"
    mkdir -p "$H/.ssh"
    cp "$SSH_KEY.pub" "$H/.ssh/authorized_keys"
    chown -R "$SSH_USER" "$H/.ssh"
    chmod 700 "$H/.ssh"
    chmod 600 "$H/.ssh/authorized_keys"
    mkdir -p /run/sshd
    cat >"$WORK/work/sshd_config" <<CFG
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $WORK/work/host_ed25519
PidFile $SSHD_PID
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers $SSH_USER
Subsystem sftp /usr/lib/openssh/sftp-server
PrintMotd no
MaxStartups 100
MaxSessions 100
CFG
    stop_bench_sshd
    /usr/sbin/sshd -f "$WORK/work/sshd_config"
    sleep 0.3
}

stop_bench_sshd() {
    if [ -f "$SSHD_PID" ] && kill -0 "$(cat "$SSHD_PID")" 2>/dev/null; then
        kill "$(cat "$SSHD_PID")" && sleep 0.3
    fi
    return 0
}

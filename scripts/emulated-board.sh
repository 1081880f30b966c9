#!/usr/bin/env bash
# An emulated arm64 board: a Debian bookworm aarch64 root run under qemu-user-static, reached over its
# own sshd on 127.0.0.1, with the Raspberry Pi device requirements installed. It proves correctness,
# packaging and transport on aarch64; its timings mean nothing (every instruction is emulated).
#
#   scripts/emulated-board.sh up      build once (cached), start; last line: the device config file
#   scripts/emulated-board.sh down    stop it
#   scripts/emulated-board.sh status  "up PID PORT CONFIG" (exit 0) or "down" (exit 3)
#   scripts/emulated-board.sh build   only build (CI caches it); check: "ok", or why it cannot run (exit 3)
#
# Needs root (debootstrap creates device nodes), debootstrap, qemu-user-static, util-linux unshare and
# openssh-client, and Linux >= 6.7 (binfmt_misc per user namespace). No host-wide change is made: qemu is
# registered with binfmt_misc inside a private user + mount namespace that lives exactly as long as the
# board's sshd (its pid is the board's pid); every aarch64 process of the board runs inside it.
#
# Environment: EDGEOPT_BOARD_CACHE (build cache; default ~/.cache/edgeopt/emulated-board),
# EDGEOPT_BOARD_STATE (keys, sshd config, device config of one running board; default <cache>/board),
# EDGEOPT_BOARD_NAME (device name; emulated-arm64), EDGEOPT_BOARD_CPU (qemu CPU model; cortex-a76, the
# Raspberry Pi 5's; cortex-a72 is the Pi 4's), EDGEOPT_BOARD_MIRROR (Debian mirror; default: the first
# Debian URI in /etc/apt/sources.list(.d)), EDGEOPT_BOARD_TORCH=0 (leave PyTorch out: no retraining with it).
set -euo pipefail

SELF="$(readlink -f "$0")"
REPO="$(cd "$(dirname "$SELF")/.." && pwd)"
SUITE=bookworm
BOARD_USER=pi
VENV=/opt/edgeopt-venv
NAME="${EDGEOPT_BOARD_NAME:-emulated-arm64}"
CPU="${EDGEOPT_BOARD_CPU:-cortex-a76}"
CHECK_CPU=cortex-a76 # the build checks the runtimes import on this CPU model
CACHE="${EDGEOPT_BOARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeopt/emulated-board}"
STATE="${EDGEOPT_BOARD_STATE:-$CACHE/board}"
TORCH="${EDGEOPT_BOARD_TORCH:-1}"
QEMU=/usr/bin/qemu-aarch64-static
REQS=("$REPO/envs/device-rpi.txt")
[ "$TORCH" = 1 ] && REQS+=("$REPO/envs/device-rpi-torch.txt")
# binfmt_misc line for aarch64 ELF executables; flag F opens qemu now, so it runs inside the chroot too
BINFMT=':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$QEMU"':F'

log() { echo "emulated-board: $*" >&2; }
die() {
    log "error: $*"
    exit 2
}

# The build is keyed by everything that goes into it: the build steps and the requirements files.
build_key() { { declare -f build in_root inside ns_spawn debian_mirror cpuinfo_for; echo "$CHECK_CPU"; echo "${BOARD_ENV[*]}"; cat "${REQS[@]}"; } | sha256sum | cut -c1-16; }

# The first reason this machine cannot run the board (empty: it can). `check` prints it.
prereq_problem() {
    if [ "$(id -u)" != 0 ]; then
        echo "needs root (debootstrap creates device nodes; the board's sshd switches to the board user)"
        return
    fi
    local missing=() tool
    for tool in debootstrap unshare chroot ssh ssh-keygen flock python3; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [ -x "$QEMU" ] || missing+=("$QEMU")
    if [ ${#missing[@]} != 0 ]; then
        echo "missing ${missing[*]} (apt-get install debootstrap qemu-user-static openssh-client)"
        return
    fi
    if ! unshare --user --mount true 2>/dev/null; then
        echo "cannot create user namespaces here (unshare --user fails)"
        return
    fi
    ns_spawn "$SELF" _probe
    if ! wait "$NS_PID"; then
        echo "binfmt_misc cannot be mounted in a user namespace (needs Linux >= 6.7; this is $(uname -r))"
        return
    fi
    if [ ! -f "$CACHE/$(build_key)/built" ]; then
        local mirror
        mirror="$(debian_mirror)"
        python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=15)' \
            "$mirror/dists/$SUITE/Release" 2>/dev/null \
            || echo "the Debian mirror $mirror is not reachable (the board is not built yet)"
    fi
}

require_tools() {
    local problem
    problem="$(prereq_problem)"
    [ -z "$problem" ] || die "$problem"
}

# First Debian (not -security) URI that apt uses here: only the configured mirror may be reachable.
debian_mirror() {
    if [ -n "${EDGEOPT_BOARD_MIRROR:-}" ]; then
        echo "$EDGEOPT_BOARD_MIRROR"
        return
    fi
    local uri
    uri="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' | grep -v -- '-security' | grep -m1 '/debian/\?$' || true)"
    [ -n "$uri" ] || uri="$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' | grep -v -- '-security' | grep -m1 '/debian/\?$' || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

# Run "$@" (a command of this host) in a fresh user + mount namespace whose ids map 1:1 onto the host's,
# so root stays root and file owners stay what they are; only binfmt_misc and the mounts are private.
# Prints nothing; `ns_spawn` leaves the pid in NS_PID (the command runs as that very process).
ns_spawn() {
    local fifo
    fifo="$(mktemp -u "${TMPDIR:-/tmp}/edgeopt-board.XXXXXX")"
    mkfifo -m 600 "$fifo"
    # the child waits on the fifo until its id maps are written
    unshare --user --mount --propagation private -- \
        /bin/bash -c 'read -r _ < "$0"; rm -f "$0"; exec "$@"' "$fifo" "$@" &
    NS_PID=$!
    local mine tries=0
    mine="$(readlink /proc/self/ns/user)"
    while [ "$(readlink "/proc/$NS_PID/ns/user" 2>/dev/null || echo "$mine")" = "$mine" ]; do
        kill -0 "$NS_PID" 2>/dev/null || die "unshare --user --mount failed (user namespaces disabled?)"
        tries=$((tries + 1))
        [ $tries -lt 200 ] || die "unshare did not enter a user namespace within 10 s"
        sleep 0.05
    done
    echo "0 0 4294967295" >"/proc/$NS_PID/uid_map"
    echo "0 0 4294967295" >"/proc/$NS_PID/gid_map"
    echo go >"$fifo"
}

# Inside the namespace: register qemu, mount what the board needs into ROOT, exec chroot ROOT CMD...
# Extra binds come as --bind SRC DST (DST inside ROOT) before ROOT.
inside() {
    local binds=()
    while [ "${1:-}" = --bind ]; do
        binds+=("$2" "$3")
        shift 3
    done
    local root="$1"
    shift
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
        || die "cannot mount binfmt_misc in a user namespace (needs Linux >= 6.7; this is $(uname -r))"
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || printf '%s\n' "$BINFMT" >/proc/sys/fs/binfmt_misc/register
    for d in proc sys dev; do
        mount --rbind "/$d" "$root/$d"
    done
    local i
    for ((i = 0; i < ${#binds[@]}; i += 2)); do
        mount --bind "${binds[i]}" "$root/${binds[i + 1]}"
    done
    exec chroot "$root" "$@"
}

# The environment board processes start with: the host's own (its PIP_* paths, say) stays out.
BOARD_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root)

# Run CMD... in the board root (build time), waiting for it; CPU-heavy, so niced.
in_root() {
    ns_spawn nice -n 10 env -i "${BOARD_ENV[@]}" "$SELF" _inside "$@"
    wait "$NS_PID"
}

# Write DIR/cpuinfo: /proc/cpuinfo as an arm64 kernel shows qemu's CPU model (qemu-user passes the host's
# x86 one through, and the runtimes' CPU detection crashes on it).
cpuinfo_for() {
    local root="$1" cpu="$2" dir="$3"
    cp "$REPO/scripts/emulated-board-cpuinfo.py" "$dir/cpuinfo.py"
    ns_spawn env -i "${BOARD_ENV[@]}" QEMU_CPU="$cpu" "$SELF" _inside --bind "$dir" /etc/ssh/edgeopt "$root" \
        /usr/bin/python3 /etc/ssh/edgeopt/cpuinfo.py "$cpu" /etc/ssh/edgeopt/cpuinfo
    wait "$NS_PID" || die "could not describe the emulated CPU $cpu"
}

build() {
    local key dest tmp mirror t0
    key="$(build_key)"
    dest="$CACHE/$key"
    [ -f "$dest/built" ] && return 0
    exec 8>"$CACHE/build.lock"
    flock 8
    [ -f "$dest/built" ] && return 0
    t0=$SECONDS
    mirror="$(debian_mirror)"
    tmp="$CACHE/$key.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "building the arm64 root ($SUITE, $mirror) in $dest: a few minutes, once"
    nice -n 10 debootstrap --foreign --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,openssh-server,rsync \
        "$SUITE" "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1 \
        || die "debootstrap (first stage) failed, see $tmp/debootstrap.log"
    # container=lxc: in a user namespace debootstrap must not try mknod (the first stage made /dev)
    in_root "$tmp/root" /usr/bin/env container=lxc /debootstrap/debootstrap --second-stage >>"$tmp/debootstrap.log" 2>&1 \
        || die "debootstrap --second-stage failed, see $tmp/debootstrap.log or $tmp/root/debootstrap/debootstrap.log"
    log "debootstrap done ($((SECONDS - t0)) s)"
    # name resolution, the package index settings and the CA bundle pip needs, as on the host
    mkdir -p "$tmp/root/etc/ssl/certs"
    cp /etc/resolv.conf "$tmp/root/etc/resolv.conf"
    [ -f /etc/pip.conf ] && cp /etc/pip.conf "$tmp/root/etc/pip.conf"
    cp /etc/ssl/certs/ca-certificates.crt "$tmp/root/etc/ssl/certs/ca-certificates.crt"
    mkdir -p "$tmp/root/tmp/edgeopt-reqs" "$tmp/root/run/sshd" "$tmp/root/etc/ssh/edgeopt"
    cp "${REQS[@]}" "$tmp/root/tmp/edgeopt-reqs/"
    in_root "$tmp/root" /bin/sh -ec "
        useradd --create-home --shell /bin/bash --password '*' $BOARD_USER # key login only, not locked
        python3 -m venv $VENV
        $VENV/bin/pip install -q --disable-pip-version-check --no-cache-dir $(printf -- '-r /tmp/edgeopt-reqs/%s ' "${REQS[@]##*/}")
        rm -rf /tmp/edgeopt-reqs /var/cache/apt/archives/*.deb
    " >"$tmp/pip.log" 2>&1 || die "installing the device requirements failed, see $tmp/pip.log"
    # the runtimes load on an emulated Cortex-A76 (Raspberry Pi 5); they need an arm64 /proc/cpuinfo
    mkdir -m 755 "$tmp/check"
    cpuinfo_for "$tmp/root" "$CHECK_CPU" "$tmp/check"
    local imports="import numpy, onnxruntime, ai_edge_litert.interpreter"
    [ "$TORCH" = 1 ] && imports="$imports, torch; torch.ones(2) @ torch.ones(2)"
    in_root --bind "$tmp/check/cpuinfo" /proc/cpuinfo "$tmp/root" \
        /usr/bin/env QEMU_CPU="$CHECK_CPU" $VENV/bin/python -c "$imports" >>"$tmp/pip.log" 2>&1 \
        || die "the device requirements do not import on $CHECK_CPU, see $tmp/pip.log"
    rm -rf "$tmp/check"
    log "device requirements installed ($((SECONDS - t0)) s)"
    mv "$tmp/debootstrap.log" "$tmp/pip.log" "$tmp/root/var/log/" 2>/dev/null || true
    touch "$tmp/built"
    # builds of other inputs are stale: keep only this one
    find "$CACHE" -mindepth 1 -maxdepth 1 -type d -not -name "$key.tmp" -not -name "$(basename "$STATE")" \
        -exec rm -rf {} +
    mv "$tmp" "$dest"
    log "built in $((SECONDS - t0)) s"
}

running_pid() {
    local pid
    pid="$(cat "$STATE/pid" 2>/dev/null || true)"
    [ -n "$pid" ] && [ -r "/proc/$pid/environ" ] && tr '\0' '\n' <"/proc/$pid/environ" \
        | grep -qx "EDGEOPT_BOARD_STATE=$STATE" && echo "$pid"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

ssh_board() {
    ssh -o BatchMode=yes -o ConnectTimeout=10 -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$STATE/known_hosts" \
        -i "$STATE/id_ed25519" -p "$(cat "$STATE/port")" "$BOARD_USER@127.0.0.1" "$@"
}

up() {
    require_tools
    mkdir -p -m 700 "$CACHE"
    if [ -n "$(running_pid || true)" ]; then
        echo "$STATE/board.yaml"
        return 0
    fi
    build
    local root port
    root="$CACHE/$(build_key)/root"
    rm -rf "$STATE"
    mkdir -p -m 700 "$STATE"
    mkdir -m 755 "$STATE/sshd" # bind-mounted to /etc/ssh/edgeopt in the board: the board user reads it
    ssh-keygen -q -t ed25519 -N "" -C "$NAME-host" -f "$STATE/sshd/host_key"
    ssh-keygen -q -t ed25519 -N "" -C "edgeopt@$NAME" -f "$STATE/id_ed25519"
    cp "$STATE/id_ed25519.pub" "$STATE/sshd/authorized_keys"
    chmod 644 "$STATE/sshd/authorized_keys"
    port="$(free_port)"
    echo "$port" >"$STATE/port"
    echo "[127.0.0.1]:$port $(cat "$STATE/sshd/host_key.pub")" >"$STATE/known_hosts"
    cat >"$STATE/sshd/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey /etc/ssh/edgeopt/host_key
PidFile none
AuthorizedKeysFile /etc/ssh/edgeopt/authorized_keys
AllowUsers $BOARD_USER
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
PermitRootLogin no
Subsystem sftp internal-sftp
SetEnv QEMU_CPU=$CPU
LogLevel INFO
EOF
    cpuinfo_for "$root" "$CPU" "$STATE/sshd"
    # the board: its sshd is the namespace's first process; its pid is the board's
    ns_spawn env -i "${BOARD_ENV[@]}" EDGEOPT_BOARD_STATE="$STATE" QEMU_CPU="$CPU" setsid "$SELF" _inside \
        --bind "$STATE/sshd" /etc/ssh/edgeopt --bind "$STATE/sshd/cpuinfo" /proc/cpuinfo "$root" \
        /usr/sbin/sshd -D -e -f /etc/ssh/edgeopt/sshd_config </dev/null >"$STATE/sshd.log" 2>&1
    echo "$NS_PID" >"$STATE/pid"
    local deadline=$((SECONDS + 90)) machine=""
    until machine="$(ssh_board uname -m 2>>"$STATE/ssh.log")"; do
        kill -0 "$NS_PID" 2>/dev/null || die "the board's sshd exited: $(tail -3 "$STATE/sshd.log")"
        if [ $SECONDS -ge $deadline ]; then
            down
            die "the board's sshd did not answer within 90 s, see $STATE/sshd.log"
        fi
        sleep 1
    done
    if [ "$machine" != aarch64 ]; then
        down
        die "the board answers uname -m = $machine, not aarch64"
    fi
    local python=$VENV/bin/python runtimes="[onnxruntime, tflite]"
    if [ "$TORCH" = 1 ]; then
        if ssh_board "$python -c 'import torch'" 2>>"$STATE/ssh.log"; then
            runtimes="[onnxruntime, tflite, pytorch]"
        else
            log "warning: PyTorch does not run on $CPU (see $STATE/ssh.log): the board declares no pytorch runtime"
        fi
    fi
    cat >"$STATE/board.yaml" <<EOF
# Device config of the emulated arm64 board (scripts/emulated-board.sh up; CPU $CPU under qemu-user).
# Add it to a run with --configfile $STATE/board.yaml and name "$NAME" in bench.devices / retrain.devices.
# Its timings mean nothing: every instruction is emulated.
devices:
  $NAME:
    host: 127.0.0.1
    port: $port
    user: $BOARD_USER
    identity_file: $STATE/id_ed25519
    known_hosts: $STATE/known_hosts
    python: $python
    workdir: edgeopt-device
    runtimes: $runtimes
    power: none
    connect_timeout: 30
    timeout: 3600
EOF
    log "up: $NAME ($CPU under qemu) at $BOARD_USER@127.0.0.1:$port, pid $NS_PID"
    echo "$STATE/board.yaml"
}

down() {
    local pid
    pid="$(running_pid || true)"
    if [ -z "$pid" ]; then
        log "not running"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$STATE/pid"
    log "stopped (pid $pid)"
}

status() {
    local pid
    pid="$(running_pid || true)"
    if [ -z "$pid" ]; then
        echo down
        return 3
    fi
    echo "up $pid $(cat "$STATE/port") $STATE/board.yaml"
}

main() {
    case "${1:-}" in
    up) up ;;
    build)
        require_tools
        mkdir -p -m 700 "$CACHE"
        build
        ;;
    check)
        problem="$(prereq_problem)"
        [ -z "$problem" ] || {
            echo "$problem"
            exit 3
        }
        echo ok
        ;;
    _probe) mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ;;
    down) down ;;
    status) status ;;
    _inside)
        shift
        inside "$@"
        ;;
    *)
        echo "usage: $0 up|down|status" >&2
        exit 2
        ;;
    esac
}

main "$@"
exit $?

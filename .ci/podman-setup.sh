#!/usr/bin/env bash
# Sets up podman as a Docker-compatible engine for the container tests (test/images/), idempotently.
#
# Run as root (CI is root on a fresh machine). It installs podman and runc, writes one containers.conf and one
# storage.conf (the same from the first use on: a storage mismatch makes every container stop hang for 20 s),
# starts `podman system service` on unix:///run/podman/podman.sock in the background if it is not answering,
# waits for the socket, and prints the environment the tests need as `export` lines:
#
#     eval "$(bash .ci/podman-setup.sh)"
#
# The tests also find the socket and the configuration by themselves when these variables are unset.
set -euo pipefail
log() { echo "podman-setup: $*" >&2; }

# Where things go; the variables exist for test/ci/podman-setup.test.ts, which runs this script against a stand-in.
CONF_DIR="${TS_ETCD_PODMAN_CONF_DIR:-/etc/ts-etcd}"
CONTAINERS_CONF_FILE="$CONF_DIR/containers.conf"
STORAGE_CONF_FILE="$CONF_DIR/storage.conf"
SOCK="${TS_ETCD_PODMAN_SOCK:-/run/podman/podman.sock}"
SOCK_DIR="$(dirname "$SOCK")"
SERVICE_LOG="${TS_ETCD_PODMAN_LOG:-/var/log/ts-etcd-podman-service.log}"

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# 1. Packages (podman brings conmon, netavark and aardvark-dns; runc because crun fails on hybrid cgroups here).
PKGS=(podman runc)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

# 2. Configuration. crun and the default ulimits fail on this host's hybrid cgroups: runc, cgroupfs, a file
#    events logger and explicit ulimits work.
$SUDO mkdir -p "$CONF_DIR"
write_if_changed() { # path, content on stdin
  local tmp; tmp="$(mktemp)"; cat >"$tmp"
  if ! cmp -s "$tmp" "$1" 2>/dev/null; then $SUDO install -m 0644 "$tmp" "$1"; log "wrote $1"; fi
  rm -f "$tmp"
}
write_if_changed "$CONTAINERS_CONF_FILE" <<'CONF'
# Written by .ci/podman-setup.sh (ts-etcd container tests).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
write_if_changed "$STORAGE_CONF_FILE" <<'CONF'
# Written by .ci/podman-setup.sh (ts-etcd container tests). Keep it the same from the first use on.
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
CONF
export CONTAINERS_CONF="$CONTAINERS_CONF_FILE"
export CONTAINERS_STORAGE_CONF="$STORAGE_CONF_FILE"

# 3. The API service (Docker-compatible), in the background, detached from this script.
ping_socket() { [ -S "$SOCK" ] && curl -fsS --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
if ! command -v curl >/dev/null 2>&1; then
  ping_socket() { [ -S "$SOCK" ] && podman --url "unix://$SOCK" version >/dev/null 2>&1; }
fi
# A service started from a directory that was deleted since (an earlier clone of the project) cannot start
# containers any more: conmon fails with "Failed to get working directory". Replace such a service.
for pid in $(pgrep -f "podman system service.*$SOCK" || true); do
  if readlink "/proc/$pid/cwd" 2>/dev/null | grep -q '(deleted)$'; then
    log "restarting the podman service $pid: its working directory was deleted"
    $SUDO kill "$pid" || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
done
if ping_socket; then
  log "service already answering on $SOCK"
else
  $SUDO mkdir -p "$SOCK_DIR"
  rm -f "$SOCK"
  log "starting podman system service on unix://$SOCK (log: $SERVICE_LOG)"
  # From /, so that the service never depends on the directory this script was run from. Every descriptor of the
  # background job points away from this script's output: the caller reads that output with $(...), which waits
  # until nothing holds it open any more (a subshell left holding it would hang CI forever).
  (cd / && exec nohup setsid podman system service --time=0 "unix://$SOCK") </dev/null >>"$SERVICE_LOG" 2>&1 &
  for _ in $(seq 1 100); do ping_socket && break; sleep 0.2; done
  if ! ping_socket; then
    log "the service did not answer on $SOCK within 20 s; its log:"; tail -n 30 "$SERVICE_LOG" >&2 || true
    exit 1
  fi
  log "service answering on $SOCK"
fi

# 4. The environment the tests need.
cat <<ENV
export CONTAINERS_CONF=$CONTAINERS_CONF_FILE
export CONTAINERS_STORAGE_CONF=$STORAGE_CONF_FILE
export DOCKER_HOST=unix://$SOCK
export TESTCONTAINERS_RYUK_DISABLED=true
ENV

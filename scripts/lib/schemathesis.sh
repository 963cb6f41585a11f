#!/usr/bin/env bash
# Runs schemathesis against the local stack with docs/openapi.yaml, once per kind of caller
# (merchant, customer, operator, nobody), so that each route is exercised both past and short
# of its authorization. Checks: no 5xx; status codes, content types and bodies as documented;
# requests the document calls invalid are refused with a 4xx.
#
#   scripts/lib/schemathesis.sh [path/to/bazaar-local]
#
# Called by scripts/test after `cargo test` built the binary; ST_MAX_EXAMPLES (default 50)
# sets the cases per operation and phase, ST_SEED (default 1) the seed. Logs go to
# target/schemathesis-<caller>.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
. scripts/lib/venv.sh
venv_ready "$root"

bin=${1:-$root/target/debug/bazaar-local}
examples=${ST_MAX_EXAMPLES:-50}
seed=${ST_SEED:-1}
port=$(free_port)
provider_port=$(free_port)
marketplace_port=$(free_port)
carrier_port=$(free_port)
data=$(mktemp -d)
mkdir -p target
"$bin" --template template.yaml --data-dir "$data" dev --in-memory \
  --port "$port" --provider-port "$provider_port" --marketplace-port "$marketplace_port" \
  --carrier-port "$carrier_port" >target/schemathesis-stack.log 2>&1 &
stack=$!
trap 'kill $stack 2>/dev/null || true; rm -rf "$data"' EXIT
base="http://127.0.0.1:$port"
wait_http "$base/.well-known/openid-configuration" $stack "the local stack" target/schemathesis-stack.log

token() {
  python3 - "$base" "$1" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/auth/token", method="POST",
    data=json.dumps({"username": sys.argv[2], "password": "bazaar-local"}).encode(),
    headers={"content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["access_token"])
PY
}

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection
failed=0
for caller in merchant-1 customer-1 operator nobody; do
  auth=()
  if [ "$caller" != nobody ]; then auth=(-H "Authorization: Bearer $(token "$caller")"); fi
  log="target/schemathesis-$caller.log"
  if st run docs/openapi.yaml --url "$base" "${auth[@]}" --checks "$checks" \
      --max-examples "$examples" --seed "$seed" --generation-database none --no-color >"$log" 2>&1; then
    printf '%-11s %s\n' "$caller" "$(grep -E '[0-9]+ generated' "$log" | sed 's/^ *//')"
  else
    echo "schemathesis as $caller found problems (full log: $log):"
    sed -n '/FAILURES\|SUMMARY/,$p' "$log" | head -80
    failed=1
  fi
done
exit $failed

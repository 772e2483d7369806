#!/usr/bin/env bash
# What telemetry costs, in instructions (callgrind counts do not move with
# the machine's load, unlike QPS on a shared machine):
#   - per Evaluate, with telemetry on and off (1,000 schedules, 8 in flight,
#     6 s under valgrind, the count zeroed after populating);
#   - per scrape of /metrics with 1,000 schedules.
# Usage: bench/telemetry_callgrind.sh [build/bin]
set -euo pipefail
BIN=${1:-$(dirname "$0")/../build/bin}
command -v valgrind >/dev/null || { echo "needs valgrind"; exit 1; }

# start_server DIR FLAGS...: anneal-server under callgrind; prints its pid.
start_server() {
  local dir=$1; shift
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
    "$BIN/anneal-server" --listen=127.0.0.1:0 --port_file="$dir/port" \
    --db="$dir/db" "$@" >"$dir/log" 2>&1 &
  echo $!
}
wait_port() { while [[ ! -s $1/port ]]; do sleep 0.5; done; cat "$1/port"; }
instructions() {  # the newest dump's total
  grep -h "^summary:\|^totals:" "$(ls -t "$1"/cg.*.[0-9]* | head -1)" |
    head -1 | awk '{print $2}'
}
populate() {
  "$BIN/load_gen" --target="127.0.0.1:$1" --populate=1000 --request=evaluate \
    --names=1000 --seconds=2 --warmup=0 --in_flight=8 >/dev/null
}

for mode in off on; do
  dir=$(mktemp -d)
  flags=(--metrics_listen=)
  [[ $mode == on ]] && flags=(--metrics_listen=127.0.0.1:0)
  pid=$(start_server "$dir" "${flags[@]}")
  port=$(wait_port "$dir")
  populate "$port"
  callgrind_control -z "$pid" >/dev/null
  calls=$("$BIN/load_gen" --target="127.0.0.1:$port" --request=evaluate \
    --names=1000 --seconds=6 --warmup=0 --in_flight=8 |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["calls"])')
  callgrind_control -d "$pid" >/dev/null
  total=$(instructions "$dir")
  echo "telemetry $mode: $((total / calls)) instructions per Evaluate ($calls calls)"
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dir"
done

dir=$(mktemp -d)
pid=$(start_server "$dir" --metrics_listen=127.0.0.1:0 \
  --metrics_port_file="$dir/mport")
populate "$(wait_port "$dir")"
url="http://127.0.0.1:$(cat "$dir/mport")/metrics"
curl -s "$url" >/dev/null
callgrind_control -z "$pid" >/dev/null
for _ in 1 2 3 4 5; do curl -s "$url" >"$dir/out"; done
callgrind_control -d "$pid" >/dev/null
echo "a scrape: $(($(instructions "$dir") / 5)) instructions," \
  "$(wc -c <"$dir/out") bytes, $(grep -vc '^#' "$dir/out") samples"
kill -INT "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dir"

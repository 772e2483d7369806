#!/usr/bin/env bash
# Generates the Python modules of anneal's protos into python/anneal/v1/
# (checked in, so that `pip install ./python` needs no protoc), with Debian's
# protoc and grpc_python_plugin (no PyPI, no grpcio-tools).
#   scripts/gen-python-stubs.sh           regenerate them
#   scripts/gen-python-stubs.sh --check   fail if they are not what the
#                                         protos generate (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."

protos=(anneal/v1/schedule.proto anneal/v1/resources.proto
        anneal/v1/analysis.proto anneal/v1/diagnosis.proto
        anneal/v1/service.proto)
plugin=$(command -v grpc_python_plugin || true)
if [[ -z $plugin ]] || ! command -v protoc >/dev/null; then
  echo "gen-python-stubs: needs protoc and grpc_python_plugin" \
       "(apt install protobuf-compiler protobuf-compiler-grpc)" >&2
  exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
protoc --proto_path=proto --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$plugin" "${protos[@]/#/proto/}"
# Only service.proto has a service; the other _grpc modules are empty.
for empty in schedule resources analysis diagnosis; do
  rm -f "$out/anneal/v1/${empty}_pb2_grpc.py"
done
touch "$out/anneal/v1/__init__.py"

if [[ ${1:-} == --check ]]; then
  if ! diff -r -q "$out/anneal/v1" python/anneal/v1 >/dev/null; then
    diff -r "$out/anneal/v1" python/anneal/v1 | head -20 >&2
    echo "gen-python-stubs: python/anneal/v1 is not what proto/ generates;" \
         "run scripts/gen-python-stubs.sh and commit the result" >&2
    exit 1
  fi
  echo "gen-python-stubs: python/anneal/v1 is current"
  exit 0
fi
rm -rf python/anneal/v1
cp -r "$out/anneal/v1" python/anneal/v1
echo "gen-python-stubs: wrote python/anneal/v1"

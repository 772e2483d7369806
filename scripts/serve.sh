#!/usr/bin/env bash
# The run command: installs what is missing, builds, and starts the server
# with the embedded SQLite store (./anneal.db). Extra arguments go to the
# server (e.g. --listen=127.0.0.1:50051).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DANNEAL_BUILD_TESTS=OFF -DANNEAL_BUILD_BENCH=OFF
cmake --build "$BUILD_DIR" -j"$(nproc)"

echo "serve: starting anneal-server (annealctl is at $BUILD_DIR/bin/annealctl)"
exec "$BUILD_DIR/bin/anneal-server" "$@"

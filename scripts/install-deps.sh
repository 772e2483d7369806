#!/usr/bin/env bash
# Installs the Debian 12 packages anneal needs to build, test and run, but only
# those that are missing (so a second run is instant and offline). Run as root
# or with sudo available.
set -euo pipefail

PACKAGES=(
  # toolchain
  cmake ninja-build g++ pkg-config git
  # clang: the thread-safety check (tests/CMakeLists.txt), clang-format, clang-tidy
  clang clang-format clang-tidy
  # C++ libraries
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libabsl-dev libyaml-cpp-dev libsqlite3-dev prometheus-cpp-dev libcivetweb-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # Python side: tests against PyTorch, the Python client
  python3 python3-torch python3-pytest python3-protobuf python3-grpcio
  python3-sklearn
  # pip install ./python in a venv (tests/python/test_packaging.py)
  python3-pip python3-venv python3-setuptools python3-wheel
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"

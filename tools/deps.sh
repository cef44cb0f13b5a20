#!/usr/bin/env bash
# Install loupe's Debian build and test dependencies (needs root or sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  build-essential pkg-config meson ninja-build \
  libopenblas-dev libcjson-dev libpcre2-dev liblua5.4-dev libncurses-dev \
  clang llvm tmux python3

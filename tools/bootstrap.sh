#!/usr/bin/env bash
# Fresh machine → built loupe, opened on the bundled model.
#   tools/bootstrap.sh [ARGS for loupe]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
[ -d build ] || meson setup build --buildtype=release
ninja -C build
exec build/loupe "$@"

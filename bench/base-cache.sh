#!/usr/bin/env bash
# bench/base-cache.sh BIN [BASE.tar] — two bakes of the embedded example on
# a plain-tar Debian base (default: make test's bookworm-puppet.tar, 257
# MiB): the first compresses the base, the second takes it from the cache
# (issue 32's figure: the second at most 0.25x the first).
set -euo pipefail
BIN=$(realpath "${1:?usage: base-cache.sh BIN [BASE.tar]}")
cd "$(dirname "$0")/.."
BASE=$(realpath "${2:-.cache/debian/bookworm-puppet.tar}")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
. bench/example.lib
example_setup "$W" amd64
example_base "$W" "$BASE" "plain tar base"; git -C "$CTL" tag v1.1.0; echo "# 1.2.0" >>"$CTL/manifests/site.pp"; git -C "$CTL" commit -qam x; git -C "$CTL" tag v1.2.0
a=$(t "$BIN" --quiet bake --repo "$CTL" --release 1.1.0 --arch amd64 --context "$W" --out "$W/d1" --no-release-check)
b=$(t "$BIN" --quiet bake --repo "$CTL" --release 1.2.0 --arch amd64 --context "$W" --out "$W/d2" --no-release-check)
layer=$(ls -S "$W/d1/example-1.1.0/blobs/sha256" | sed -n 1p)
echo "base-cache: base $(($(stat -c %s "$W/base/base.tar")/1048576)) MiB plain tar -> $(($(stat -c %s "$W/d1/example-1.1.0/blobs/sha256/$layer")/1048576)) MiB gzip layer"
echo "base-cache: first bake $a s (compresses the base), second bake $b s (cached): $(python3 -c "print(round($b/$a,2))")x"

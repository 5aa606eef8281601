#!/usr/bin/env bash
# bench/rootfs-vs-pigz.sh BIN [BASE.tar] — a rootfs bake of the embedded
# example on a Debian base (default: make test's bookworm-puppet.tar)
# against compressing the tarball it writes with `pigz -n` and `gzip -n`
# (issue 32's figure: the bake at most 1.0x pigz, at most 0.5x gzip).
set -euo pipefail
BIN=$(realpath "${1:?usage: rootfs-vs-pigz.sh BIN [BASE.tar]}")
cd "$(dirname "$0")/.."
BASE=$(realpath "${2:-.cache/debian/bookworm-puppet.tar}")
command -v pigz >/dev/null || { echo "pigz not installed: apt-get install -y pigz" >&2; exit 2; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
. bench/example.lib
example_setup "$W" amd64
example_base "$W" "$BASE" "debian base"; git -C "$CTL" tag v1.1.0
# a first bake warms the git cache; the second is timed
"$BIN" --quiet bake --repo "$CTL" --release 1.1.0 --arch amd64 --builder rootfs --context "$W" --out "$W/warm" --no-release-check >/dev/null
b=$(t "$BIN" --quiet bake --repo "$CTL" --release 1.1.0 --arch amd64 --builder rootfs --context "$W" --out "$W/dist" --no-release-check)
gz=$(ls "$W"/dist/example-1.1.0/*.rootfs.tar.gz)
gunzip -c "$gz" >"$W/rootfs.tar"
p=$(t sh -c "pigz -n -c '$W/rootfs.tar' >/dev/null")
g=$(t sh -c "gzip -n -c '$W/rootfs.tar' >/dev/null")
echo "rootfs-vs-pigz: $(($(stat -c %s "$W/rootfs.tar")/1048576)) MiB tarball: rootfs bake $b s, pigz -n $p s ($(python3 -c "print(round($b/$p,2))")x), gzip -n $g s ($(python3 -c "print(round($b/$g,2))")x)"
# the first bake on a new base, as a fresh CI runner bakes: an empty cache
# (moved aside, not deleted: ext4 makes creates right after a large delete
# slow), against pigz -n of the bake's own output, both writing to disk
mkdir -p "$W/aside"; mv "$IMAGEBAKE_CACHE" "$W/aside/cache"
mkdir -p "$IMAGEBAKE_CACHE/git"; cp -a "$W/aside/cache/git/." "$IMAGEBAKE_CACHE/git/" # the modules' mirrors only: the base is new
f=$(t /usr/bin/time -o "$W/first.rss" -f %M "$BIN" --quiet bake --repo "$CTL" --release 1.1.0 --arch amd64 --builder rootfs --context "$W" --out "$W/first" --no-release-check)
pd=$(t sh -c "pigz -n -c '$W/rootfs.tar' >'$W/pigz.out'")
echo "rootfs-vs-pigz: first bake on the new base (empty cache but the git mirrors) $f s, pigz -n to disk $pd s ($(python3 -c "print(round($f/$pd,2))")x; figure: at most 1.0x); peak RSS of the bake $(($(cat "$W/first.rss")/1024)) MiB (figure: under 300 MiB)"

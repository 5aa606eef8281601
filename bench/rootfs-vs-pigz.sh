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
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@x.invalid GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@x.invalid
CTL=$(testdata/example/gen.sh "$W")
export IMAGEBAKE_CACHE=$W/cache
mkdir -p "$W/agent-amd64/bin"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -buildvcs=false -ldflags "-s -w -buildid= -X main.version=2.4.1" -o "$W/agent-amd64/bin/mozagent" ./testdata/example/agent
"$BIN" agents publish --from "$W/agent-amd64" --store "$W/store" --name mozagent --version 2.4.1 --arch amd64 --source-date-epoch 1735689600 >/dev/null
cp "$BASE" "$W/base/base.tar"
sed -i "s#^rootfs = .*#rootfs = \"base/base.tar\"#; s/^sha256 = .*/sha256 = \"$(sha256sum "$W/base/base.tar" | cut -d' ' -f1)\"/" "$CTL/imagebake.toml"
git -C "$CTL" commit -qam "debian base"; git -C "$CTL" tag v1.1.0
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); python3 -c "print(round($e-$s,2))"; }
# a first bake warms the git cache; the second is timed
"$BIN" --quiet bake --repo "$CTL" --release 1.1.0 --arch amd64 --builder rootfs --context "$W" --out "$W/warm" --no-release-check >/dev/null
b=$(t "$BIN" --quiet bake --repo "$CTL" --release 1.1.0 --arch amd64 --builder rootfs --context "$W" --out "$W/dist" --no-release-check)
gz=$(ls "$W"/dist/example-1.1.0/*.rootfs.tar.gz)
gunzip -c "$gz" >"$W/rootfs.tar"
p=$(t sh -c "pigz -n -c '$W/rootfs.tar' >/dev/null")
g=$(t sh -c "gzip -n -c '$W/rootfs.tar' >/dev/null")
echo "rootfs-vs-pigz: $(($(stat -c %s "$W/rootfs.tar")/1048576)) MiB tarball: rootfs bake $b s, pigz -n $p s ($(python3 -c "print(round($b/$p,2))")x), gzip -n $g s ($(python3 -c "print(round($b/$g,2))")x)"

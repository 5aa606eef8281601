#!/usr/bin/env bash
# bench/store-50.sh BIN [BASE.tar] — 50 releases of the embedded example on
# one plain-tar Debian base (default: make test's bookworm-puppet.tar, 257
# MiB) published into a directory store: the store's size against the
# base's layer, the time of the 50th publish, of catalog list, of a revoke
# and of catalog page (which publish and revoke also run).
set -euo pipefail
BIN=$(realpath "${1:?usage: store-50.sh BIN [BASE.tar]}")
cd "$(dirname "$0")/.."
BASE=$(realpath "${2:-.cache/debian/bookworm-puppet.tar}")
N=${N:-50}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
. bench/example.lib
example_setup "$W" amd64
example_base "$W" "$BASE" "plain tar base"
"$BIN" key generate --dir "$W" --name k --unencrypted >/dev/null 2>&1
export IMAGEBAKE_KEY=$W/k.key IMAGEBAKE_TRUSTED_KEYS=$W/k.pub
for i in $(seq 1 "$N"); do
  v=1.$i.0
  echo "# $v" >>"$CTL/manifests/site.pp"; git -C "$CTL" commit -qam "$v"; git -C "$CTL" tag "v$v"
  "$BIN" --quiet bake --repo "$CTL" --release "$v" --arch amd64 --context "$W" --out "$W/dist" --no-release-check >/dev/null
  last=$(t "$BIN" --quiet publish --no-release-check "$W/dist/example-$v" --store "$W/releases")
  rm -rf "$W/dist/example-$v"
done
layer=$(ls -S "$W/releases/blobs/sha256" | sed -n 1p)
lsz=$(stat -c %s "$W/releases/blobs/sha256/$layer")
ssz=$(du -sb "$W/releases" | cut -f1)
list=$(t "$BIN" catalog list --store "$W/releases")
revoke=$(t "$BIN" --quiet catalog revoke example 1.1.0 --store "$W/releases" --reason "bench" --replacement 1.2.0)
echo "store-50: $N releases on one $(($(stat -c %s "$W/base/base.tar")/1048576)) MiB plain-tar base ($((lsz/1048576)) MiB gzip layer): directory store $((ssz/1048576)) MiB ($(python3 -c "print(round($ssz/$lsz,2))")x the layer); publish of the last $last s; catalog list $list s; a revoke $revoke s"
if "$BIN" catalog page --help 2>/dev/null | grep -q -- --out; then
  page=$(t "$BIN" --quiet catalog page --store "$W/releases" --out "$W/page")
  echo "store-50: catalog page of $N releases $page s ($(stat -c %s "$W/page/index.html") bytes); publish and the revoke wrote it too"
fi

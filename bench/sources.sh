#!/usr/bin/env bash
# bench/sources.sh BIN — a release that proves itself with every upstream
# gone (issue 44's figures), on the embedded example (amd64 and arm64):
#   - verify of the published 1.0.0 with its upstreams there (cold cache)
#     against verify with every upstream gone (control repo, module
#     remotes, agent store, base file and cache removed): the store's
#     sources alone;
#   - what a second release that changes one file of one module (profile,
#     which tracks a branch) adds to the directory store, against the first
#     release, the changed module's source pack and the environment layer.
set -euo pipefail
BIN=$(realpath "${1:?usage: sources.sh BIN}")
cd "$(dirname "$0")/.."
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
. bench/example.lib
example_setup "$W" amd64 arm64
"$BIN" key generate --dir "$W" --name k --unencrypted >/dev/null
export IMAGEBAKE_KEY=$W/k.key IMAGEBAKE_TRUSTED_KEYS=$W/k.pub
S=$W/releases
"$BIN" --quiet bake --repo "$CTL" --release 1.0.0 --context "$W" --out "$W/dist" >/dev/null
"$BIN" --quiet publish "$W/dist/example-1.0.0" --store "$S" >/dev/null
first=$(du -sb "$S" | cut -f1)
ls "$S/blobs/sha256" | sort >"$W/pool1"
M=$S/images/example-1.0.0/manifest.toml
median3() { python3 -c "import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
up=(); gone=()
for i in 1 2 3; do
  mkdir -p "$W/aside"; [ -e "$W/c" ] && mv "$W/c" "$W/aside/c$i-up"
  up+=("$(t "$BIN" --quiet verify "$M" --context "$W" --cache "$W/c")")
done
# the second release: one file of one module changes
git clone -q -b develop "$W/remotes/profile.git" "$W/pw"
echo "# one changed line" >>"$W/pw/manifests/init.pp"; git -C "$W/pw" commit -qam "one file"; git -C "$W/pw" push -q origin develop
echo "# 1.0.1" >/dev/null; git -C "$CTL" tag v1.0.1
"$BIN" --quiet bake --repo "$CTL" --release 1.0.1 --context "$W" --out "$W/dist" --no-release-check >/dev/null
"$BIN" --quiet publish --no-release-check "$W/dist/example-1.0.1" --store "$S" >/dev/null
second=$(du -sb "$S" | cut -f1)
ls "$S/blobs/sha256" | sort >"$W/pool2"
newblobs=0; for b in $(comm -13 "$W/pool1" "$W/pool2"); do newblobs=$((newblobs + $(stat -c %s "$S/blobs/sha256/$b"))); done
meta=0; for f in $(find "$S/images/example-1.0.1" -type f ! -path "*/blobs/*"); do meta=$((meta + $(stat -c %s "$f"))); done
pack=$(python3 - "$W/dist/example-1.0.1/sources.toml" <<'PY'
import sys, tomllib
s = tomllib.load(open(sys.argv[1], "rb"))
print(sum(x["size"] for x in s["source"] if x["name"] == "profile"))
PY
)
env=$(python3 - "$W/dist/example-1.0.1/manifest.toml" <<'PY'
import sys, tomllib
m = tomllib.load(open(sys.argv[1], "rb"))
print(max(l["size"] for im in m["image"] for l in im["layer"] if l["role"] == "environment"))
PY
)
# every upstream goes
mv "$CTL" "$W/remotes" "$W/store" "$W/base" "$W/src" "$W/aside/"
for i in 1 2 3; do
  [ -e "$W/c" ] && mv "$W/c" "$W/aside/c$i-gone"
  gone+=("$(t "$BIN" --quiet verify "$M" --context "$W" --cache "$W/c")")
done
u=$(median3 "${up[@]}"); g=$(median3 "${gone[@]}")
echo "sources: verify of 1.0.0 (2 arches): upstreams there $u s, every upstream gone $g s ($(python3 -c "print(round($g/$u,2))")x; figure: at most 1.0x)"
echo "sources: first release $((first/1024)) KiB in the store; the second (one file of one module) added $(((second-first)/1024)) KiB = $(python3 -c "print(round(($second-$first)/$first*100,1))")% of the first (figure: at most 25%)"
echo "sources: of that, new pool blobs $newblobs B (layers, image manifests and configs, sources) against the changed module's pack $pack B + the environment layer $env B: $(python3 -c "print(round($newblobs/($pack+$env),2))")x (figure: at most 1.05x); the release's own files (manifest, SBOM, provenance, sources.toml, index) $meta B; directories the rest"

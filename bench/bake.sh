#!/usr/bin/env bash
# bake.sh BIN [N_MODULES] [AGENT_MiB] — time `imagebake bake` of a release
# with N modules (../shared/bench/gen-modules.sh), 3 arches and AGENT_MiB of
# agent binaries per arch, against `tar --sort=name -c PAYLOAD | gzip -n`
# over the same payload, in one run. Prints wall times, peak RSS, ratios.
set -euo pipefail
BIN=$(readlink -f "${1:?usage: bake.sh BIN [N] [MiB]}")
N=${2:-200}; MIB=${3:-50}
SHARED=$(cd "$(dirname "$0")/../../shared/bench" && pwd)
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
. "$(dirname "$0")/release.sh"
gen_release "$W" "$N" "$MIB"
C=$W/src/control
t() { /usr/bin/time -f "%e %M" -o "$W/t" "$@" >"$W/log" 2>&1 || { cat "$W/log" >&2; exit 1; }; cat "$W/t"; }
read cold_s cold_k < <(t "$BIN" bake --repo "$C" --release 1.0.0 --out "$W/dist" --cache "$W/cache" --context "$W" -q)
read noop_s noop_k < <(t "$BIN" bake --repo "$C" --release 1.0.0 --out "$W/dist" --cache "$W/cache" --context "$W" -q)
rm -rf "$W/dist"
read warm_s warm_k < <(t "$BIN" bake --repo "$C" --release 1.0.0 --out "$W/dist" --cache "$W/cache" --context "$W" -q)
# the same payload as a plain tree: environment with modules, agents per arch
P=$W/payload; E=$P/etc/puppetlabs/code/environments/production
mkdir -p "$E" && git -C "$C" archive v1.0.0 | tar -x -C "$E"
"$BIN" puppetfile install --puppetfile "$E/Puppetfile" --moduledir "$E/modules" --cache "$W/cache" -q
for a in amd64 arm64 riscv64; do
  mkdir -p "$P/$a/opt/benchagent/tools/1.0.0-$a" && tar -xzf "$W/store/tools/benchagent-1.0.0-$a.tar.gz" -C "$P/$a/opt/benchagent/tools/1.0.0-$a"
done
read tg_s tg_k < <(t sh -c "tar --sort=name -C '$P' -c . | gzip -n >'$W/payload.tar.gz'")
echo "payload: $(du -sm "$P" | cut -f1) MiB, $N modules, 3 arches x $MIB MiB agent binaries"
awk -v c="$cold_s" -v ck="$cold_k" -v w="$warm_s" -v wk="$warm_k" -v n="$noop_s" -v tg="$tg_s" 'BEGIN{
  printf "bake cold cache    %.2fs %d KiB | tar|gzip -n %.2fs | ratio %.2f\n", c, ck, tg, c/tg
  printf "bake warm cache    %.2fs %d KiB | tar|gzip -n %.2fs | ratio %.2f\n", w, wk, tg, w/tg
  printf "bake unchanged     %.2fs\n", n }'

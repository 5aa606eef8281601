#!/usr/bin/env bash
# push.sh BIN [N_MODULES] [AGENT_MiB] [RUNS] — time `imagebake push` of a
# 3-arch release (N modules, AGENT_MiB of agent binaries per arch) to the
# Debian docker-registry on loopback against `skopeo copy --all
# --preserve-digests` of the same OCI layout, each into a fresh repository,
# in one run; then a second push of the same release. Prints medians and
# the ratio. Each run pushes into a fresh registry: nothing is there yet,
# for either tool.
set -euo pipefail
BIN=$(readlink -f "${1:?usage: push.sh BIN [N] [MiB] [RUNS]}")
N=${2:-50}; MIB=${3:-20}; RUNS=${4:-7}
SHARED=$(cd "$(dirname "$0")/../../shared/bench" && pwd)
for c in skopeo docker-registry; do command -v $c >/dev/null || { echo "$c not installed" >&2; exit 2; }; done
REG=""; W=$(mktemp -d); trap '[ -n "$REG" ] && kill $REG 2>/dev/null; rm -rf "$W"' EXIT
. "$(dirname "$0")/release.sh"
gen_release "$W" "$N" "$MIB"
C=$W/src/control
"$BIN" bake --repo "$C" --release 1.0.0 --out "$W/dist" --cache "$W/cache" --context "$W" -q >/dev/null
R=$W/dist/bench-1.0.0
"$BIN" key generate --dir "$W" --name k --unencrypted >/dev/null
# a fresh registry (new storage, new port) for every run: skopeo remembers
# where it pushed blobs (its blob info cache) and mounts them from another
# repository of the same registry instead of uploading them, which would
# time a copy that sends nothing
start_registry() {
  [ -n "$REG" ] && kill $REG 2>/dev/null && wait $REG 2>/dev/null || true
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$W/registry"
  cat >"$W/reg.yml" <<Y
version: 0.1
storage: { filesystem: { rootdirectory: $W/registry } }
http: { addr: 127.0.0.1:$PORT }
log: { level: error, accesslog: { disabled: true } }
Y
  docker-registry serve "$W/reg.yml" >"$W/reg.log" 2>&1 & REG=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
}
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
: >"$W/ib"; : >"$W/sk"
for r in $(seq 1 "$RUNS"); do
  start_registry
  s=$(now); "$BIN" push "$R" "127.0.0.1:$PORT/ib/bench" --key "$W/k.key" -q >/dev/null; e=$(now); echo "$e - $s" | bc >>"$W/ib"
  s=$(now); skopeo --insecure-policy copy -q --all --preserve-digests --dest-tls-verify=false "oci:$R:bench-1.0.0" "docker://127.0.0.1:$PORT/sk/bench:1.0.0" >/dev/null; e=$(now); echo "$e - $s" | bc >>"$W/sk"
done
: >"$W/again"
for r in $(seq 1 "$RUNS"); do
  s=$(now); "$BIN" push "$R" "127.0.0.1:$PORT/ib/bench" --key "$W/k.key" -q >/dev/null; e=$(now); echo "$e - $s" | bc >>"$W/again"
done
ib=$(median <"$W/ib"); sk=$(median <"$W/sk"); ag=$(median <"$W/again")
echo "release: 3 arches, $N modules, $MIB MiB agent binaries per arch, $(du -sm "$R" | cut -f1) MiB; $RUNS runs each, medians"
awk -v a="$ib" -v b="$sk" -v g="$ag" 'BEGIN{
  printf "push (empty registry)    imagebake %.3fs | skopeo copy --all %.3fs | ratio %.2f\n", a, b, a/b
  printf "push again (no-op)       imagebake %.3fs\n", g }'

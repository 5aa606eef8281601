#!/usr/bin/env bash
# agents-sync.sh BIN [MiB] [RUNS] — `imagebake agents sync` against plain
# `curl` of the same files from the same loopback server, in one run.
# Default: 1024 MiB in 8 files. Prints medians and the ratio of throughputs.
set -euo pipefail
BIN=$(readlink -f "${1:?usage: agents-sync.sh BIN [MiB] [RUNS]}")
MIB=${2:-1024}; RUNS=${3:-3}
command -v curl >/dev/null || { echo "curl not installed" >&2; exit 2; }
SRV=""; W=$(mktemp -d); trap '[ -n "$SRV" ] && kill $SRV 2>/dev/null; rm -rf "$W"' EXIT
mkdir -p "$W/pub/tools"
per=$((MIB / 8))
for i in $(seq 1 8); do head -c "${per}M" /dev/urandom >"$W/pub/tools/benchagent-1.0.$i-amd64.tar.gz"; done
"$BIN" agents index "$W/pub" -q
(cd "$(dirname "$0")/.." && go build -o "$W/serve" ./bench/serve)
"$W/serve" -dir "$W/pub" -for 30m >"$W/url" & SRV=$!
for _ in $(seq 50); do [ -s "$W/url" ] && break; sleep 0.1; done
URL=$(cat "$W/url")
files=$(cd "$W/pub/tools" && ls *.tar.gz)
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
: >"$W/ib"; : >"$W/curl"
for r in $(seq 1 "$RUNS"); do
  rm -rf "$W/mirror" "$W/curl-out"; mkdir -p "$W/curl-out"
  s=$(date +%s.%N); "$BIN" agents sync --from "$URL" --to "$W/mirror" -q; e=$(date +%s.%N)
  echo "$e - $s" | bc >>"$W/ib"
  s=$(date +%s.%N); for f in $files; do curl -sf -o "$W/curl-out/$f" "$URL/tools/$f"; done; e=$(date +%s.%N)
  echo "$e - $s" | bc >>"$W/curl"
done
ib=$(median <"$W/ib"); cu=$(median <"$W/curl")
awk -v a="$ib" -v b="$cu" -v m="$MIB" 'BEGIN{printf "sync %d MiB: imagebake %.2fs (%.0f MiB/s) | curl %.2fs (%.0f MiB/s) | imagebake throughput = %.0f%% of curl\n", m, a, m/a, b, m/b, 100*b/a}'

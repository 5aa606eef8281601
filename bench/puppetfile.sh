#!/usr/bin/env bash
# puppetfile.sh BIN [RUNS] — imagebake vs g10k (and r10k when installed) side by side, in one run, over
# git:// and smart HTTP with long module histories, at 10 and 150 modules, with the shared script
# (../shared/bench/puppetfile-network.sh). Prints its lines.
set -euo pipefail
BIN=$(readlink -f "${1:?usage: puppetfile.sh BIN [RUNS]}")
RUNS=${2:-3}
SHARED=$(cd "$(dirname "$0")/../../shared/bench" 2>/dev/null && pwd) || { echo "../shared/bench not found beside the repository" >&2; exit 2; }
for n in 10 150; do
  for proto in git http; do
    echo "## $n modules over $proto"
    "$SHARED/puppetfile-network.sh" "$BIN" "$proto" "$n" 2000 "$([ "$n" -gt 10 ] && echo 1 || echo "$RUNS")"
  done
done

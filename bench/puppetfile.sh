#!/usr/bin/env bash
# puppetfile.sh BIN [RUNS] — imagebake vs g10k side by side, in one run, at
# 30 and 200 modules, with the shared script (../shared/bench). Prints its lines.
set -euo pipefail
BIN=$(readlink -f "${1:?usage: puppetfile.sh BIN [RUNS]}")
RUNS=${2:-5}
SHARED=$(cd "$(dirname "$0")/../../shared/bench" 2>/dev/null && pwd) || { echo "../shared/bench not found beside the repository" >&2; exit 2; }
for n in 30 200; do
  echo "## $n modules"
  "$SHARED/puppetfile-vs-g10k.sh" "$BIN" "$n" "$RUNS"
done

#!/usr/bin/env bash
# puppetfile.sh BIN [RUNS] — imagebake vs g10k (and r10k when installed) side by side, in one run, over
# git:// and smart HTTP, with the shared script (../shared/bench/puppetfile-network.sh). Prints its lines.
# 10 modules with long histories (2000 commits each), then the growth from 10 to 150 modules at 500
# commits each (generating 150 histories of 2000 commits takes over an hour; under 500 commits the
# generator repacks aggressively, which is slower still).
set -euo pipefail
BIN=$(readlink -f "${1:?usage: puppetfile.sh BIN [RUNS]}")
RUNS=${2:-3}
SHARED=$(cd "$(dirname "$0")/../../shared/bench" 2>/dev/null && pwd) || { echo "../shared/bench not found beside the repository" >&2; exit 2; }
for proto in git http; do
  echo "## 10 modules x 2000 commits over $proto"
  "$SHARED/puppetfile-network.sh" "$BIN" "$proto" 10 2000 "$RUNS"
done
for n in 10 150; do
  echo "## $n modules x 500 commits over git"
  "$SHARED/puppetfile-network.sh" "$BIN" git "$n" 500 1
done

#!/usr/bin/env bash
# bench/osv-audit.sh BIN — catalog audit --osv of 100,000 OSV records (an
# osv.dev-style all.zip) against 50 published releases of 500 packages each
# (the figure issue 31 sets: under 5 s and 300 MiB). Prints wall time and
# peak RSS (GNU time). DEBIAN12=100 makes every record one for the bases'
# Debian 12 (none passed over): the worst case.
set -euo pipefail
BIN=$(realpath "${1:?usage: osv-audit.sh BIN}")
RELEASES=${RELEASES:-50} PACKAGES=${PACKAGES:-500} RECORDS=${RECORDS:-100000} DEBIAN12=${DEBIAN12:-30}
cd "$(dirname "$0")/.."
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
go run ./internal/tools/genosv "$w" "$RELEASES" "$PACKAGES" "$RECORDS" "$DEBIAN12"
export IMAGEBAKE_CACHE=$w/cache IMAGEBAKE_KEY_PASSWORD=
"$BIN" key generate --dir "$w" --name k --unencrypted >/dev/null
export IMAGEBAKE_KEY=$w/k.key IMAGEBAKE_TRUSTED_KEYS=$w/k.pub
for d in "$w"/releases/*; do
  "$BIN" --quiet publish --no-release-check --store "$w/store" "$d" >/dev/null
done
echo "osv-audit: $RECORDS OSV records ($(du -h "$w/all.zip" | cut -f1) zip) against $RELEASES releases of $PACKAGES packages"
rc=0
/usr/bin/time -f "osv-audit: %e s wall, %M KiB peak RSS" "$BIN" catalog audit --store "$w/store" --osv "$w/all.zip" >"$w/out.txt" 2>"$w/err.txt" || rc=$?
tail -1 "$w/err.txt"
grep -m1 "read " "$w/err.txt" || true
echo "osv-audit: exit $rc, $(grep -c '^  ' "$w/out.txt") findings (one per release and advisory) in $(grep -c '^[^ ]' "$w/out.txt") release lines"

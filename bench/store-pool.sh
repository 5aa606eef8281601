#!/usr/bin/env bash
# bench/store-pool.sh BIN — three releases on one 40 MiB incompressible base
# (the embedded example with its base replaced), published into a
# directory store and an S3 store (versitygw, POSIX backend): the size each
# store holds against the base, and what the third publish added.
# (issue 32's figure: each under 1.5x the base; the third publish under 4 MiB)
set -euo pipefail
BIN=$(realpath "${1:?usage: store-pool.sh BIN}")
cd "$(dirname "$0")/.."
VERSITYGW=${IMAGEBAKE_VERSITYGW:-$PWD/.cache/versitygw/versitygw}
W=$(mktemp -d)
trap 'kill $gw 2>/dev/null || true; rm -rf "$W"' EXIT
. bench/example.lib
example_setup "$W" amd64 arm64
export IMAGEBAKE_KEY_PASSWORD=
# the base: 40 MiB of random bytes in one file, gzip-wrapped (incompressible)
mkdir -p "$W/b/opt" && head -c 40M /dev/urandom >"$W/b/opt/blob"
tar -C "$W/b" --sort=name --mtime=@0 --owner=0 --group=0 -cf - . | gzip -n -1 >"$W/base/rootfs.tar.gz"
sum=$(sha256sum "$W/base/rootfs.tar.gz" | cut -d' ' -f1)
sed -i "s/^sha256 = .*/sha256 = \"$sum\"/" "$CTL/imagebake.toml"
git -C "$CTL" commit -qam "40 MiB base"; git -C "$CTL" tag -f v1.0.0 >/dev/null
for v in 1.1.0 1.2.0; do echo "# $v" >>"$CTL/manifests/site.pp"; git -C "$CTL" commit -qam "$v"; git -C "$CTL" tag "v$v"; done
"$BIN" key generate --dir "$W" --name k --unencrypted >/dev/null
export IMAGEBAKE_KEY=$W/k.key IMAGEBAKE_TRUSTED_KEYS=$W/k.pub
port=$((20000 + RANDOM % 20000)); mkdir -p "$W/s3/golden"
ROOT_ACCESS_KEY=k ROOT_SECRET_KEY=secret-key "$VERSITYGW" --port 127.0.0.1:$port posix "$W/s3" >/dev/null 2>&1 & gw=$!
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=k AWS_SECRET_ACCESS_KEY=secret-key AWS_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
sleep 1
base=$(stat -c %s "$W/base/rootfs.tar.gz")
for v in 1.0.0 1.1.0 1.2.0; do
  "$BIN" --quiet bake --repo "$CTL" --release $v --context "$W" --out "$W/dist" --no-release-check >/dev/null
  d0=$(du -sb "$W/dirstore" 2>/dev/null | cut -f1 || echo 0); s0=$(du -sb "$W/s3/golden" | cut -f1)
  "$BIN" --quiet publish --no-release-check "$W/dist/example-$v" --store "$W/dirstore" >/dev/null
  "$BIN" --quiet publish --no-release-check "$W/dist/example-$v" --store s3://golden/releases >/dev/null
  d1=$(du -sb "$W/dirstore" | cut -f1); s1=$(du -sb "$W/s3/golden" | cut -f1)
  echo "store-pool: publish $v added $(( (d1-${d0:-0}) / 1024 )) KiB to the directory store, $(( (s1-s0) / 1024 )) KiB to the S3 store"
done
echo "store-pool: base $((base/1024)) KiB; directory store $(( d1/1024 )) KiB ($(python3 -c "print(round($d1/$base,2))")x the base); S3 store $(( s1/1024 )) KiB ($(python3 -c "print(round($s1/$base,2))")x)"

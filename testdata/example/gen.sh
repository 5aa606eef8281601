#!/usr/bin/env bash
# gen.sh ROOT — generate the embedded example under ROOT: three module
# repositories (tags, a branch, an annotated tag), a small base root file
# system (base/rootfs.tar.gz), and a control repo tagged v1.0.0 whose
# Puppetfile pins the modules and whose imagebake.toml pins the base. Commit
# dates are fixed, so the SHAs are the same on every run in the same ROOT.
# Prints the control repo's path.
set -euo pipefail
umask 022 # the base's modes (and so its digest) do not follow the caller's umask
ROOT=$(mkdir -p "${1:?usage: gen.sh ROOT}" && cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$ROOT/remotes" "$ROOT/control" "$ROOT/src" "$ROOT/base"
mkdir -p "$ROOT/remotes" "$ROOT/src" "$ROOT/base/rootfs/etc" "$ROOT/base/rootfs/bin" "$ROOT/base/rootfs/tmp"
printf 'ID=example\nNAME="imagebake example base"\nVERSION_ID=1\n' >"$ROOT/base/rootfs/etc/os-release"
chmod 1777 "$ROOT/base/rootfs/tmp"
tar --sort=name --mtime=2025-01-01T00:00:00Z --owner=0 --group=0 --numeric-owner --format=pax \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$ROOT/base/rootfs" -cf - . | gzip -n >"$ROOT/base/rootfs.tar.gz"
BASE_SHA256=$(sha256sum "$ROOT/base/rootfs.tar.gz" | cut -d' ' -f1)
export GIT_AUTHOR_NAME=imagebake GIT_AUTHOR_EMAIL=example@imagebake.invalid
export GIT_COMMITTER_NAME=imagebake GIT_COMMITTER_EMAIL=example@imagebake.invalid
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
at() { GIT_AUTHOR_DATE="2025-0$1-01T12:00:00Z" GIT_COMMITTER_DATE="2025-0$1-01T12:00:00Z" "${@:2}"; }

module() { # module NAME: two releases and a develop branch
  local m=$1 w=$ROOT/src/$1
  git init -q -b main "$w"
  mkdir -p "$w/manifests" "$w/files"
  printf 'class %s { }\n' "$m" >"$w/manifests/init.pp"
  printf '{"name": "example-%s", "version": "1.0.0", "author": "example", "summary": "the %s module of the example", "license": "Apache-2.0", "source": "https://example.invalid/%s", "dependencies": []}\n' "$m" "$m" "$m" >"$w/metadata.json"
  git -C "$w" add -A; at 1 git -C "$w" commit -q -m "$m 1.0.0"; at 1 git -C "$w" tag -a v1.0.0 -m v1.0.0
  printf '#!/bin/sh\necho %s\n' "$m" >"$w/files/run.sh"; chmod +x "$w/files/run.sh"
  printf '{"name": "example-%s", "version": "1.1.0", "author": "example", "summary": "the %s module of the example", "license": "Apache-2.0", "source": "https://example.invalid/%s", "dependencies": []}\n' "$m" "$m" "$m" >"$w/metadata.json"
  git -C "$w" add -A; at 2 git -C "$w" commit -q -m "$m 1.1.0"; git -C "$w" tag v1.1.0
  git -C "$w" checkout -q -b develop
  printf 'class %s::extra { }\n' "$m" >"$w/manifests/extra.pp"
  git -C "$w" add -A; at 3 git -C "$w" commit -q -m "$m develop"
  git -C "$w" checkout -q main
  git clone -q --bare "$w" "$ROOT/remotes/$m.git"
}
for m in ntp motd profile; do module "$m"; done

C=$ROOT/control
git init -q -b production "$C"
cp -R "$HERE/control/." "$C/"
sed "s#@REMOTES@#file://$ROOT/remotes#g" "$HERE/control/Puppetfile.in" >"$C/Puppetfile"
sed "s#@BASE_SHA256@#$BASE_SHA256#" "$HERE/control/imagebake.toml.in" >"$C/imagebake.toml"
rm "$C/Puppetfile.in" "$C/imagebake.toml.in"
git -C "$C" add -A; at 4 git -C "$C" commit -q -m "release 1.0.0"; at 4 git -C "$C" tag -a v1.0.0 -m "release 1.0.0"
echo "$C"

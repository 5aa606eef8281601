# release.sh — sourced by the benchmarks: gen_release W N MiB makes, in W,
# a control repo (W/src/control, tagged v1.0.0) of N modules
# (../shared/bench/gen-modules.sh) for a 3-arch release on a scratch base,
# and publishes MiB of agent binaries per arch into W/store. Needs BIN and
# SHARED.
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@x.invalid GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@x.invalid
# elf ARCH: a 64-bit little-endian ELF executable header for ARCH (the
# agent store checks a binary is for its arch); random bytes follow it
elf() { python3 -c 'import struct,sys; m={"amd64":62,"arm64":183,"riscv64":243}[sys.argv[1]]
sys.stdout.buffer.write(b"\x7fELF\x02\x01\x01"+bytes(9)+struct.pack("<HHIQQQIHHHHHH",2,m,1,0,0,0,0,64,56,0,64,0,0))' "$1"; }
gen_release() {
  local w=$1 n=$2 mib=$3 c=$1/src/control a
  "$SHARED/gen-modules.sh" "$w/src" "$n" >/dev/null
  cat >"$c/imagebake.toml" <<T
family = "bench"
arches = ["amd64", "arm64", "riscv64"]
[base]
scratch = true
[agents]
name = "benchagent"
major = "1"
stores = ["store"]
T
  git -C "$c" add -A && git -C "$c" commit -qm bench && git -C "$c" tag v1.0.0
  for a in amd64 arm64 riscv64; do
    mkdir -p "$w/agent-$a/bin"; elf "$a" >"$w/agent-$a/bin/benchagent"; head -c "${mib}M" /dev/urandom >>"$w/agent-$a/bin/benchagent"
    "$BIN" agents publish --from "$w/agent-$a" --store "$w/store" --name benchagent --version 1.0.0 --arch "$a" -q >/dev/null
  done
}

#!/usr/bin/env bash
# bench/catalog-gate.sh BIN [BASE.tar] — the compile gate and the catalog
# diff on six real public modules (puppetlabs stdlib, concat, inifile, apt;
# voxpupuli systemd, nginx), served over git:// from mirrors of their GitHub
# repositories ($MODULE_MIRROR/OWNER+NAME/repo, default /work/.mirror),
# on the Debian puppet 7.23 base (default: make test's bookworm-puppet.tar).
# Issue 43's figures, each side by side in one run:
#   - the warm gate's cost (bake --compile minus bake) against a plain
#     `puppet apply --noop` of the same tree in a chroot of the same image;
#   - the cold gate (compile cache empty), and the base's unpack;
#   - release plan --compile (bakes the candidate, compiles it, diffs it
#     against 3.0.0's stored catalog) against octocatalog-diff 2.1 compiling
#     and diffing the same two trees with the same facts (needs puppet on
#     the host: apt-get install puppet octocatalog-diff);
#   - the compile cache after 10 bases under a 1GiB cap.
# Prints both diffs, for the note.
set -euo pipefail
BIN=$(realpath "${1:?usage: catalog-gate.sh BIN [BASE.tar]}")
cd "$(dirname "$0")/.."
BASE=$(realpath "${2:-.cache/debian/bookworm-puppet.tar}")
MIRROR=${MODULE_MIRROR:-/work/.mirror}
for t in octocatalog-diff puppet; do command -v $t >/dev/null || { echo "$t not installed: apt-get install -y puppet octocatalog-diff" >&2; exit 2; }; done
W=$(mktemp -d)
trap 'kill $srv 2>/dev/null; rm -rf "$W"' EXIT
# SETUP_ONLY=1: set the control repo up, print its directory, keep serving
# the modules until interrupted (to time by hand)
. bench/example.lib
example_setup "$W" amd64
example_base "$W" "$BASE" "debian puppet base"
sed -i 's/^arches = .*/arches = ["amd64"]/; s#^environment = .*#environment = "/etc/puppet/code/environments/production"#' "$CTL/imagebake.toml"
mkdir -p "$W/git"
for m in puppetlabs/puppetlabs-stdlib puppetlabs/puppetlabs-concat puppetlabs/puppetlabs-inifile puppetlabs/puppetlabs-apt voxpupuli/puppet-systemd voxpupuli/puppet-nginx; do
  d=$MIRROR/${m/\//+}/repo
  [ -d "$d" ] || { echo "no mirror of $m at $d (fetch it)" >&2; exit 2; }
  ln -s "$d" "$W/git/${m#*/}.git"
done
port=$((30000 + RANDOM % 20000))
git daemon --export-all --base-path="$W/git" --reuseaddr --listen=127.0.0.1 --port=$port "$W/git" >/dev/null 2>&1 & srv=$!
sleep 1
U=git://127.0.0.1:$port
release() { # VERSION STDLIB CONCAT INIFILE APT SYSTEMD NGINX LEVEL EXTRA
  cat >"$CTL/Puppetfile" <<PF
moduledir 'modules'
mod 'stdlib', git: '$U/puppetlabs-stdlib.git', tag: '$2'
mod 'concat', git: '$U/puppetlabs-concat.git', tag: '$3'
mod 'inifile', git: '$U/puppetlabs-inifile.git', tag: '$4'
mod 'apt', git: '$U/puppetlabs-apt.git', tag: '$5'
mod 'systemd', git: '$U/puppet-systemd.git', tag: '$6'
mod 'nginx', git: '$U/puppet-nginx.git', tag: '$7'
PF
  cat >"$CTL/manifests/site.pp" <<PP
node default {
  class { 'apt': }
  class { 'nginx': }
  nginx::resource::server { 'www.example.com': www_root => '/var/www/html' }
  ini_setting { 'app': ensure => present, path => '/etc/app.ini', section => 'log', setting => 'level', value => '$8' }
  concat { '/etc/motd.golden': }
  concat::fragment { 'motd': target => '/etc/motd.golden', content => 'golden', order => '01' }
  systemd::unit_file { 'app.service': content => "[Service]\nExecStart=/bin/true\n" }
  $9
}
PP
  git -C "$CTL" add -A; git -C "$CTL" commit -qm "release $1"; git -C "$CTL" tag "v$1"
}
release 3.0.0 v9.4.1 v9.0.2 v6.1.1 v9.4.0 v8.2.0 v5.0.0 info ""
release 3.1.0 v9.6.0 v9.1.0 v6.2.0 v10.0.1 v8.3.1 v6.0.1 debug "file { '/etc/golden-new': ensure => file }"
if [ -n "${SETUP_ONLY:-}" ]; then echo "W=$W CTL=$CTL IMAGEBAKE_CACHE=$IMAGEBAKE_CACHE"; trap 'kill $srv 2>/dev/null' EXIT; wait $srv; fi
bake() { "$BIN" --quiet bake --repo "$CTL" --context "$W" --arch amd64 --no-release-check --force "$@"; }
bake --release 3.0.0 --out "$W/warm" >/dev/null                     # warms the git cache
tb=$(t bake --release 3.0.0 --out "$W/plain")
mkdir -p "$W/aside"; for d in "$IMAGEBAKE_CACHE/compile" /var/cache/imagebake/compile; do [ -e "$d" ] && mv "$d" "$W/aside/$RANDOM$RANDOM"; done  # moved aside, not deleted: ext4 makes creates right after a large delete slow
tc=$(t bake --release 3.0.0 --out "$W/cold" --compile)
tw1=$(t bake --release 3.0.0 --out "$W/warm1" --compile)
tw=$(t bake --release 3.0.0 --out "$W/dist" --compile)
tb2=$(t bake --release 3.0.0 --out "$W/plain2")
"$BIN" bake --repo "$CTL" --context "$W" --arch amd64 --no-release-check --force --release 3.0.0 --out "$W/warm2" --compile 2>&1 | grep "compile gate" | sed 's/^/  /' 
tb=$(python3 -c "print(min($tb,$tb2))"); tw=$(python3 -c "print(min($tw,$tw1))")
# the same image as a root file system, for the plain apply
bake --release 3.0.0 --out "$W/rootfs" --builder rootfs >/dev/null
mkdir "$W/root"; tu=$(t tar -xzf "$W"/rootfs/example-3.0.0/*.rootfs.tar.gz -C "$W/root")
ENV=/etc/puppet/code/environments/production
apply() { chroot "$W/root" /usr/bin/puppet apply --noop --color=false --environmentpath /etc/puppet/code/environments --environment production $ENV/manifests; }
apply >"$W/apply.log" 2>&1 || { echo "plain apply failed:"; tail -5 "$W/apply.log"; }
ta=$(python3 -c "import statistics,subprocess,time
ts=[]
for i in range(3):
    s=time.time(); subprocess.run(['chroot','$W/root','/usr/bin/puppet','apply','--noop','--color=false','--environmentpath','/etc/puppet/code/environments','--environment','production','$ENV/manifests'],capture_output=True); ts.append(time.time()-s)
print(round(statistics.median(ts),2))")
echo "gate: bake $tb s; bake --compile warm $tw s (gate $(python3 -c "print(round($tw-$tb,2))") s), cold $tc s (gate $(python3 -c "print(round($tc-$tb,2))") s); plain puppet apply --noop in a chroot $ta s; base unpack $tu s"
echo "gate ratios: warm gate / apply $(python3 -c "print(round(($tw-$tb)/$ta,2))")x (figure: at most 0.5x); cold gate / (1.5 x apply + unpack) $(python3 -c "print(round(($tc-$tb)/(1.5*$ta+$tu),2))") (figure: at most 1.0)"
# the diff: imagebake's plan against octocatalog-diff on the same two trees
tp=$(t "$BIN" --quiet release plan --repo "$CTL" --context "$W" --release-candidate v3.1.0 --previous "$W/dist/example-3.0.0/manifest.toml" --compile)
"$BIN" --quiet release plan --repo "$CTL" --context "$W" --release-candidate v3.1.0 --previous "$W/dist/example-3.0.0/manifest.toml" --compile >"$W/plan.txt"
bake --release 3.1.0 --out "$W/rootfs" --builder rootfs >/dev/null
mkdir -p "$W/root2"; tar -xzf "$W"/rootfs/example-3.1.0/*.rootfs.tar.gz -C "$W/root2"
facts=$( (ls "$IMAGEBAKE_CACHE"/compile/*/facts.json /var/cache/imagebake/compile/*/facts.json 2>/dev/null || true) | head -1)
python3 - "$facts" "$W/facts.yaml" <<'PY'
import json, sys
f = json.load(open(sys.argv[1])); f.update({"clientcert": "example-amd64", "hostname": "example-amd64", "fqdn": "example-amd64"})
open(sys.argv[2], "w").write("--- !ruby/object:Puppet::Node::Facts\nname: example-amd64\nvalues: " + json.dumps(f) + "\n")
PY
# octocatalog-diff 2.1 on Debian's Ruby 3.1 crashes diffing two catalogs it
# compiled itself (its compilation_dir filter calls Proc.new without a
# block, which Ruby 3 removed), so it compiles each tree on its own
# (--catalog-only) and diffs the two catalogs; its time is the sum.
odc() { octocatalog-diff --catalog-only -n example-amd64 --bootstrapped-to-dir "$1" --puppet-binary /usr/bin/puppet --fact-file "$W/facts.yaml" -o "$2"; }
odd() { octocatalog-diff --from-catalog "$W/od-old.json" --to-catalog "$W/od-new.json" --no-color "$@" || [ $? = 2 ]; }  # 2: there are differences
s0=$(date +%s.%N); odc "$W/root$ENV" "$W/od-old.json" >/dev/null 2>&1; odc "$W/root2$ENV" "$W/od-new.json" >/dev/null 2>&1; odd >"$W/od.txt" 2>&1; s1=$(date +%s.%N)
to=$(python3 -c "print(round($s1-$s0,2))")
echo "diff: imagebake release plan --compile $tp s (bakes and compiles the candidate; 3.0.0's catalog stored) | octocatalog-diff $to s (compiles both) | ratio $(python3 -c "print(round($tp/$to,2))")x (figure: at most 1.0x)"
echo "--- imagebake release plan --compile:"; cat "$W/plan.txt"
echo "--- octocatalog-diff:"; grep -v "^I, \|^W, " "$W/od.txt" | head -80
# verify of 3.0.0 (six real modules) published into a store, with its
# upstreams there and with every upstream gone (module remotes, control
# repo, agent store, base file, cache): the store's sources alone
"$BIN" --quiet key generate --dir "$W" --name k --unencrypted >/dev/null 2>&1
export IMAGEBAKE_KEY=$W/k.key IMAGEBAKE_TRUSTED_KEYS=$W/k.pub
"$BIN" --quiet publish --no-release-check "$W/dist/example-3.0.0" --store "$W/releases" >/dev/null
VM=$W/releases/images/example-3.0.0/manifest.toml
vup=$(t "$BIN" --quiet verify "$VM" --context "$W" --cache "$W/vc1")
kill $srv 2>/dev/null; wait $srv 2>/dev/null || true
mkdir -p "$W/gone"; mv "$CTL" "$W/store" "$W/base" "$W/gone/"
vgone=$(t "$BIN" --quiet verify "$VM" --context "$W" --cache "$W/vc2")
echo "verify of 3.0.0 (six real modules, the 250 MiB Debian puppet base): upstreams there $vup s, every upstream gone $vgone s ($(python3 -c "print(round($vgone/$vup,2))")x; figure: at most 1.0x); its sources: $(python3 -c "
import tomllib,sys; s=tomllib.load(open('$W/releases/images/example-3.0.0/sources.toml','rb'))
print(', '.join(f'{x[\"kind\"]} {x[\"name\"]} {x[\"size\"]//1024} KiB' for x in s['source']))")"
mv "$W/gone/"* "$W/"
git daemon --export-all --base-path="$W/git" --reuseaddr --listen=127.0.0.1 --port=$port "$W/git" >/dev/null 2>&1 & srv=$!
sleep 1
# the cache cap: 10 bases (the same base with one file changed each time)
export IMAGEBAKE_COMPILE_CACHE_MAX=1GiB
for i in $(seq 1 10); do
  mkdir -p "$W/b$i"; cp "$BASE" "$W/b$i/base.tar"
  printf 'base %s\n' "$i" >"$W/b$i/etc-imagebake-bench"; tar -rf "$W/b$i/base.tar" -C "$W/b$i" --transform "s#etc-imagebake-bench#./etc/imagebake-bench#" etc-imagebake-bench
  cp "$W/b$i/base.tar" "$W/base/base.tar"
  sed -i "s/^sha256 = .*/sha256 = \"$(sha256sum "$W/base/base.tar" | cut -d' ' -f1)\"/" "$CTL/imagebake.toml"; git -C "$CTL" commit -qam "base $i"; git -C "$CTL" tag -f v3.0.0 >/dev/null
  bake --release 3.0.0 --out "$W/cap" --compile >/dev/null
  rm -rf "$W/b$i"
done
echo "cache: after 10 bases under a 1GiB cap: $("$BIN" cache du | tail -1)"

#!/usr/bin/env bash
# bench/sbom-vs-syft.sh BIN [BASE.tar] — bakes the embedded example (oci)
# on a Debian base (default: make test's bookworm-puppet.tar) and compares
# the package URLs of imagebake's SBOM with syft's of the same OCI layout.
# syft v1.57.2 is built into .cache/syft on first use (a few minutes).
set -euo pipefail
BIN=$(realpath "${1:?usage: sbom-vs-syft.sh BIN [BASE.tar]}")
cd "$(dirname "$0")/.."
BASE=$(realpath "${2:-.cache/debian/bookworm-puppet.tar}")
SYFT=.cache/syft/syft
[ -x "$SYFT" ] || { echo "building syft v1.57.2 into .cache/syft (once)" >&2; GOBIN=$PWD/.cache/syft go install github.com/anchore/syft/cmd/syft@v1.57.2; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
. bench/example.lib
example_setup "$W" amd64
example_base "$W" "$BASE" "debian base"; git -C "$CTL" tag v1.1.0
"$BIN" --quiet bake --repo "$CTL" --release 1.1.0 --arch amd64 --builder oci --context "$W" --out "$W/dist" --no-release-check >/dev/null
D=$W/dist/example-1.1.0
"$SYFT" -q "oci-dir:$D" -o spdx-json >"$W/syft.spdx.json"
python3 - "$D/sbom.spdx.json" "$W/syft.spdx.json" <<'PY'
import collections, json, sys
def purls(p):
    return {r["referenceLocator"] for pk in json.load(open(p)).get("packages", []) for r in pk.get("externalRefs", []) if r.get("referenceType") == "purl"}
ours, theirs = purls(sys.argv[1]), purls(sys.argv[2])
deb = lambda s: {p for p in s if p.startswith("pkg:deb/")}
key = lambda p: p.split("?")[0].replace("%3A", ":")
o, t = {key(p): p for p in deb(ours)}, {key(p): p for p in deb(theirs)}
print(f"sbom-vs-syft: Debian packages: imagebake {len(o)}, syft {len(t)}, same name and version {len(o.keys() & t.keys())}, byte-identical purls {len(deb(ours) & deb(theirs))}")
diff = sorted((o[k], t[k]) for k in o.keys() & t.keys() if o[k] != t[k])
import re
norm = lambda p: re.sub(r"distro=debian-(\d+)\.\d+", r"distro=debian-\1", p.replace("%3A", ":"))
rest = [(a, b) for a, b in diff if norm(a) != norm(b)]
print(f"sbom-vs-syft: same package, other purl: {len(diff)}; once the point release (distro=debian-12.N) and an epoch's %3A are set aside: {len(rest)}; e.g.")
diff = rest or diff
for a, b in diff[:3]:
    print(f"  imagebake {a}\n  syft      {b}")
go = lambda s: sorted(p for p in s if p.startswith("pkg:golang/"))
print("sbom-vs-syft: Go packages: imagebake", go(ours), "syft", go(theirs))
print("sbom-vs-syft: purl types: imagebake", dict(collections.Counter(p.split("/")[0] for p in ours)), "syft", dict(collections.Counter(p.split("/")[0] for p in theirs)))
PY

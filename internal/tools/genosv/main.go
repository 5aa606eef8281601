// Command genosv makes the data of the OSV audit benchmark (bench/osv-audit.sh):
// RELEASES release directories (manifest.toml only) of one family on a
// Debian 12 base of PACKAGES packages, in lines of five security releases,
// and an osv.dev-style all.zip of RECORDS Debian records (about 1.5 KB each,
// as osv.dev's DSA/DLA records are) in the mix of that archive: 30% for
// Debian 12, the rest for Debian 10, 11 and 13, over ten times as many
// source package names as a release holds; one in ten Debian 12 records
// is fixed above the version a release holds.
//
//	go run ./internal/tools/genosv OUT RELEASES PACKAGES RECORDS [DEBIAN12_PERCENT]
//
// DEBIAN12_PERCENT (default 30) makes that share of the records Debian 12's
// before the rest are spread over 10, 11, 12 and 13 (100: all of them).
package main

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/imagebake/imagebake/internal/distro"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
)

func main() {
	if len(os.Args) != 5 && len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: genosv OUT RELEASES PACKAGES RECORDS [DEBIAN12_PERCENT]")
		os.Exit(2)
	}
	share := 30
	if len(os.Args) == 6 {
		v, err := strconv.Atoi(os.Args[5])
		if err != nil || v < 0 || v > 100 {
			fmt.Fprintf(os.Stderr, "genosv: %q is not a percentage\n", os.Args[5])
			os.Exit(2)
		}
		share = v
	}
	n := func(i int) int {
		v, err := strconv.Atoi(os.Args[i])
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "genosv: %q is not a count\n", os.Args[i])
			os.Exit(2)
		}
		return v
	}
	if err := run(os.Args[1], n(2), n(3), n(4), share); err != nil {
		fmt.Fprintln(os.Stderr, "genosv:", err)
		os.Exit(1)
	}
}

func run(out string, releases, packages, records, share int) error {
	rng := rand.New(rand.NewPCG(1, 2))
	names := make([]string, packages*10)
	for i := range names {
		names[i] = fmt.Sprintf("pkg%04d", i)
	}
	for i := 0; i < releases; i++ {
		version := fmt.Sprintf("1.%d.%d", i/5, i%5)
		var list []distro.Package
		for j := 0; j < packages; j++ {
			name := names[(j*3+i)%len(names)]
			list = append(list, distro.Package{Name: name + "-bin", Source: name, Arch: "amd64", Version: fmt.Sprintf("%d.%d-1~deb12u%d", j%7+1, j%13, i%5+1)})
		}
		distro.SortPackages(list)
		m := &manifest.Manifest{Format: manifest.Format, Family: "bench", Release: version, Epoch: 1735732800, Builder: "oci",
			Repo:        manifest.Repo{URL: "file:///r", Tag: "v" + version, Commit: strings.Repeat("c", 40)},
			Puppetfile:  manifest.Puppetfile{SHA256: strings.Repeat("d", 64), Moduledir: "modules", Modules: []lockfile.Module{}},
			IndexDigest: "sha256:" + strings.Repeat("1", 64),
			Images: []manifest.Image{{Arch: "amd64", OS: "linux", Name: "bench-" + version + "-amd64", Digest: "sha256:" + strings.Repeat("1", 64),
				Agent: manifest.Agent{Name: "m", Version: "2.0.0", SHA256: strings.Repeat("e", 64)},
				Base: manifest.Base{Ref: fmt.Sprintf("rootfs:debian-12@sha256:%064x", i), OS: &distro.OS{ID: "debian", VersionID: "12", Codename: "bookworm"},
					Packages: &manifest.Packages{Format: distro.Dpkg, Count: len(list), Digest: distro.PackagesDigest(list), List: list}}}}}
		dir := filepath.Join(out, "releases", "bench-"+version)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := m.Write(filepath.Join(dir, manifest.FileName)); err != nil {
			return err
		}
	}
	f, err := os.Create(filepath.Join(out, "all.zip"))
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	details := strings.Repeat("A flaw was found in the handling of crafted input, which may result in denial of service or the execution of arbitrary code. ", 8)
	for i := 0; i < records; i++ {
		id := fmt.Sprintf("DLA-%d-1", 10000+i)
		name := names[rng.IntN(len(names))]
		eco := []string{"Debian:10", "Debian:11", "Debian:12", "Debian:13"}[rng.IntN(4)]
		if rng.IntN(100) < share {
			eco = "Debian:12"
		}
		fixed := "0.1-1"
		if rng.IntN(10) == 0 {
			fixed = fmt.Sprintf("%d.%d-1~deb12u%d", rng.IntN(7)+1, rng.IntN(13), rng.IntN(6)+1)
		}
		rec := map[string]any{
			"schema_version": "1.6.0", "id": id, "modified": "2026-11-30T10:12:00Z", "published": "2026-11-28T00:00:00Z",
			"upstream": []string{fmt.Sprintf("CVE-2026-%d", 10000+i)}, "summary": name + " - security update", "details": details,
			"affected": []any{map[string]any{
				"package": map[string]any{"ecosystem": eco, "name": name, "purl": "pkg:deb/debian/" + name + "?arch=source"},
				"ranges": []any{map[string]any{"type": "ECOSYSTEM", "events": []any{
					map[string]any{"introduced": "0"}, map[string]any{"fixed": fixed}}}},
			}},
			"references": []any{map[string]any{"type": "ADVISORY", "url": "https://security-tracker.debian.org/tracker/" + id}},
		}
		w, err := zw.Create(id + ".json")
		if err != nil {
			return err
		}
		if err := json.NewEncoder(w).Encode(rec); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

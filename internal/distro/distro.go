// Package distro reads what a root file system says about itself without
// running anything in it: the OS identity from os-release, the installed
// packages from the dpkg status (and the distroless status.d) or the apk
// database, and the ELF machine of /bin/sh. A Collector takes the entries
// of a base's layers in order (whiteouts applied) and keeps only the files
// it needs.
package distro

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// OS is the identity os-release gives.
type OS struct {
	ID         string `toml:"id" json:"id"`
	VersionID  string `toml:"version_id,omitempty" json:"version_id,omitempty"`
	Codename   string `toml:"codename,omitempty" json:"codename,omitempty"`
	PrettyName string `toml:"pretty_name,omitempty" json:"pretty_name,omitempty"`
	// PointRelease is Debian's point release from /etc/debian_version
	// ("12.15"); "" elsewhere, or when that file names no release
	// ("trixie/sid")
	PointRelease string `toml:"point_release,omitempty" json:"point_release,omitempty"`
}

// String is "ID VERSION_ID (CODENAME)", as much as is known.
func (o OS) String() string {
	s := o.ID
	if o.VersionID != "" {
		s += " " + o.VersionID
	}
	if o.Codename != "" {
		s += " (" + o.Codename + ")"
	}
	return s
}

// Package is one installed package.
type Package struct {
	Name    string `toml:"name" json:"name"`
	Version string `toml:"version" json:"version"`
	Arch    string `toml:"arch" json:"arch"`
	Source  string `toml:"source,omitempty" json:"source,omitempty"`
	// SourceVersion is the source package's version where it differs
	// from the binary's (dpkg's "Source: util-linux (2.38.1-5+deb12u3)")
	SourceVersion string `toml:"source_version,omitempty" json:"source_version,omitempty"`
	License       string `toml:"license,omitempty" json:"license,omitempty"`
}

// Formats of package databases.
const (
	Dpkg = "dpkg"
	Apk  = "apk"
)

// Info is what a root file system says about itself.
type Info struct {
	OS       *OS       // nil: no os-release
	Format   string    // Dpkg, Apk, or "" for no package database
	Packages []Package // sorted by name, then arch
	Machine  string    // GOARCH name of /bin/sh's ELF machine; "" if unknown
	Notes    []string  // what could not be read, each naming the file
}

// SortPackages sorts ps by name, then arch, then version.
func SortPackages(ps []Package) {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Arch != b.Arch {
			return a.Arch < b.Arch
		}
		return a.Version < b.Version
	})
}

// PackagesDigest is the sha256 of the sorted "name version arch" lines of
// ps: two bases with the same packages have the same digest.
func PackagesDigest(ps []Package) string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Name + " " + p.Version + " " + p.Arch + "\n"
	}
	sort.Strings(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// archNames maps package and ELF architecture names to Go's.
var archNames = map[string]string{
	// dpkg
	"amd64": "amd64", "arm64": "arm64", "armhf": "arm", "armel": "arm", "i386": "386",
	"ppc64el": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "mips64el": "mips64le", "loong64": "loong64",
	// apk, rpm
	"x86_64": "amd64", "aarch64": "arm64", "armv7": "arm", "armhfp": "arm", "x86": "386", "i686": "386",
	"ppc64le": "ppc64le", "loongarch64": "loong64",
}

// GoArch is the Go name of a package architecture, "" for
// architecture-independent packages ("all", "noarch") and unknown names.
func GoArch(a string) string {
	return archNames[strings.ToLower(a)]
}

// Arch is the architecture the packages are built for (Go's name): the
// one most architecture-dependent packages have, else /bin/sh's ELF
// machine; "" when neither says. others lists any other architectures
// the packages have, with counts.
func (i *Info) Arch() (arch string, others []string) {
	arch, _, others = i.ArchBy()
	return arch, others
}

// ArchBy is Arch, also saying what told it: "its packages are" or
// "/bin/sh is".
func (i *Info) ArchBy() (arch, by string, others []string) {
	if i == nil {
		return "", "", nil
	}
	count := map[string]int{}
	for _, p := range i.Packages {
		if a := GoArch(p.Arch); a != "" {
			count[a]++
		}
	}
	best := 0
	for a, n := range count {
		if n > best || n == best && a < arch {
			arch, best = a, n
		}
	}
	for a, n := range count {
		if a != arch {
			others = append(others, fmt.Sprintf("%s (%d packages)", a, n))
		}
	}
	sort.Strings(others)
	if arch != "" {
		return arch, "its packages are", others
	}
	if i.Machine != "" {
		return i.Machine, "/bin/sh is", nil
	}
	return "", "", nil
}

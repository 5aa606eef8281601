// Package pkgversion orders package versions the way each package format
// does: dpkg (epochs, '~' before anything, the Debian revision), apk
// (suffixes such as _rc and _p, the -rN package release) and rpm
// (epoch:version-release, rpmvercmp). The comparisons are knqyf263's
// go-deb-version, go-apk-version and go-rpm-version, the libraries
// vulnerability scanners (trivy) use.
package pkgversion

import (
	"fmt"

	apk "github.com/knqyf263/go-apk-version"
	deb "github.com/knqyf263/go-deb-version"
	rpm "github.com/knqyf263/go-rpm-version"

	"github.com/imagebake/imagebake/internal/distro"
)

// Version is a version parsed once in its format's order, to compare
// many times.
type Version struct {
	format string
	deb    deb.Version
	apk    apk.Version
	rpm    rpm.Version
}

// Parse parses v in format's order (distro.Dpkg, distro.Apk, distro.Rpm);
// a version the format does not accept, or an unknown format, is an
// error naming it.
func Parse(format, v string) (Version, error) {
	out := Version{format: format}
	var err error
	switch format {
	case distro.Dpkg:
		if out.deb, err = deb.NewVersion(v); err != nil {
			return out, fmt.Errorf("%q is not a dpkg version: %v", v, err)
		}
	case distro.Apk:
		if out.apk, err = apk.NewVersion(v); err != nil {
			return out, fmt.Errorf("%q is not an apk version: %v", v, err)
		}
	case distro.Rpm:
		if v == "" {
			return out, fmt.Errorf("an empty rpm version")
		}
		out.rpm = rpm.NewVersion(v)
	default:
		return out, fmt.Errorf("package format %q: want %s, %s or %s", format, distro.Dpkg, distro.Apk, distro.Rpm)
	}
	return out, nil
}

// Compare returns -1, 0 or 1 as v is older than, the same as or newer
// than o; both must be of one format.
func (v Version) Compare(o Version) int {
	switch v.format {
	case distro.Dpkg:
		return sign(v.deb.Compare(o.deb))
	case distro.Apk:
		return sign(v.apk.Compare(o.apk))
	}
	return sign(v.rpm.Compare(o.rpm))
}

// Compare returns -1, 0 or 1 as a is older than, the same as or newer than
// b in format's order (distro.Dpkg, distro.Apk, distro.Rpm). A version the
// format does not accept, or an unknown format, is an error naming it.
func Compare(format, a, b string) (int, error) {
	va, err := Parse(format, a)
	if err != nil {
		return 0, err
	}
	vb, err := Parse(format, b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

// Less is Compare(format, a, b) < 0.
func Less(format, a, b string) (bool, error) {
	c, err := Compare(format, a, b)
	return c < 0, err
}

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

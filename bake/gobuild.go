package bake

import (
	"debug/buildinfo"
	"slices"

	"github.com/imagebake/imagebake/manifests/manifest"
)

// goBuildOf is what the Go build information of the binary at path says
// (nil when it is not a Go binary): the SBOM lists its Go version and
// modules as packages, as scanners do.
func goBuildOf(path string) *manifest.GoBuild {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil
	}
	g := &manifest.GoBuild{Go: bi.GoVersion, Main: bi.Main.Path + "@" + bi.Main.Version}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		g.Deps = append(g.Deps, d.Path+"@"+d.Version)
	}
	slices.Sort(g.Deps)
	return g
}

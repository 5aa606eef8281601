// Package templates holds the Packer HCL2 templates embedded in imagebake.
// Each takes the release from the imagebake-release data source and gets
// these variables from `imagebake bake --builder packer` (a var file, so a
// template may ignore the ones it does not need): manifest, arch, context,
// cache, output_dir, source_date_epoch, and for chroot rootfs and
// rootfs_sha256 (the arch's base from imagebake.toml).
package templates

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/imagebake/imagebake/internal/failure"
)

//go:embed *.pkr.hcl
var files embed.FS

// Names lists the templates.
func Names() []string {
	ents, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".pkr.hcl"))
	}
	sort.Strings(out)
	return out
}

// Get returns the template called name.
func Get(name string) ([]byte, error) {
	b, err := files.ReadFile(name + ".pkr.hcl")
	if err != nil {
		return nil, fmt.Errorf("no Packer template %q (have: %s): %w", name, strings.Join(Names(), ", "), failure.ErrNotFound)
	}
	return b, nil
}

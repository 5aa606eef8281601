package builders

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/imagebake/imagebake/internal/failure"
)

// Builder turns a Request (bases and payload layers per arch) into images
// in the release directory. Each builder registers itself by name; the
// configuration and the manifest name builders by that name.
type Builder interface {
	// Name is what imagebake.toml's builder and the manifest say.
	Name() string
	// BlobDir is where the payload layers are written for a release made
	// in dir: inside the release when the builder keeps them as they are
	// (oci), a scratch directory under dir otherwise.
	BlobDir(dir string) string
	// LayerFile is the file in dir that holds the blob with digest layer
	// (a layer, an image manifest or the index) of the image whose
	// manifest artifact is artifact: a blob of the layout for oci, the
	// image's tarball for rootfs.
	LayerFile(dir, artifact, layer string) string
	// Build makes the images of req in req.Dir.
	Build(ctx context.Context, req *Request) (*Result, error)
}

// ScratchDir is the directory under a release being made that a builder
// may use for work files; it is removed before the release is finished.
const ScratchDir = ".work"

var (
	mu       sync.Mutex
	registry = map[string]Builder{}
)

// Register makes b available by its name. Builders register in init.
func Register(b Builder) {
	mu.Lock()
	defer mu.Unlock()
	registry[b.Name()] = b
}

// Lookup returns the builder named name, or an error listing the builders.
func Lookup(name string) (Builder, error) {
	mu.Lock()
	b, ok := registry[name]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: builder %q: want %s", failure.ErrUsage, name, strings.Join(Names(), " or "))
	}
	return b, nil
}

// Names lists the registered builders, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

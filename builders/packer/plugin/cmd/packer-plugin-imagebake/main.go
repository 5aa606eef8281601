// Command packer-plugin-imagebake is imagebake's Packer plugin: provisioner
// imagebake, builder imagebake-chroot, data source imagebake-release and
// post-processor imagebake-manifest. Packer starts it; install it with
// `imagebake packer install-plugin`.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/builders/packer/plugin"
)

// payload is the bake's payload stage, for the provisioner.
func payload(ctx context.Context, manifest, arch, dst, cacheDir, contextDir string) error {
	return bake.Payload(ctx, manifest, arch, dst, bake.Options{Cache: cacheDir, Context: contextDir})
}

func main() {
	if err := plugin.Serve(payload); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

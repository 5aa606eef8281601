// Command packer-plugin-imagebake is imagebake's Packer plugin: provisioner
// imagebake, builder imagebake-chroot, data source imagebake-release and
// post-processor imagebake-manifest. Packer starts it; install it with
// `imagebake packer install-plugin`.
package main

import (
	"fmt"
	"os"

	"github.com/imagebake/imagebake/builders/packer/plugin"
)

func main() {
	if err := plugin.Serve(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

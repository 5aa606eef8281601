package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	packerplugin "github.com/imagebake/imagebake/builders/packer"
)

func newPackerCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "packer", Short: "imagebake as a Packer plugin"}
	var dir string
	install := &cobra.Command{
		Use:   "install-plugin [--dir D]",
		Short: "Install imagebake's Packer plugin (provisioner imagebake, builder imagebake-chroot, ...)",
		Long: `Install imagebake's Packer plugin (the packer-plugin-imagebake binary, found
beside imagebake or on PATH) in Packer's versioned layout:
D/github.com/imagebake/imagebake/packer-plugin-imagebake_vVERSION_x5.0_OS_ARCH
with its _SHA256SUM file beside it. Point PACKER_PLUGIN_PATH at D, or use the
default D of Packer (~/.config/packer/plugins).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return usageErr("no home directory: give --dir")
				}
				dir = filepath.Join(home, ".config", "packer", "plugins")
			}
			self, err := packerplugin.FindPlugin()
			if err != nil {
				return err
			}
			dst, err := packerplugin.InstallPlugin(self, dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), dst)
			return nil
		},
	}
	install.Flags().StringVar(&dir, "dir", "", "plugin directory (default ~/.config/packer/plugins)")
	cmd.AddCommand(install)
	return cmd
}

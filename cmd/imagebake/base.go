package main

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/internal/ociremote"
)

func newBaseCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "base", Short: "Bases in registries"}
	var o ociremote.Options
	var arches []string
	pin := &cobra.Command{
		Use:   "pin REGISTRY/REPO:TAG [--arch a,b]",
		Short: "Resolve a tag to the digest to write in imagebake.toml, with each arch's platform image",
		Long: `Resolve REGISTRY/REPO:TAG to REGISTRY/REPO@sha256:DIGEST (the index, or the
image) and print it, then the linux/ARCH image digest of each --arch (default
amd64 and arm64). Write the pinned reference as [base] image = "..." in
imagebake.toml: a tag moves, a digest does not.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(arches) == 0 {
				arches = []string{"amd64", "arm64"}
			}
			p, err := remoteOptions(o).Pin(cmd.Context(), args[0], arches)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), p)
			}
			fmt.Fprintln(cmd.OutOrStdout(), p.Ref)
			keys := make([]string, 0, len(p.Platforms))
			for a := range p.Platforms {
				keys = append(keys, a)
			}
			sort.Strings(keys)
			for _, a := range keys {
				fmt.Fprintf(cmd.OutOrStdout(), "  linux/%s\t%s\n", a, p.Platforms[a])
			}
			return nil
		},
	}
	pin.Flags().StringSliceVar(&arches, "arch", nil, "arches to resolve (default amd64,arm64)")
	addRegistryFlags(pin.Flags(), &o)
	cmd.AddCommand(pin)
	return cmd
}

package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/ociremote"
)

func newBaseCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "base", Short: "Bases in registries"}
	var o ociremote.Options
	var arches []string
	var write bool
	var config, forArch string
	pin := &cobra.Command{
		Use:   "pin REGISTRY/REPO:TAG [--arch a,b]",
		Short: "Resolve a tag to the digest to write in imagebake.toml, with each arch's platform image",
		Long: `Resolve REGISTRY/REPO:TAG to REGISTRY/REPO@sha256:DIGEST (the index, or the
image) and print it, then the linux/ARCH image digest of each --arch (default
the arches of imagebake.toml with --write, else amd64 and arm64). A tag
moves, a digest does not.

With --write, imagebake.toml (--config, default ./imagebake.toml) gets
[base] image = "REGISTRY/REPO@sha256:..." in place of the base it named
(or [bases.ARCH] with --for ARCH), keeping every comment and other line;
the file is replaced whole, and only after every arch was found.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw []byte
			if write {
				var err error
				if raw, err = os.ReadFile(config); err != nil {
					return fmt.Errorf("base pin --write: %w", err)
				}
				c, err := bake.ParseConfig(raw)
				if err != nil {
					return fmt.Errorf("%s: %w", config, err)
				}
				if len(arches) == 0 {
					arches = c.Arches
					if forArch != "" {
						arches = []string{forArch}
					}
				}
			} else if forArch != "" {
				return usageErr("--for goes with --write")
			}
			if len(arches) == 0 {
				arches = []string{"amd64", "arm64"}
			}
			p, err := remoteOptions(o).Pin(cmd.Context(), args[0], arches)
			if err != nil {
				return err
			}
			if write {
				table := "base"
				if forArch != "" {
					table = "bases." + forArch
				}
				out, err := bake.SetBaseImage(raw, table, p.Ref)
				if err != nil {
					return fmt.Errorf("%s: %w", config, err)
				}
				if err := atomicfile.WriteFile(config, out, fileMode(config)); err != nil {
					return err
				}
				fmt.Fprintf(g.progress(), "%s: [%s] image = %q\n", config, table, p.Ref)
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
	pin.Flags().StringSliceVar(&arches, "arch", nil, "arches to resolve (default: imagebake.toml's with --write, else amd64,arm64)")
	pin.Flags().BoolVar(&write, "write", false, "write the pinned reference into imagebake.toml, keeping its comments")
	pin.Flags().StringVar(&config, "config", bake.ConfigName, "the imagebake.toml --write edits")
	pin.Flags().StringVar(&forArch, "for", "", "with --write: pin [bases.ARCH] of this arch instead of [base]")
	addRegistryFlags(pin.Flags(), &o)
	cmd.AddCommand(pin)
	return cmd
}

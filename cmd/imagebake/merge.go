package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/registry"
)

func newMergeCommand(g *globals) *cobra.Command {
	var o bake.Options
	var ro registry.Options
	cmd := &cobra.Command{
		Use:   "merge --out dist PART...",
		Short: "Join per-arch bakes of one release into the release with every arch (byte-identical to one bake of all)",
		Long: `Join per-arch bakes (bake --arch A on separate runners, each release directory
saying partial_of in its manifest) into OUT/NAME-X.Y.Z: every image, the
manifest and the image index over all arches, byte for byte what one bake of
all the arches writes.

Each PART is a per-arch release directory (D/NAME-X.Y.Z), or the registry
reference of a per-arch image that push of a per-arch bake left
(REGISTRY/REPO:X.Y.Z-ARCH or REGISTRY/REPO@sha256:...): its image and the
partial's manifest attached to it are pulled, every blob checked against its
digest. Every blob of every part is hashed before it is copied.

Parts that disagree on a shared input (control repo commit, Puppetfile pins,
epoch, builder, environment, imagebake version, agent major), hold different
images of one arch, or hold blobs that do not match their digests are
refused (exit 4), naming the part, the input and both values.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Log = g.progress()
			dirs := make([]string, len(args))
			for i, a := range args {
				dirs[i] = a
				if !registryPart(a) {
					continue
				}
				tmp, done, err := bake.PullDir(o.Out)
				if err != nil {
					return err
				}
				defer done()
				fmt.Fprintf(o.Log, "pulling %s\n", a)
				if _, err := registry.PullPartial(cmd.Context(), a, tmp, registryOptions(ro, g)); err != nil {
					return err
				}
				dirs[i] = tmp
			}
			o.BuilderID = builderIdentity()
			m, err := bake.MergeNamed(cmd.Context(), o, dirs, args)
			if err != nil {
				return err
			}
			return printBake(cmd, g, m)
		},
	}
	cmd.Flags().StringVar(&o.Out, "out", "dist", "output directory")
	cmd.Flags().BoolVar(&o.Force, "force", false, "replace a release in --out baked from other inputs")
	addRegistryFlags(cmd.Flags(), &ro.Options)
	return cmd
}

// registryPart says whether a merge argument names a registry image
// rather than a directory: it is not on disk, and its first element is a
// registry host (has a dot or a port, or is localhost), as Docker reads
// references.
func registryPart(arg string) bool {
	if _, err := os.Stat(arg); err == nil {
		return false
	}
	host, _, ok := strings.Cut(arg, "/")
	return ok && (strings.ContainsAny(host, ".:") || host == "localhost") && strings.ContainsAny(arg[len(host):], ":@")
}

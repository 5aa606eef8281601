package main

import (
	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/bake"
)

func newMergeCommand(g *globals) *cobra.Command {
	var o bake.Options
	cmd := &cobra.Command{
		Use:   "merge --out dist D1/NAME-X.Y.Z D2/NAME-X.Y.Z ...",
		Short: "Join per-arch bakes of one release into the release with every arch (byte-identical to one bake of all)",
		Long: `Join per-arch bakes (bake --arch A on separate runners, each release directory
saying partial_of in its manifest) into OUT/NAME-X.Y.Z: every image, the
manifest and the image index over all arches, byte for byte what one bake of
all the arches writes. Parts that disagree on a shared input (control repo
commit, Puppetfile pins, epoch, builder, environment, imagebake version,
agent major) or hold different images of one arch are refused (exit 4),
naming the input and both values.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Log = g.progress()
			m, err := bake.Merge(cmd.Context(), o, args)
			if err != nil {
				return err
			}
			return printBake(cmd, g, m)
		},
	}
	cmd.Flags().StringVar(&o.Out, "out", "dist", "output directory")
	cmd.Flags().BoolVar(&o.Force, "force", false, "replace a release in --out baked from other inputs")
	return cmd
}

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/internal/catalogpage"
	"github.com/imagebake/imagebake/manifests/catalog"
)

func newPageCommand(g *globals) *cobra.Command {
	kf := &keyFlags{}
	var store, out string
	cmd := &cobra.Command{
		Use:   "page --store DIR|URL|s3://B/P --out DIR",
		Short: "Write the catalog as a static HTML page: release lines, end-of-life countdowns, advisories, changes, revocations",
		Long: `Write DIR/index.html: one self-contained page (no script, nothing loaded
from the network) that shows, for each family of the store's catalog:

  - its release lines (MAJOR.MINOR) as timelines, each release with its
    lifecycle state, and each line's end of life with a countdown;
  - the advisories its releases fixed, which releases carry each fix and
    which lack it;
  - what each release changed since the one before (level and reasons);
  - the revoked releases and what to move to.

The catalog's signature and every manifest's are checked first, as for
catalog list. publish writes the same page beside the catalog
(catalog/index.html) each time it adds a release.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if store == "" || out == "" {
				return usageErr("--store and --out are required")
			}
			c, err := kf.readCatalog(cmd.Context(), g, store)
			if err != nil {
				return err
			}
			name, err := writePage(cmd.Context(), c, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", name)
			return nil
		},
	}
	cmd.Flags().StringVar(&store, "store", "", "store: a directory, s3://BUCKET/PREFIX, or an HTTP(S) URL")
	cmd.Flags().StringVar(&out, "out", "", "directory to write index.html into")
	kf.register(cmd, false)
	return cmd
}

// writePage writes the page of the opened catalog c into dir.
func writePage(ctx context.Context, c *catalog.Opened, dir string) (string, error) {
	p, err := catalogpage.Build(ctx, c.Catalog, c.Where, c.Manifest, time.Now())
	if err != nil {
		return "", err
	}
	return p.Write(dir)
}

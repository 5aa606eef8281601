package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/manifests/catalog"
)

// pooled is a store with a blob pool (directory and S3 stores).
type pooled interface {
	GC(ctx context.Context, grace time.Duration, dryRun bool, now time.Time) (*catalog.GCReport, error)
	Migrate(ctx context.Context) (int, error)
}

// storeGCLong is store gc's --help.
const storeGCLong = `A store keeps every blob once, in its pool (STORE/blobs/sha256/HEX). gc
removes the pool blobs no release holds (a directory store: blobs linked
into no release; an S3 store: blobs no release's index and manifests name)
that are older than --grace. A directory store's publish links each blob
into its release as it adds or finds it in the pool, so gc (which removes
only blobs linked nowhere else) never takes one a publish holds. On an S3
store a publish (and a migrate) holds a shared lease (STORE/locks/) from
before it looks at the pool until the catalog lists its release, and gc an
exclusive one: a gc does not start while a publish runs, nor a publish
while a gc runs (the one that comes second stops, naming the other; run it
again). A lease its holder has not refreshed for 10 minutes is a killed
holder's: passed over, and removed by gc. A gc stopped at any point leaves
a store every reader accepts.`

func newStoreCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Keep a release store: its blob pool (gc, migrate)"}
	var store string
	var dryRun bool
	var grace time.Duration
	kf := &keyFlags{}
	open := func(ctx context.Context) (pooled, error) {
		if store == "" {
			return nil, usageErr("--store is required: a store directory or s3://BUCKET/PREFIX")
		}
		kr, err := kf.keyring()
		if err != nil {
			return nil, err
		}
		st, err := openWriter(ctx, store, kr, true)
		if err != nil {
			return nil, err
		}
		p, ok := st.(pooled)
		if !ok {
			return nil, usageErr("%s has no blob pool", store)
		}
		return p, nil
	}
	gc := &cobra.Command{
		Use:   "gc --store S [--dry-run] [--grace 1h]",
		Short: "Remove pool blobs no release holds, older than the grace period (releases are never removed)",
		Long:  storeGCLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := open(cmd.Context())
			if err != nil {
				return err
			}
			r, err := p.GC(cmd.Context(), grace, dryRun, time.Now())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), r)
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d pool blobs, %d held by releases, %d unheld but younger than %s (kept); %s %d (%d bytes)\n",
				store, r.Blobs, r.Referenced, r.Young, grace, verb, r.Removed, r.Freed)
			return nil
		},
	}
	gc.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be removed; remove nothing")
	gc.Flags().DurationVar(&grace, "grace", catalog.DefaultGrace, "keep unheld blobs younger than this (an in-flight publish's)")
	migrate := &cobra.Command{
		Use:   "migrate --store S",
		Short: "Move the blobs of releases published before the pool into it (no digest changes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := open(cmd.Context())
			if err != nil {
				return err
			}
			n, err := p.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d blobs moved into the pool\n", store, n)
			return nil
		},
	}
	for _, c := range []*cobra.Command{gc, migrate} {
		c.Flags().StringVar(&store, "store", "", "store: a directory or s3://BUCKET/PREFIX")
		kf.register(c, false)
		cmd.AddCommand(c)
	}
	return cmd
}

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/s3obj"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
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
	var store, cache string
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
		st, err := openWriter(ctx, store, kr, true, cache)
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
	migrate := newStoreMigrateCommand(g, open, &store, &cache)
	addCacheFlag(migrate.Flags(), &cache)
	addCacheFlag(gc.Flags(), &cache)
	for _, c := range []*cobra.Command{gc, migrate} {
		c.Flags().StringVar(&store, "store", "", "store: a directory or s3://BUCKET/PREFIX")
		kf.register(c, false)
		cmd.AddCommand(c)
	}
	return cmd
}

// keepOldSources adds sources to the releases of the directory store that
// lack them, fetching from their upstreams; the releases whose upstreams
// cannot be reached are named in the error (exit 3), after the rest are
// done. An S3 store's releases are not migrated yet (a note says so).
func keepOldSources(cmd *cobra.Command, g *globals, store, cache string) (missing, err error) {
	if s3obj.IsURL(store) {
		fmt.Fprintf(g.progress(), "note: %s: sources are added to old releases of directory stores only; an S3 store's releases published before keep none\n", store)
		return nil, nil
	}
	dirs, err := filepath.Glob(filepath.Join(store, "images", "*", manifest.FileName))
	if err != nil {
		return nil, err
	}
	var o bake.Options
	if o.Cache, err = cacheDir(cache); err != nil {
		return nil, err
	}
	o.Version, o.Log = clientVersion(), g.progress()
	var lack []string
	added := 0
	for _, m := range dirs {
		did, err := bake.KeepSources(cmd.Context(), filepath.Dir(m), o)
		switch {
		case err != nil:
			lack = append(lack, fmt.Sprintf("%s: %v", filepath.Base(filepath.Dir(m)), err))
		case did:
			added++
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: sources added to %d releases\n", store, added)
	if len(lack) > 0 {
		return fmt.Errorf("%w: %d releases of %s keep no sources, their upstreams out of reach:\n  %s", failure.ErrNotFound, len(lack), store, strings.Join(lack, "\n  ")), nil
	}
	return nil, nil
}

// newStoreMigrateCommand is store migrate.
func newStoreMigrateCommand(g *globals, open func(context.Context) (pooled, error), store, cache *string) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate --store S",
		Short: "Add sources to releases published before stores kept them, and move blobs of releases published before the pool into it (no digest changes)",
		Long: `migrate brings a store's old releases up to date without changing a digest.
On a directory store, each release published before stores kept sources
gets them: its control repo's and git modules' pinned trees, Forge tarballs
and agent archives, fetched from their upstreams by the pins its signed
manifest holds (the pins checked as a bake checks them). Releases whose
upstreams cannot be reached are named (exit 3); the others keep what was
added. Then every release's blobs are moved into the pool.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := open(cmd.Context())
			if err != nil {
				return err
			}
			missing, err := keepOldSources(cmd, g, *store, *cache)
			if err != nil {
				return err
			}
			n, err := p.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d blobs moved into the pool\n", *store, n)
			return missing
		},
	}
}

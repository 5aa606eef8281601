package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/internal/catalogpage"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
	"github.com/imagebake/imagebake/release"
)

func newPublishCommand(g *globals) *cobra.Command {
	kf := &keyFlags{}
	var store string
	var noCheck bool
	cmd := &cobra.Command{
		Use:   "publish dist/NAME-X.Y.Z --store DIR|s3://B/P",
		Short: "Add a baked release to a store's signed catalog (immutable; identical re-publish is a no-op)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if store == "" {
				return usageErr("--store is required")
			}
			kr, err := kf.keyring()
			if err != nil {
				return err
			}
			signer, err := kf.signer(kr)
			if err != nil {
				return err
			}
			st, err := openWriter(cmd.Context(), store, kr, false, "")
			if err != nil {
				return err
			}
			sec, err := checkRelease(cmd.Context(), g, store, kr, args[0], !noCheck)
			if err != nil {
				return err
			}
			opts := []catalog.PublishOption{catalog.WithFixes(sec.Fixes)}
			if !noCheck {
				opts = append(opts, catalog.WithCheck(sec.StillFollows()))
			}
			rel, added, err := st.Publish(cmd.Context(), args[0], signer, opts...)
			if err != nil {
				return err
			}
			if added {
				publishPage(cmd.Context(), g.progress(), st, store, kr)
			}
			// the supported releases of higher lines that lack what this
			// one fixed: each needs a security release of its own
			found, err := sec.ForwardPorts(cmd.Context(), rel)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.json {
				w = g.progress()
			}
			for _, f := range found {
				fmt.Fprintln(w, f)
			}
			if s3, ok := st.(*catalog.S3Store); ok {
				reportRetries(cmd, "catalog", s3.Retries.Load())
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rel)
			}
			if !added {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s is in %s already, the same content (manifest %s): nothing to do\n", sec.Manifest.Family, rel.Version, store, rel.ManifestDigest)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s published into %s (manifest %s; catalog %s)\n", sec.Manifest.Family, rel.Version, store, rel.ManifestDigest, st.Path())
			return nil
		},
	}
	kf.register(cmd, true)
	cmd.Flags().StringVar(&store, "store", "", "store: a directory or s3://BUCKET/PREFIX")
	cmd.Flags().BoolVar(&noCheck, "no-release-check", false, "skip the check of the release number against the release before it in the store")
	return cmd
}

// publishPage writes the catalog's page beside it (catalog/index.html).
// The catalog is written by then: a page that cannot be made is said on
// w, and the next change or catalog page makes it.
func publishPage(ctx context.Context, w io.Writer, st catalog.Writer, store string, kr *signing.Keyring) {
	err := func() error {
		o, err := openCatalog(ctx, store, kr, "")
		if err != nil {
			return err
		}
		p, err := catalogpage.Build(ctx, o.Catalog, o.Where, o.Manifest, time.Now())
		if err != nil {
			return err
		}
		b, err := p.Render()
		if err != nil {
			return err
		}
		return st.WritePage(ctx, catalogpage.FileName, b)
	}()
	if err != nil {
		fmt.Fprintf(w, "warning: the catalog page (catalog/%s) was not written: %v; `imagebake catalog page` writes it\n", catalogpage.FileName, err)
	}
}

// checkRelease reads the release in dir and the catalog of store, and
// checks the one against the other when check is set (release.CheckCandidate).
func checkRelease(ctx context.Context, g *globals, store string, kr *signing.Keyring, dir string, check bool) (*release.Candidate, error) {
	cand, err := manifest.Read(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return nil, err
	}
	o, err := openCatalog(ctx, store, kr, "")
	if errors.Is(err, failure.ErrNotFound) {
		o, err = nil, nil // the store's first release
	}
	if err != nil {
		return nil, err
	}
	c, err := release.CheckCandidate(ctx, o, cand, check)
	if err == nil && c.Follows != "" {
		fmt.Fprintf(g.progress(), "%s follows %s in %s\n", cand.Release, c.Follows, store)
	}
	return c, err
}

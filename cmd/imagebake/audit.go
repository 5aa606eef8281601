package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/osv"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/release"
)

func newAuditCommand(g *globals) *cobra.Command {
	var store, now string
	var osvPaths []string
	kf := &keyFlags{}
	cmd := &cobra.Command{
		Use:   "audit --store S [--osv PATH ...] [--now DATE]",
		Short: "List supported releases that lack a published security fix, or (with --osv) are affected by an OSV advisory no release of their line fixes",
		Long: `For every supported release of the store (active or deprecated, its major
not past end of life), list:
  - each advisory a release of the store published a fix for (its [[fix]]
    package and module versions) that it lacks, while no later release of
    its own line carries the fix;
  - with --osv, each package of its bases that an OSV advisory affects
    (files, directories of .json files, or osv.dev's per-ecosystem .zip),
    while no release of its line has the fixed version.
Findings are grouped by release line, each line naming the release to cut
once; then one finding per release and advisory (the catalog's and the OSV
records' of one advisory are one), with its aliases and related ids, and
its packages folded ("libssl3, openssl 3.0.11-1~deb12u2 < 3.0.13-1~deb12u1").
--json prints the same structure.
Exit 4 when anything is listed, 0 when clean, 3 when the store or an OSV
path is missing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if store == "" {
				return usageErr("--store is required: a store directory, its URL, or s3://BUCKET/PREFIX")
			}
			at := time.Now()
			if now != "" {
				t, err := parseDate(now)
				if err != nil {
					return err
				}
				at = t
			}
			kr, err := kf.keyring()
			if err != nil {
				return err
			}
			o, err := openCatalog(cmd.Context(), store, kr, "")
			if err != nil {
				return err
			}
			found, err := release.Audit(cmd.Context(), o.Catalog, o.Manifest, at)
			if err != nil {
				return err
			}
			if len(osvPaths) > 0 {
				more, err := auditOSV(cmd, g, o, osvPaths, at)
				if err != nil {
					return err
				}
				found = append(found, more...)
			}
			lines := release.Group(found)
			n := 0
			for _, l := range lines {
				n += len(l.Findings)
			}
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), lines); err != nil {
					return err
				}
			} else {
				printLines(cmd, lines)
			}
			if n > 0 {
				return fmt.Errorf("%w: %d finding(s) in %s", errAudit, n, o.Where)
			}
			fmt.Fprintf(g.progress(), "no supported release in %s lacks a known fix\n", o.Where)
			return nil
		},
	}
	cmd.Flags().StringVar(&store, "store", "", "store: a directory, s3://BUCKET/PREFIX, or an HTTP(S) URL")
	cmd.Flags().StringArrayVar(&osvPaths, "osv", nil, "OSV advisories: a .json file, a directory of them, or an osv.dev .zip (repeatable)")
	cmd.Flags().StringVar(&now, "now", "", "the date to judge support at, YYYY-MM-DD or RFC 3339 (default: now)")
	kf.register(cmd, false)
	return cmd
}

// errAudit marks findings: exit 4, the message already printed above.
var errAudit = fmt.Errorf("releases lack security fixes: %w", failure.ErrVerify)

// printLines prints the findings by release line: the release to cut
// once, then one line per release and advisory, its packages folded.
func printLines(cmd *cobra.Command, lines []release.Line) {
	w := cmd.OutOrStdout()
	for _, l := range lines {
		fmt.Fprintf(w, "%s %s: cut %s\n", l.Family, l.Line, l.Cut)
		for _, f := range l.Findings {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
}

// auditOSV reads the OSV advisories at paths (notes for bad records, a
// count of what was skipped) and audits the catalog against them.
func auditOSV(cmd *cobra.Command, g *globals, o *catalog.Opened, paths []string, at time.Time) ([]release.Finding, error) {
	read := release.Memo(o.Manifest)
	db, err := loadOSV(cmd, g, o, paths, read)
	if err != nil {
		return nil, err
	}
	found, unknown, err := release.AuditOSV(cmd.Context(), o.Catalog, read, at, db)
	if err != nil {
		return nil, err
	}
	if unknown > 0 {
		fmt.Fprintf(progressOf(cmd, g), "note: %d images have a base whose OS has no OSV ecosystem imagebake reads (Debian, Ubuntu, Alpine, Rocky Linux, AlmaLinux), or no package database: not audited against OSV\n", unknown)
	}
	return found, nil
}

// progressOf is where a command's notes go: its stderr, unless --quiet.
func progressOf(cmd *cobra.Command, g *globals) io.Writer {
	if g.quiet {
		return io.Discard
	}
	return cmd.ErrOrStderr()
}

// loadOSV reads the OSV advisories at paths that can bear on the bases of
// the releases of o (notes for bad records, a count of what was skipped),
// their manifests through read.
func loadOSV(cmd *cobra.Command, g *globals, o *catalog.Opened, paths []string, read release.ManifestFunc) (*osv.DB, error) {
	scope, err := release.ScopeOf(cmd.Context(), o.Catalog, read)
	if err != nil {
		return nil, err
	}
	ecos := scope.Ecosystems
	db, err := osv.LoadScoped(cmd.Context(), paths, scope)
	if err != nil {
		return nil, err
	}
	w := progressOf(cmd, g)
	for _, n := range db.Notes {
		fmt.Fprintf(w, "note: %s (left out)\n", n)
	}
	fmt.Fprintf(w, "read %d OSV records of %s from %d files; %d records of other ecosystems or of packages no base has passed over; %d affected entries of other ecosystems or GIT/SEMVER ranges skipped; %d left out (notes above)\n",
		db.Records, strings.Join(ecos, ", "), db.Files, db.Unconcerned, db.Skipped, len(db.Notes))
	return db, nil
}

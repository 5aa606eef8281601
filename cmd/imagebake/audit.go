package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
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
Each finding names the release, the package or module, its version, the
advisory (with its aliases) and the fixed version, and the release to cut.
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
			o, err := openCatalog(cmd.Context(), store, kr)
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
			if g.json {
				if found == nil {
					found = []release.Finding{}
				}
				if err := printJSON(cmd.OutOrStdout(), found); err != nil {
					return err
				}
			} else if len(found) > 0 {
				printFindings(cmd, found)
			}
			if len(found) > 0 {
				return fmt.Errorf("%w: %d finding(s) in %s", errAudit, len(found), o.Where)
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

func printFindings(cmd *cobra.Command, found []release.Finding) {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FAMILY\tRELEASE\tPACKAGE\tINSTALLED\tADVISORY\tFIXED\tCUT\tFROM")
	for _, f := range found {
		adv := f.Advisory
		if len(f.Aliases) > 0 {
			adv += " (" + strings.Join(f.Aliases, ", ") + ")"
		}
		name := f.Name
		if f.Kind == "module" {
			name = "module " + name
		}
		if f.Arches != "" {
			name += " on " + f.Arches
		}
		from := f.From
		if f.FixedIn != "" {
			from += " (fixed in " + f.FixedIn + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Family, f.Release, name, f.Have, adv, f.Fixed, f.Cut, from)
	}
	tw.Flush()
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

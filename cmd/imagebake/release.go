package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/nearest"
	"github.com/imagebake/imagebake/internal/osv"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/puppet"
	"github.com/imagebake/imagebake/release"
)

// candidateFlags name a release candidate: a control repo and a ref or release.
type candidateFlags struct {
	o        bake.Options
	cache    string
	previous string
	catalog  string
	kf       keyFlags
	opened   *catalog.Opened // --catalog, once loaded
	// compile bakes the candidate with the compile gate and diffs its
	// catalogs against the previous release's (--compile)
	compile bool
	// deps are the candidate's unmet module dependencies: the plan and
	// the check still judge the number, then exit 4 with them
	deps error
}

func (f *candidateFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.o.Repo, "repo", "", "control repo URL or path")
	cmd.Flags().StringVar(&f.previous, "previous", "", "manifest.toml of the previous release, or with --catalog its version (1.0.2)")
	cmd.Flags().StringVar(&f.catalog, "catalog", "", "the store or catalog (path or URL) the releases are published in: numbers already published there are not proposed or accepted")
	f.kf.register(cmd, false)
	addCacheFlag(cmd.Flags(), &f.cache)
	addContextFlag(cmd.Flags(), &f.o.Context)
	cmd.Flags().StringArrayVar(&f.o.Stores, "store", nil, "agent binaries store; repeat for a chain (default $IMAGEBAKE_STORES, then imagebake.toml's)")
	addAdvisoryFlag(cmd, &f.o.Advisories)
	cmd.Flags().BoolVar(&f.compile, "compile", false, "bake the candidate with the compile gate and show what it changes on each node: its catalogs against those the previous release keeps, resource by resource (nodes: imagebake.toml's [compile] nodes)")
}

// previousManifest reads --previous: a manifest file, or with --catalog
// the version of a release published there.
func (f *candidateFlags) previousManifest(ctx context.Context) (*manifest.Manifest, error) {
	_, statErr := os.Stat(f.previous)
	if statErr == nil || f.opened == nil {
		if statErr != nil && versionRE.MatchString(f.previous) {
			return nil, usageErr("--previous %s is a version, not a manifest.toml: a version names a release published in the store --catalog names (add --catalog STORE), or give the path of its manifest.toml", f.previous)
		}
		return manifest.Read(f.previous)
	}
	var fams, near []string
	for _, fam := range f.opened.Families {
		if fam.Release(f.previous) != nil {
			fams = append(fams, fam.Name)
		}
		for _, r := range fam.Releases {
			near = append(near, fam.Name+" "+r.Version)
		}
	}
	switch {
	case len(fams) == 0:
		return nil, fmt.Errorf("%w: --previous %s: no release %s is published in %s (it has: %s)",
			failure.ErrNotFound, f.previous, f.previous, f.opened.Where, strings.Join(nearest.Names(f.previous, near, 5), ", "))
	case len(fams) > 1:
		return nil, fmt.Errorf("%w: --previous %s: the families %s of %s all publish %s; give the path of the manifest.toml you mean",
			failure.ErrUsage, f.previous, strings.Join(fams, ", "), f.opened.Where, f.previous)
	}
	return f.opened.Manifest(ctx, fams[0], f.previous)
}

// versionRE is a release number X.Y.Z.
var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

// nextFree is, with --catalog, the number level takes after prev when
// the plain next one is published already ("": it is free, or no
// catalog).
func (f *candidateFlags) nextFree(family, prev string, level release.Level) (string, error) {
	if f.opened == nil {
		return "", nil
	}
	return release.NextFree(f.opened.Family(family, false), prev, level)
}

// addAdvisoryFlag adds --advisory, which declares a security release.
func addAdvisoryFlag(cmd *cobra.Command, to *[]string) {
	cmd.Flags().StringArrayVar(to, "advisory", nil, "a security advisory the release fixes (CVE-2014-0160, DSA-2896-1), or ID=NAME,... with the packages (binary or source) and modules it fixes (DSA-6001-1=openssl); declares a SECURITY release; repeatable (default $IMAGEBAKE_ADVISORIES, comma-separated)")
}

// load pins the candidate's inputs and reads the previous manifest.
func (f *candidateFlags) load(cmd *cobra.Command, g *globals) (prev, cand *manifest.Manifest, rules release.Rules, err error) {
	if f.o.Repo == "" || f.previous == "" {
		return nil, nil, rules, usageErr("--repo and --previous are required")
	}
	f.o.Stores = listSetting(f.o.Stores, envStores)
	if f.o.Compile.CacheMax, err = compileCacheMax(setting{}); err != nil {
		return nil, nil, rules, err
	}
	if f.o.Advisories, f.o.AdvisoryFixes, err = release.ParseAdvisories(listSetting(f.o.Advisories, envAdvisories)); err != nil {
		return nil, nil, rules, err
	}
	if f.o.Cache, err = cacheDir(f.cache); err != nil {
		return nil, nil, rules, err
	}
	if f.catalog != "" {
		kr, err := f.kf.keyring()
		if err != nil {
			return nil, nil, rules, err
		}
		guard, err := catalogGuard(f.cache, time.Time{})
		if err != nil {
			return nil, nil, rules, err
		}
		if f.opened, err = catalog.Open(cmd.Context(), f.catalog, kr, nil, guard); err != nil {
			return nil, nil, rules, err
		}
	}
	if prev, err = f.previousManifest(cmd.Context()); err != nil {
		return nil, nil, rules, err
	}
	if f.o.Release == "" {
		f.o.Release = prev.Release // the number is not known yet; the inputs do not depend on it
	}
	f.o.Version, f.o.Log = clientVersion(), g.progress()
	if cand, rules, err = bake.Plan(cmd.Context(), f.o); errors.Is(err, puppet.ErrDependencies) && cand != nil {
		f.deps = err
	} else if err != nil {
		return nil, nil, rules, err
	}
	rules.RepoFiles = bake.RepoChanges(cmd.Context(), f.o, prev.Repo.Commit, cand.Repo.Commit)
	return prev, cand, rules, nil
}

func newReleaseCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "release", Short: "Propose and check release numbers (MAJOR.MINOR.SECURITY)"}
	cmd.AddCommand(newReleasePlanCommand(g), newReleaseCheckCommand(g))
	return cmd
}

func newReleasePlanCommand(g *globals) *cobra.Command {
	pf := &candidateFlags{}
	var osvPaths []string
	plan := &cobra.Command{
		Use:   "plan --repo R --release-candidate REF --previous MANIFEST",
		Short: "Propose the next release number from the changes since the previous release",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pf.o.Ref == "" {
				return usageErr("--release-candidate is required (a branch, tag or commit)")
			}
			prev, cand, rules, err := pf.load(cmd, g)
			if err != nil {
				return err
			}
			var fixes []release.OSVFix
			if len(osvPaths) > 0 {
				db, err := osv.LoadScoped(cmd.Context(), osvPaths, release.ManifestScope(prev, cand))
				if err != nil {
					return err
				}
				for _, n := range db.Notes {
					fmt.Fprintf(progressOf(cmd, g), "note: %s (left out)\n", n)
				}
				fixes = release.OSVFixes(prev, cand, db)
				// a declared advisory's OSV record says what it fixes
				rules = release.ClaimsFromOSV(rules, fixes)
			}
			p, err := release.Propose(prev, cand, rules)
			if err != nil {
				return err
			}
			p.OSVFixes = fixes
			if free, err := pf.nextFree(cand.Family, prev.Release, release.LevelOf(p.Level)); err != nil {
				return err
			} else if free != "" {
				p.Note = strings.TrimPrefix(p.Note+"; ", "; ") + fmt.Sprintf("%s is published in %s already: the next free %s number on this line is %s", p.Next, pf.opened.Where, p.Level, free)
				p.Next = free
			}
			var changes *catalogChanges
			if pf.compile && p.Level != release.None.String() && pf.deps == nil {
				if changes, err = pf.catalogDiff(cmd.Context(), prev, p.Next); err != nil {
					return err
				}
			}
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), struct {
					*release.Plan
					Catalogs *catalogChanges `json:"catalogs,omitempty"`
				}{p, changes}); err != nil {
					return err
				}
				return pf.deps
			}
			printPlan(cmd.OutOrStdout(), p, changes)
			return pf.deps // the level is given; unmet dependencies still fail it
		},
	}
	pf.register(plan)
	plan.Flags().StringArrayVar(&osvPaths, "osv", nil, "OSV advisories (a .json file, a directory of them, an osv.dev .zip): list those the candidate's bases fix; repeatable")
	plan.Flags().StringVar(&pf.o.Ref, "release-candidate", "", "branch, tag or commit of the candidate")
	return plan
}

func newReleaseCheckCommand(g *globals) *cobra.Command {
	cf := &candidateFlags{}
	var number string
	check := &cobra.Command{
		Use:   "check --release X.Y.Z --repo R --previous MANIFEST [--release-candidate REF]",
		Short: "Refuse a release number that breaks the rules (exit 4), naming the change that breaks it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if number == "" {
				return usageErr("--release is required")
			}
			cf.o.Release = number
			prev, cand, rules, err := cf.load(cmd, g)
			if errors.Is(err, bake.ErrTagNotFound) && cf.o.Ref == "" {
				return fmt.Errorf("%w\n(not tagged yet? check a branch or commit before tagging it: --release-candidate REF)", err)
			}
			if err != nil {
				return err
			}
			if cf.opened != nil {
				if fam := cf.opened.Family(cand.Family, false); fam != nil && fam.Release(number) != nil {
					return fmt.Errorf("%w: %s %s is published in %s already; a release number names one content (plan the next one: imagebake release plan --catalog %s)",
						release.ErrNumber, cand.Family, number, cf.opened.Where, cf.catalog)
				}
			}
			if err := release.Check(prev, cand, number, rules); err != nil {
				return err
			}
			fmt.Fprintf(g.progress(), "%s follows %s by the rules\n", number, prev.Release)
			if cf.compile && cf.deps == nil {
				changes, err := cf.catalogDiff(cmd.Context(), prev, number)
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), struct {
						Catalogs *catalogChanges `json:"catalogs"`
					}{changes})
				}
				changes.print(cmd.OutOrStdout())
			}
			return cf.deps
		},
	}
	cf.register(check)
	check.Flags().StringVar(&number, "release", "", "the number to check")
	check.Flags().StringVar(&cf.o.Ref, "release-candidate", "", "branch, tag or commit of the candidate (default: tag vX.Y.Z)")
	return check
}

// printPlan writes a plan for people: the number, each change, the OSV
// advisories the candidate fixes, and what it changes on the nodes.
func printPlan(w io.Writer, p *release.Plan, changes *catalogChanges) {
	if p.Level == release.None.String() {
		fmt.Fprintf(w, "no change since %s: no release needed\n", p.Previous)
		return
	}
	fmt.Fprintf(w, "next release: %s (%s after %s)\n", p.Next, p.Level, p.Previous)
	if len(p.Advisories) > 0 {
		fmt.Fprintf(w, "advisories: %s\n", strings.Join(p.Advisories, ", "))
	}
	for _, c := range p.Changes {
		fmt.Fprintf(w, "  %-8s %s: %s\n", c.Level, c.What, c.Reason)
	}
	if p.Note != "" {
		fmt.Fprintf(w, "note: %s\n", p.Note)
	}
	if len(p.OSVFixes) > 0 {
		fmt.Fprintf(w, "OSV advisories the candidate fixes (declare a security release with them):\n")
		for _, f := range p.OSVFixes {
			fmt.Fprintf(w, "  %s\n", f)
		}
		fmt.Fprintf(w, "  %s\n", strings.Join(release.AdvisoryFlags(p.OSVFixes), " "))
	}
	if changes != nil {
		changes.print(w)
	}
}

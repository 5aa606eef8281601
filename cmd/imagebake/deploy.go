package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/deploy"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/osv"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/release"
)

// deployFlags are the flags the deploy-file verbs share.
type deployFlags struct {
	keyFlags
	catalog string
	now     string
	lock    string // check --lock
}

func (f *deployFlags) register(cmd *cobra.Command) {
	f.keyFlags.register(cmd, false)
	cmd.Flags().StringVar(&f.catalog, "catalog", "", "catalog: a store directory, s3://BUCKET/PREFIX, a catalog.toml, or an http(s) URL of one (default: the file's catalog:)")
	cmd.Flags().StringVar(&f.now, "now", "", "the date to judge lifecycles at, YYYY-MM-DD or RFC 3339 (default: now)")
}

func (f *deployFlags) clock() (time.Time, error) {
	if f.now == "" {
		return time.Now().UTC(), nil
	}
	return parseDate(f.now)
}

// load reads the deploy file and its catalog (signature checked).
func (f *deployFlags) load(cmd *cobra.Command, name string) (*deploy.File, *catalog.Opened, error) {
	df, err := deploy.Load(name)
	if err != nil {
		return nil, nil, err
	}
	src := f.catalog
	if src == "" {
		src = df.Catalog
		if src != "" && !strings.Contains(src, "://") && !filepath.IsAbs(src) {
			src = filepath.Join(filepath.Dir(name), src)
		}
	}
	if src == "" {
		return nil, nil, usageErr("%s names no catalog: add catalog: to it or pass --catalog", name)
	}
	kr, err := f.keyring()
	if err != nil {
		return nil, nil, err
	}
	now, err := f.clock()
	if err != nil {
		return nil, nil, err
	}
	guard, err := catalogGuard("", now)
	if err != nil {
		return nil, nil, err
	}
	o, err := catalog.Open(cmd.Context(), src, kr, nil, guard)
	if err != nil {
		return nil, nil, err
	}
	if o.Notice != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), o.Notice)
	}
	return df, o, nil
}

func newSelectCommand(g *globals) *cobra.Command {
	f := &deployFlags{}
	var lock string
	cmd := &cobra.Command{
		Use:   "select deploy.yaml [--catalog C] [--json] [--lock deploy.lock]",
		Short: "Resolve each selection of a deploy file to its exact release and per-arch images (obsolete and revoked releases refused, exit 4)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			now, err := f.clock()
			if err != nil {
				return err
			}
			df, o, err := f.load(cmd, args[0])
			if err != nil {
				return err
			}
			c, src := o.Catalog, o.Where
			var all []*deploy.Resolved
			var errs []error
			for _, s := range df.Selections {
				r, err := deploy.Resolve(c, src, s)
				if err == nil {
					var warn string
					if warn, err = deploy.Usable(r); warn != "" {
						fmt.Fprintln(progressOf(cmd, g), warn)
					}
					// what check would say (end of life, a missing security
					// release): select hands the release out, with a warning
					for _, fd := range deploy.Check(r, now) {
						if fd.Severity == "error" && err == nil && !strings.Contains(warn, fd.Msg) {
							fmt.Fprintf(progressOf(cmd, g), "%s: warning: %s (imagebake check fails on it)\n", fd.Pos, fd.Msg)
						}
					}
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				all = append(all, r)
			}
			if err := failure.Worst(errs...); err != nil {
				return err // nothing written: a pipeline must not take a partial selection
			}
			if lock != "" {
				if err := deploy.WriteLock(lock, deploy.NewLock(lock, args[0], src, all)); err != nil {
					return err
				}
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), all)
			}
			// locations relative to the store become the store's: a path or URL
			store := strings.TrimSuffix(strings.TrimSuffix(src, "catalog.toml"), "catalog/")
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "SELECTION\tRELEASE\tIMAGE\tDIGEST\tLOCATION\tPULL")
			for _, r := range all {
				for _, im := range r.Images {
					loc := im.Location
					if !strings.Contains(loc, "://") && !strings.HasPrefix(loc, "/") {
						loc = store + loc
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", label(r.Key, r.Family), r.Release, im.Name, im.Digest, loc, orDash(im.Pull))
				}
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&lock, "lock", "", "also write the exact selection (each image's digest) to this file, for check --lock (docs/deploy-files.md)")
	return cmd
}

func label(key, family string) string {
	if key == "" {
		return family
	}
	return key
}

// checkLong is check's --help.
const checkLong = `Check every selection against the catalog's lifecycle: an end-of-life major
warns inside its notice window and fails after; a deprecated release warns;
obsolete and revoked releases fail; a release below the newest security
release of its minor line warns during the grace days and fails after. A
release lacking the fix of an advisory another release of the family
published (a backport, a forward port) or, with --osv, affected by an OSV
advisory, is named with the release to move to: a warning during the grace
days after that release, an error after; a warning while no release
carries the fix.
Exit codes: 0 nothing or only warnings, 3 a selection matches no release,
4 a policy error, 2 a malformed file.`

func newCheckCommand(g *globals) *cobra.Command {
	f := &deployFlags{}
	var osvPaths []string
	cmd := &cobra.Command{
		Use:   "check deploy.yaml [--catalog C] [--now DATE] [--lock deploy.lock]",
		Short: "The CI gate: exit 0 (warnings printed), 4 on a policy error, 3 when a selection matches nothing",
		Long:  checkLong,
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return runCheck(cmd, g, f, osvPaths, args[0]) },
	}
	f.register(cmd)
	cmd.Flags().StringArrayVar(&osvPaths, "osv", nil, "OSV advisories: a .json file, a directory of them, or an osv.dev .zip (repeatable)")
	cmd.Flags().StringVar(&f.lock, "lock", "", "also check the lock select --lock wrote: still what the file selects (a stale lock: exit 4), with the same digests (exit 4 otherwise)")
	return cmd
}

// runCheck is check: every selection of the deploy file name against the
// lifecycle and the security fixes, each finding at its position, then a
// summary; the exit code is the worst of them.
func runCheck(cmd *cobra.Command, g *globals, f *deployFlags, osvPaths []string, name string) error {
	now, err := f.clock()
	if err != nil {
		return err
	}
	df, o, err := f.load(cmd, name)
	if err != nil {
		return err
	}
	c, src := o.Catalog, o.Where
	read := release.Memo(o.Manifest) // each manifest read once, for OSV's scope and the check
	var db *osv.DB
	if len(osvPaths) > 0 {
		if db, err = loadOSV(cmd, g, o, osvPaths, read); err != nil {
			return err
		}
	}
	rep, err := deploy.CheckAll(cmd.Context(), df, c, src, read, db, now)
	if err != nil {
		return err
	}
	lockErr := checkLock(cmd, f.lock, df, rep.Resolved, c)
	findings, passed := rep.Findings, rep.Passed
	if g.json {
		if findings == nil {
			findings = []deploy.Finding{}
		}
		if err := printJSON(cmd.OutOrStdout(), findings); err != nil {
			return err
		}
	} else {
		for _, fd := range findings {
			fmt.Fprintln(cmd.OutOrStdout(), fd)
		}
		for _, p := range passed {
			fmt.Fprintln(cmd.OutOrStdout(), p)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %d selection(s): %d pass, %d with warnings, %d fail, %d match nothing\n",
			name, len(df.Selections), len(passed), rep.Warned, rep.Failed, len(rep.Missing))
	}
	return failure.Worst(rep.Err(name), lockErr)
}

// checkLock compares the deploy lock at path (none: nothing to do) with
// what the file df selects now (all, as check resolved it), printing what matches and what does not;
// a stale lock or a changed digest is ErrVerify (exit 4).
func checkLock(cmd *cobra.Command, path string, df *deploy.File, all []*deploy.Resolved, c *catalog.Catalog) error {
	if path == "" {
		return nil
	}
	l, err := deploy.ReadLock(path)
	if err != nil {
		return err
	}
	ok, stale, changed := deploy.CompareLock(l, df, all, c)
	for _, s := range ok {
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", path, s)
	}
	for _, s := range append(stale, changed...) {
		fmt.Fprintf(cmd.OutOrStdout(), "%s: error: %s\n", path, s)
	}
	if n := len(stale) + len(changed); n > 0 {
		return fmt.Errorf("%w: %s: %d locked selection(s) no longer match", failure.ErrVerify, path, n)
	}
	return nil
}

// printSteps prints an upgrade plan: per selection the move (or why it
// stays), the security releases crossed, notes, and for a major move what
// breaks.
func printSteps(w io.Writer, steps []deploy.Step) {
	for _, s := range steps {
		if s.Withdrawn != "" {
			fmt.Fprintf(w, "%s: %s\n", label(s.Key, s.Family), s.Withdrawn)
		}
		if s.From == s.To {
			switch {
			case s.Note != "":
				fmt.Fprintf(w, "%s: %s %s stays: %s\n", label(s.Key, s.Family), s.Family, s.From, s.Note)
			case s.Withdrawn == "":
				fmt.Fprintf(w, "%s: %s %s is the newest in scope\n", label(s.Key, s.Family), s.Family, s.From)
			}
			continue
		}
		fmt.Fprintf(w, "%s: %s %s -> %s", label(s.Key, s.Family), s.Family, s.From, s.To)
		if s.NewValue != "" {
			fmt.Fprintf(w, " (version: %s)", s.NewValue)
		}
		fmt.Fprintln(w)
		if len(s.Security) > 0 {
			fmt.Fprintf(w, "  security releases crossed: %s", strings.Join(s.Security, ", "))
			if len(s.Advisories) > 0 {
				fmt.Fprintf(w, ", fixing %s", strings.Join(s.Advisories, ", "))
			}
			fmt.Fprintln(w)
		}
		if s.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", s.Note)
		}
		if s.MajorMove {
			fmt.Fprint(w, deploy.Breaks(s))
		}
	}
}

func newUpgradeCommand(g *globals) *cobra.Command {
	f := &deployFlags{}
	var patch, minor, major, write bool
	cmd := &cobra.Command{
		Use:   "upgrade deploy.yaml [--patch|--minor|--major] [--write]",
		Short: "Plan (and with --write, apply) the move to the newest release: same major by default",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			scope := deploy.Minor
			switch {
			case patch && (minor || major), minor && major:
				return usageErr("give one of --patch, --minor, --major")
			case patch:
				scope = deploy.Patch
			case major:
				scope = deploy.Major
			}
			df, o, err := f.load(cmd, args[0])
			if err != nil {
				return err
			}
			c, src := o.Catalog, o.Where
			// the selections that resolve are planned; each moves only where
			// no fix of its line is lacking (manifests read once each)
			steps, failed := deploy.Upgrade(cmd.Context(), c, src, df, scope, release.Memo(o.Manifest))
			if failed != nil && len(steps) == 0 {
				return failed
			}
			for i := range steps {
				if steps[i].MajorMove {
					deploy.CompareMajor(cmd.Context(), o, &steps[i])
				}
			}
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), steps); err != nil {
					return err
				}
			} else {
				printSteps(cmd.OutOrStdout(), steps)
			}
			if failed != nil {
				if write {
					return fmt.Errorf("%s not changed: %w", args[0], failed)
				}
				return failed
			}
			if !write {
				if !g.json {
					fmt.Fprintln(cmd.ErrOrStderr(), "(dry run: --write changes the file)")
				}
				return nil
			}
			written, err := deploy.WriteFile(cmd.Context(), df, steps)
			if err != nil {
				return err
			}
			if !g.json {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s written\n", written)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&patch, "patch", false, "stay in the same major.minor")
	cmd.Flags().BoolVar(&minor, "minor", false, "stay in the same major (the default)")
	cmd.Flags().BoolVar(&major, "major", false, "cross majors; prints what breaks and how to proceed")
	cmd.Flags().BoolVar(&write, "write", false, "rewrite the version values in place, keeping comments and formatting")
	return cmd
}

func fileMode(name string) os.FileMode {
	if fi, err := os.Stat(name); err == nil {
		return fi.Mode().Perm()
	}
	return 0o644
}

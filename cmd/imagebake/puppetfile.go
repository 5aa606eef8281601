package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/internal/gitcache"
	"github.com/imagebake/imagebake/internal/stall"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/puppet"
	"github.com/imagebake/imagebake/puppet/puppetfile"
)

// pfFlags are the flags the puppetfile verbs share.
type pfFlags struct {
	puppetfile string
	lock       string
	noLock     bool
	cache      string
	forge      string
	jobs       int
	epoch      string
	branch     string
	stall      time.Duration
	noSpec     bool
	ignoreDeps bool
	context    string // lock: where imagebake.toml's paths are relative to
}

func (f *pfFlags) register(cmd *cobra.Command, withLock bool) {
	cmd.Flags().StringVar(&f.puppetfile, "puppetfile", "Puppetfile", "the Puppetfile to read")
	addCacheFlag(cmd.Flags(), &f.cache)
	cmd.Flags().StringVar(&f.forge, "forge", "", "Forge API URL (default: the Puppetfile's forge line, else "+"https://forgeapi.puppet.com)")
	cmd.Flags().IntVar(&f.jobs, "jobs", 0, "modules fetched at once (default 4 per CPU)")
	cmd.Flags().DurationVar(&f.stall, "stall-timeout", 0, "stop a fetch from a remote that sends nothing for this long (default $IMAGEBAKE_STALL_TIMEOUT, else "+gitcache.DefaultStall.String()+")")
	cmd.Flags().StringVar(&f.branch, "control-branch", "", "branch that :branch => :control_branch means")
	cmd.Flags().BoolVar(&f.noSpec, "exclude-spec", false, "drop spec/ from modules that do not set :exclude_spec (r10k 5.x's default; without it spec/ is kept, as r10k 3.x does)")
	cmd.Flags().BoolVar(&f.ignoreDeps, "ignore-dependencies", false, "install modules whose metadata.json dependencies are not pinned in range")
	if withLock {
		cmd.Flags().StringVar(&f.lock, "lock", "", "Puppetfile.lock to build exactly (default: Puppetfile.lock beside the Puppetfile, if there)")
	}
}

// read reads the Puppetfile and the options every subcommand passes on.
func (f *pfFlags) read(g *globals) (*puppetfile.Puppetfile, []puppet.Option, error) {
	pf, err := puppetfile.ReadFile(f.puppetfile)
	if err != nil {
		return nil, nil, err
	}
	pf.DefaultExcludeSpec(f.noSpec)
	opts, err := f.options(g)
	return pf, opts, err
}

func (f *pfFlags) options(g *globals) ([]puppet.Option, error) {
	dir, err := cacheDir(f.cache)
	if err != nil {
		return nil, err
	}
	opts := []puppet.Option{puppet.WithCache(dir), puppet.WithLog(g.progress())}
	if f.forge != "" {
		opts = append(opts, puppet.WithForge(f.forge))
	}
	if f.jobs > 0 {
		opts = append(opts, puppet.WithJobs(f.jobs))
	}
	if f.stall == 0 {
		f.stall = stall.Current() // IMAGEBAKE_STALL_TIMEOUT, resolved once (root.go)
	}
	if f.stall > 0 {
		opts = append(opts, puppet.WithStall(f.stall))
	}
	if f.branch != "" {
		opts = append(opts, puppet.WithControlBranch(f.branch))
	}
	if f.ignoreDeps {
		opts = append(opts, puppet.WithoutDependencyCheck())
	}
	ep, err := sourceDateEpoch(f.epoch)
	if err != nil {
		return nil, err
	}
	if !ep.IsZero() {
		opts = append(opts, puppet.WithEpoch(ep))
	}
	return opts, nil
}

// loadLock returns the lock named by --lock, or the one beside the
// Puppetfile when it exists, or nil.
func (f *pfFlags) loadLock(g *globals) (*lockfile.Lock, error) {
	if f.noLock {
		return nil, nil
	}
	name := f.lock
	if name == "" {
		name = f.puppetfile + ".lock"
		if _, err := os.Stat(name); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		fmt.Fprintf(g.progress(), "using %s\n", name)
	}
	return lockfile.Read(name)
}

func newPuppetfileCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "puppetfile",
		Short: "Lock, install, verify and show the modules of a Puppetfile",
	}
	cmd.AddCommand(newPuppetfileLockCommand(g), newPuppetfileInstallCommand(g), newPuppetfileVerifyCommand(g), newPuppetfileShowCommand(g), newPuppetfileCheckCommand(g))
	return cmd
}

func newPuppetfileLockCommand(g *globals) *cobra.Command {
	f := &pfFlags{}
	var out string
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Resolve every module to an exact pin and write Puppetfile.lock",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pf, opts, err := f.read(g)
			if err != nil {
				return err
			}
			opts = append(opts, basePlatforms(cmd, f.puppetfile, f.context, g)...)
			lk, err := puppet.Lock(cmd.Context(), pf, opts...)
			if err != nil {
				return err
			}
			if out == "" {
				out = f.puppetfile + ".lock"
			}
			if err := lk.Write(out); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), lk)
			}
			fmt.Fprintf(g.progress(), "locked %d modules into %s\n", len(lk.Modules), out)
			return nil
		},
	}
	f.register(cmd, false)
	addContextFlag(cmd.Flags(), &f.context)
	cmd.Flags().StringVar(&out, "out", "", "where to write the lock (default: the Puppetfile's path + .lock)")
	return cmd
}

func newPuppetfileInstallCommand(g *globals) *cobra.Command {
	f := &pfFlags{}
	var moddir string
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Materialise the modules into the module dir, deterministically",
		Long: `Materialise every module into the module dir: no .git, modes 0644/0755,
mtimes at --source-date-epoch (or each git module's commit time). With a lock
(--lock, or Puppetfile.lock beside the Puppetfile) exactly its pins are built
and a stale lock is refused. Modules already in place are left alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pf, opts, err := f.read(g)
			if err != nil {
				return err
			}
			lk, err := f.loadLock(g)
			if err != nil {
				return err
			}
			env := filepath.Dir(f.puppetfile)
			if moddir == "" {
				moddir = filepath.Join(env, pf.Moduledir)
				if pf.Moduledir == "" {
					moddir = filepath.Join(env, puppet.DefaultModuledir)
				}
			}
			rep, err := puppet.Install(cmd.Context(), pf, lk, env, moddir, opts...)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			fmt.Fprintf(g.progress(), "%d modules installed, %d unchanged, %d removed in %s\n", len(rep.Installed), len(rep.Unchanged), len(rep.Removed), moddir)
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().StringVar(&moddir, "moduledir", "", "where to install (default: the Puppetfile's moduledir beside it)")
	cmd.Flags().StringVar(&f.epoch, "source-date-epoch", "", "mtime of every file, seconds since 1970 (default $SOURCE_DATE_EPOCH)")
	cmd.Flags().BoolVar(&f.noLock, "no-lock", false, "ignore Puppetfile.lock beside the Puppetfile and resolve afresh")
	return cmd
}

func newPuppetfileVerifyCommand(g *globals) *cobra.Command {
	f := &pfFlags{}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check a lock against its Puppetfile and upstream (exit 4 on any mismatch or drift)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pf, opts, err := f.read(g)
			if err != nil {
				return err
			}
			if f.lock == "" {
				f.lock = f.puppetfile + ".lock"
			}
			lk, err := lockfile.Read(f.lock)
			if err != nil {
				return err
			}
			problems, err := puppet.Verify(cmd.Context(), pf, lk, opts...)
			if g.json {
				if problems == nil {
					problems = []string{}
				}
				if jerr := printJSON(cmd.OutOrStdout(), map[string]any{"ok": err == nil, "problems": problems}); jerr != nil {
					return jerr
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.progress(), "%s matches %s and upstream (%d modules)\n", f.lock, f.puppetfile, len(lk.Modules))
			return nil
		},
	}
	f.register(cmd, true)
	return cmd
}

func newPuppetfileShowCommand(g *globals) *cobra.Command {
	f := &pfFlags{}
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print each module's pin (from the lock, or resolved now)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pf, opts, err := f.read(g)
			if err != nil {
				return err
			}
			lk, err := f.loadLock(g)
			if err != nil {
				return err
			}
			if lk != nil {
				if diffs := puppet.Stale(pf, lk, opts...); len(diffs) > 0 {
					return fmt.Errorf("%w against %s:\n  %s", puppet.ErrLockStale, pf.Path, strings.Join(diffs, "\n  "))
				}
			} else if lk, err = puppet.Lock(cmd.Context(), pf, opts...); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), lk)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "MODULE\tKIND\tREF\tPIN\tPATH")
			for _, m := range lk.Modules {
				ref := m.Ref
				if m.RefType != "" {
					ref = m.RefType + " " + m.Ref
				}
				if ref == "" {
					ref = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.Kind, ref, m.Pin(), m.Path)
			}
			return tw.Flush()
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&f.noLock, "no-lock", false, "ignore Puppetfile.lock and resolve afresh")
	return cmd
}

func newPuppetfileCheckCommand(g *globals) *cobra.Command {
	var name, cache, context string
	var deep bool
	cmd := &cobra.Command{
		Use:   "check [--puppetfile P]",
		Short: "Parse and validate a Puppetfile offline: every error, each as FILE:LINE:COL (exit 2), or a summary",
		Long: `check parses and validates the Puppetfile without network or cache,
like r10k puppetfile check. A valid file gets a one-line summary of its
modules by kind (exit 0); an invalid one every error, each as
FILE:LINE:COL: message, at most 50 with a count of the rest (exit 2).
With --deep it also resolves every module (fetching git remotes and asking
the Forge, as lock does, writing nothing) and checks that every dependency
the git modules' metadata.json names is pinned in its range, and that the
Puppet each base of the imagebake.toml beside the Puppetfile carries is one
the modules' requirements (puppet or openvox) allow (exit 4).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pf, err := puppetfile.ReadFile(name)
			if err != nil {
				return err
			}
			kinds := map[puppetfile.Kind]int{}
			for _, m := range pf.Modules {
				kinds[m.Kind]++
			}
			if deep {
				dir, err := cacheDir(cache)
				if err != nil {
					return err
				}
				opts := append([]puppet.Option{puppet.WithCache(dir), puppet.WithLog(g.progress()), puppet.WithStall(stall.Current())}, basePlatforms(cmd, name, context, g)...)
				if _, err := puppet.Lock(cmd.Context(), pf, opts...); err != nil {
					return err
				}
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"path": pf.Path, "modules": len(pf.Modules), "by_kind": kinds, "notes": pf.Notes})
			}
			w := cmd.OutOrStdout()
			for _, n := range pf.Notes {
				fmt.Fprintf(w, "note: %s\n", n)
			}
			fmt.Fprintf(w, "%s: valid, %d modules (%d git, %d forge, %d local)\n", pf.Path, len(pf.Modules), kinds[puppetfile.Git], kinds[puppetfile.Forge], kinds[puppetfile.Local])
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "puppetfile", "Puppetfile", "the Puppetfile to check")
	cmd.Flags().BoolVar(&deep, "deep", false, "also resolve every module (fetching) and check the dependencies in their metadata.json, and their Puppet requirements against the bases imagebake.toml (beside the Puppetfile) names")
	addContextFlag(cmd.Flags(), &context)
	addCacheFlag(cmd.Flags(), &cache)
	return cmd
}

// basePlatforms are the Puppets of the bases the imagebake.toml beside the
// Puppetfile names (paths relative to contextDir), as Lock options: each
// module's Puppet requirement is checked against them before any bake.
// Nothing when there is no imagebake.toml; a base it cannot read is a note.
func basePlatforms(cmd *cobra.Command, puppetfilePath, contextDir string, g *globals) []puppet.Option {
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(puppetfilePath), bake.ConfigName))
	if err != nil {
		return nil
	}
	cfg, err := bake.ParseConfig(raw)
	if err != nil {
		fmt.Fprintf(g.progress(), "note: %s beside %s: %v: modules' Puppet requirements are checked at bake time\n", bake.ConfigName, puppetfilePath, err)
		return nil
	}
	ps, notes := bake.BasePlatforms(cmd.Context(), cfg, bake.Options{Context: contextDir})
	for _, n := range notes {
		fmt.Fprintf(g.progress(), "note: %s\n", n)
	}
	return []puppet.Option{puppet.WithPlatforms(ps...)}
}

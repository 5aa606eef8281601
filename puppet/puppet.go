// Package puppet turns a Puppetfile into exact pins (a lock) and a
// deterministic module tree.
//
// Data flows one way: a parsed Puppetfile (package puppetfile) is resolved
// against git mirrors (package gitcache) and a Forge (package forge) into a
// lock (package manifests/lockfile); Install materialises a lock into a
// module directory. With a committed lock, the lock is law: Install builds
// exactly its commits and checksums and refuses a lock that no longer
// matches the Puppetfile.
package puppet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/gitcache"
	"github.com/imagebake/imagebake/internal/stall"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/puppet/forge"
	"github.com/imagebake/imagebake/puppet/metadata"
	"github.com/imagebake/imagebake/puppet/puppetfile"
)

// DefaultModuledir is r10k's module dir when the Puppetfile names none.
const DefaultModuledir = "modules"

// ErrLockStale marks a lock that does not match its Puppetfile.
var ErrLockStale = fmt.Errorf("stale lock (Puppetfile.lock): %w", failure.ErrVerify)

// ErrDrift marks upstream refs that moved away from the lock.
var ErrDrift = fmt.Errorf("upstream drifted from the lock: %w", failure.ErrVerify)

type config struct {
	cacheDir      string
	forgeURL      string
	jobs          int
	http          *http.Client
	log           io.Writer
	epoch         time.Time
	controlBranch string
	noState       bool
	lockChecked   bool
	stall         time.Duration
	ignoreDeps    bool
	depsTo        func(error)
	platforms     []Platform
	remaps        []gitcache.Remap
}

// WithRemaps fetches moved remotes from their new home (--remap OLD=NEW);
// the pins are checked as ever.
func WithRemaps(r []gitcache.Remap) Option { return func(c *config) { c.remaps = r } }

// WithPlatforms checks each module's Puppet requirement against the
// Puppets its modules will run on (the bases'), with the dependencies.
func WithPlatforms(ps ...Platform) Option { return func(c *config) { c.platforms = ps } }

// Option configures Lock, Install and Verify.
type Option func(*config)

// WithCache sets the cache directory (git mirrors, Forge tarballs, install state).
func WithCache(dir string) Option { return func(c *config) { c.cacheDir = dir } }

// WithForge overrides the Forge API URL of the Puppetfile's forge line.
func WithForge(url string) Option { return func(c *config) { c.forgeURL = url } }

// WithJobs sets how many modules are fetched at once.
func WithJobs(n int) Option { return func(c *config) { c.jobs = n } }

// WithHTTPClient sets the client for the Forge.
func WithHTTPClient(h *http.Client) Option { return func(c *config) { c.http = h } }

// WithStall stops a fetch that shows no progress for d (a hung or
// stalled remote); 0 means gitcache.DefaultStall.
func WithStall(d time.Duration) Option { return func(c *config) { c.stall = d } }

// WithLog sets where progress and warnings go (stderr in the CLI).
func WithLog(w io.Writer) Option { return func(c *config) { c.log = w } }

// WithEpoch sets every installed file's mtime. Without it, a git module's
// files get its commit's time and a Forge module's keep the tarball's.
func WithEpoch(t time.Time) Option { return func(c *config) { c.epoch = t } }

// WithControlBranch names the control repo branch that
// `:branch => :control_branch` means.
func WithControlBranch(b string) Option { return func(c *config) { c.controlBranch = b } }

// WithoutInstallState makes Install write every module and remember
// nothing: for a one-shot module dir such as a bake's staging tree.
func WithoutInstallState() Option { return func(c *config) { c.noState = true } }

// WithoutDependencyCheck installs modules whose metadata.json names
// dependencies that are not pinned in range (the user knows better).
func WithoutDependencyCheck() Option { return func(c *config) { c.ignoreDeps = true } }

// WithDependencyReport hands unmet dependencies (ErrDependencies) to
// report instead of failing: Lock goes on and returns its lock, so a
// release plan still gives the level and lists them.
func WithDependencyReport(report func(error)) Option {
	return func(c *config) { c.depsTo = report }
}

// WithLockChecked tells Install that the caller has already compared the
// lock with the Puppetfile (with Stale) and refused a stale one.
func WithLockChecked() Option { return func(c *config) { c.lockChecked = true } }

func newConfig(opts []Option) *config {
	c := &config{jobs: 4 * runtime.NumCPU(), http: stall.Client(0), log: io.Discard}
	for _, o := range opts {
		o(c)
	}
	if c.jobs < 1 {
		c.jobs = 1
	}
	return c
}

func (c *config) forge(pf *puppetfile.Puppetfile) string {
	switch {
	case c.forgeURL != "":
		return c.forgeURL
	case pf.Forge != "":
		return pf.Forge
	}
	return forge.DefaultURL
}

func (c *config) logf(format string, args ...any) { fmt.Fprintf(c.log, format, args...) }

func moduledir(pf *puppetfile.Puppetfile) string {
	if pf.Moduledir != "" {
		return pf.Moduledir
	}
	return DefaultModuledir
}

// entry is the lock entry a Puppetfile module would have, without its pin.
func entry(pf *puppetfile.Puppetfile, m puppetfile.Module, forgeURL string) lockfile.Module {
	e := lockfile.Module{Name: m.Name, Kind: string(m.Kind), Path: m.Dir(moduledir(pf)), ExcludeSpec: m.ExcludeSpec}
	switch m.Kind {
	case puppetfile.Git:
		// never a credential in a lock: it is committed
		e.Source, e.RefType, e.Ref = gitcache.Redact(m.Source), string(m.RefType), m.Ref
	case puppetfile.Forge:
		e.Source, e.Ref = forgeURL, m.Version
	}
	return e
}

// Stale lists how lk differs from what pf declares, one line each; none
// means the lock fits. Comments and layout of the Puppetfile do not matter,
// only what each module asks for.
func Stale(pf *puppetfile.Puppetfile, lk *lockfile.Lock, opts ...Option) []string {
	c := newConfig(opts)
	var out []string
	names := map[string]bool{}
	if lk.Moduledir != moduledir(pf) {
		out = append(out, fmt.Sprintf("moduledir: %q in the Puppetfile, %q in the lock", moduledir(pf), lk.Moduledir))
	}
	for _, m := range pf.Modules {
		names[m.Name] = true
		want := entry(pf, m, c.forge(pf))
		got, ok := lk.Find(m.Name)
		if !ok {
			out = append(out, fmt.Sprintf("module %q: in the Puppetfile (%s), not in the lock", m.Name, m.Pos))
			continue
		}
		diff := func(what, p, l string) {
			if p != l {
				out = append(out, fmt.Sprintf("module %q: %s %q in the Puppetfile (%s), %q in the lock", m.Name, what, p, m.Pos, l))
			}
		}
		diff("kind", want.Kind, got.Kind)
		diff("source", want.Source, got.Source)
		diff("ref type", want.RefType, got.RefType)
		diff("ref", want.Ref, got.Ref)
		diff("path", want.Path, got.Path)
		diff("exclude_spec", fmt.Sprint(want.ExcludeSpec), fmt.Sprint(got.ExcludeSpec))
	}
	for _, m := range lk.Modules {
		if !names[m.Name] {
			out = append(out, fmt.Sprintf("module %q: in the lock, no longer in the Puppetfile", m.Name))
		}
	}
	return out
}

// Drift is an upstream change seen against a lock.
type Drift struct {
	Module string `json:"module"`
	Ref    string `json:"ref"`    // "tag v1.0.0"
	Locked string `json:"locked"` // commit or sha256 in the lock
	Now    string `json:"now"`    // what upstream has now; "" when the ref is gone
	Source string `json:"source"`
}

func (d Drift) String() string {
	if d.Now == "" {
		return fmt.Sprintf("module %q: %s is gone from %s (locked %s)", d.Module, d.Ref, d.Source, d.Locked)
	}
	return fmt.Sprintf("module %q: %s in %s moved: locked %s, now %s", d.Module, d.Ref, d.Source, d.Locked, d.Now)
}

// Lock resolves every module of pf to an exact pin, fetching every git
// remote afresh and asking the Forge for each release's checksum.
func Lock(ctx context.Context, pf *puppetfile.Puppetfile, opts ...Option) (*lockfile.Lock, error) {
	c := newConfig(opts)
	r, err := newResolver(c, pf)
	if err != nil {
		return nil, err
	}
	pins := make([]lockfile.Module, len(pf.Modules))
	metas := make([]*metadata.Metadata, len(pf.Modules))
	notes := make([]string, len(pf.Modules))
	err = parallel(ctx, c.jobs, len(pf.Modules), func(ctx context.Context, i int) error {
		var err error
		pins[i], metas[i], notes[i], err = r.resolveMeta(ctx, pf.Modules[i], true, true)
		return err
	})
	if err != nil {
		return nil, err
	}
	byName := map[string]*metadata.Metadata{}
	for i, m := range pf.Modules {
		if metas[i] != nil {
			byName[m.Name] = metas[i]
		}
		if notes[i] != "" {
			c.logf("note: %s\n", notes[i])
		}
	}
	// Forge modules' dependencies are read once their tarballs are
	// installed; git modules' are checked here
	if !c.ignoreDeps {
		err := errors.Join(CheckDependencies(pf, pins, byName), CheckPuppet(pf, byName, c.platforms))
		if err != nil {
			if c.depsTo == nil {
				return nil, err
			}
			c.depsTo(err)
		}
	}
	return newLock(pf, r.forgeURL, pins), nil
}

func newLock(pf *puppetfile.Puppetfile, forgeURL string, pins []lockfile.Module) *lockfile.Lock {
	lk := &lockfile.Lock{Version: lockfile.FormatVersion, Puppetfile: pf.SHA256, Moduledir: moduledir(pf), Modules: pins}
	for _, m := range pf.Modules {
		if m.Kind == puppetfile.Forge {
			lk.Forge = forgeURL
		}
	}
	lk.Sort()
	return lk
}

// parallel runs fn(0..n-1), at most jobs at once, and returns every
// error, joined: one module's failure does not stop the others, so a run
// reports them all.
func parallel(ctx context.Context, jobs, n int, fn func(context.Context, int) error) error {
	errs := make([]error, n)
	var g errgroup.Group
	g.SetLimit(max(jobs, 1))
	for i := range n {
		g.Go(func() error {
			defer failure.Crash()
			errs[i] = fn(ctx, i)
			return nil
		})
	}
	g.Wait()
	var out []string
	var first error
	for _, e := range errs {
		if e != nil {
			if first == nil {
				first = e
			}
			out = append(out, e.Error())
		}
	}
	if len(out) == 1 {
		return first
	}
	if len(out) > 1 {
		return fmt.Errorf("%d modules failed:\n  %s\n(first: %w)", len(out), strings.Join(out, "\n  "), first)
	}
	return nil
}

func isSpec(p string) bool { return p == "spec" || strings.HasPrefix(p, "spec/") }

// treeSkip is skipFor for a git tree's entries.
func treeSkip(excludeSpec bool) func(string, bool) bool {
	if excludeSpec {
		return func(p string, _ bool) bool { return isSpec(p) }
	}
	return nil
}

func skipFor(excludeSpec bool) func(string) bool {
	if excludeSpec {
		return isSpec
	}
	return nil
}

package bake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/nearest"
	"github.com/imagebake/imagebake/internal/versionq"

	"github.com/Masterminds/semver/v3"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/gitcache"
	"github.com/imagebake/imagebake/internal/stall"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/puppet"
	"github.com/imagebake/imagebake/puppet/puppetfile"
	"github.com/imagebake/imagebake/release"
	"github.com/imagebake/imagebake/tarball"
)

// Inputs is a release with every input pinned: the control repo commit,
// imagebake.toml, the module pins, the agent binaries per arch and the
// epoch. Its Manifest is the inputs half of the release manifest (no
// output digests yet). Resolve makes it; Stage and Build take it.
type Inputs struct {
	Manifest   *manifest.Manifest
	Config     *Config
	Puppetfile *puppetfile.Puppetfile // nil: the control repo has none
	Lock       *lockfile.Lock
	Agents     map[string]agents.Selection // by arch
	Epoch      time.Time

	// Floating lists the inputs the control repo does not pin, each with
	// what it resolved to this time (empty when rebuilding a manifest).
	Floating []string

	forge string // the Forge a manifest's pins came from ("" otherwise)

	rebuild bool // the inputs are a manifest's, not imagebake.toml's choice
}

// ErrFloating marks a --locked bake whose inputs are not all pinned.
var ErrFloating = fmt.Errorf("inputs not pinned: %w", failure.ErrVerify)

// floating lists what the control repo leaves open: modules resolved
// without a committed lock, agent binaries chosen by a range.
func (in *Inputs) floating(lockCommitted bool) []string {
	var out []string
	if !lockCommitted {
		for _, m := range in.Manifest.Puppetfile.Modules {
			switch {
			case m.Kind == "local":
			case m.Commit != "":
				out = append(out, fmt.Sprintf("module %s: no committed Puppetfile.lock; %s %s resolved to commit %s", m.Name, m.RefType, m.Ref, m.Commit))
			default:
				out = append(out, fmt.Sprintf("module %s: no committed Puppetfile.lock; Forge version resolved to %s (sha256 %s)", m.Name, m.Version, short(m.SHA256)))
			}
		}
	}
	if in.Config.Agents == nil {
		return out
	}
	if q, err := versionq.Parse(in.Config.Agents.Major, false); err == nil && !q.Exact() {
		for _, im := range in.Manifest.Images {
			out = append(out, fmt.Sprintf("agent binaries %s %s (a range) on %s: resolved to %s (sha256 %s)", im.Agent.Name, q, im.Arch, im.Agent.Version, short(im.Agent.SHA256)))
		}
	}
	return out
}

// agentRule is the rule that chose the agent binaries: imagebake.toml's
// [agents], or "" when a manifest named them.
func (in *Inputs) agentRule() string {
	if in.rebuild || in.Config == nil {
		return ""
	}
	return agentRule(in.Config.Agents)
}

// Name is FAMILY-X.Y.Z.
func (in *Inputs) Name() string { return in.Manifest.Family + "-" + in.Manifest.Release }

// ErrTagNotFound marks a release with no tag.
var ErrTagNotFound = fmt.Errorf("release tag %w", failure.ErrNotFound)

// Resolve pins every input of release o.Release (or of the candidate
// o.Ref): the release tag to its commit, imagebake.toml and the Puppetfile
// read from it (a committed Puppetfile.lock is law, else the modules are
// resolved), the agent binaries selected per arch from the store chain.
// With o.Previous the release number is checked against the changes.
func Resolve(ctx context.Context, o Options) (*Inputs, error) {
	if err := o.normalise(); err != nil {
		return nil, err
	}
	return resolve(ctx, o, nil)
}

// ResolveManifest pins the inputs a manifest records, exactly: its commit,
// module pins, agent binaries (by sha256), epoch and builder; nothing is
// resolved anew. arches narrows the images (nil: all of the manifest's).
func ResolveManifest(ctx context.Context, want *manifest.Manifest, arches []string, o Options) (*Inputs, error) {
	if o.Repo == "" { // else another location of the same control repo
		o.Repo = want.Repo.URL
	}
	o.Release, o.Arches, o.Builder = want.Release, arches, want.Builder
	o.Epoch, o.Version, o.Stores, o.Previous, o.Ref = time.Unix(want.Epoch, 0), want.Imagebake.Version, nil, nil, ""
	o.Advisories, o.AdvisoryFixes = want.Advisories, want.AdvisoryFixes
	if o.Arches == nil {
		for _, im := range want.Images {
			o.Arches = append(o.Arches, im.Arch)
		}
	}
	if err := o.normalise(); err != nil {
		return nil, err
	}
	if o.Stored != nil {
		if err := o.Stored.restore(ctx, want, o); err != nil {
			return nil, err
		}
	}
	return resolve(ctx, o, want)
}

// normalise checks the release number and makes paths absolute.
func (o *Options) normalise() error {
	if _, err := semver.StrictNewVersion(o.Release); err != nil || strings.Contains(o.Release, "-") {
		return fmt.Errorf("%w: release %q is not MAJOR.MINOR.SECURITY (e.g. 1.4.2)", failure.ErrUsage, o.Release)
	}
	if o.Context == "" {
		o.Context = "."
	}
	var err error
	if o.Context, err = filepath.Abs(o.Context); err != nil {
		return err
	}
	o.Repo = absRepo(o.Repo)
	if o.Out == "" {
		o.Out = "dist"
	}
	return nil
}

// absRepo is a control repo path made absolute (when it names one that
// exists), so that every step finds the same mirror whatever the working
// directory; a URL as it is.
func absRepo(repo string) string {
	if strings.Contains(repo, "://") {
		return repo
	}
	if abs, err := filepath.Abs(repo); err == nil {
		if _, serr := os.Stat(abs); serr == nil {
			return abs
		}
	}
	return repo
}

// source is what is read from the control repo at the release commit.
type source struct {
	tag, commit, where string
	config             *Config
	puppetfile         []byte // nil: none
	lock               []byte // nil: none committed
	epoch              time.Time
}

// readSource reads the control repo at the release commit (or the
// manifest's) and closes the mirror before anything else opens one.
func readSource(ctx context.Context, o Options, want *manifest.Manifest) (*source, error) {
	gc, err := o.gitCache()
	if err != nil {
		return nil, err
	}
	mir, err := gc.Mirror(ctx, o.Repo)
	if err != nil {
		return nil, fmt.Errorf("control repo: %w", err)
	}
	defer mir.Close()
	// a manifest's commit the cache holds (from the release's sources, or
	// an earlier fetch) needs nothing of the upstream: its id is its content
	if !mir.Fetched() && (want == nil || !mir.HasCommit(want.Repo.Commit)) {
		if err := mir.Fetch(ctx); err != nil {
			return nil, fmt.Errorf("control repo: %w", err)
		}
	}
	s := &source{}
	if s.tag, s.commit, err = releaseCommit(mir, o, want); err != nil {
		return nil, err
	}
	s.where = fmt.Sprintf("%s at %s (%s)", o.Repo, s.tag, s.commit[:12])
	cfg, ok, err := mir.ReadFile(s.commit, ConfigName)
	if err != nil {
		return nil, err
	}
	if o.Config != nil {
		cfg, ok, s.where = o.Config, true, s.where+", with "+ConfigName+" as init writes it (not committed yet)"
	}
	if !ok {
		return nil, fmt.Errorf("%w: no %s in %s; run `imagebake init` in the control repo to write one, and commit it", failure.ErrNotFound, ConfigName, s.where)
	}
	if s.config, err = ParseConfig(cfg); err != nil {
		return nil, fmt.Errorf("%s in %s: %w", ConfigName, s.where, err)
	}
	if s.puppetfile, _, err = mir.ReadFile(s.commit, "Puppetfile"); err != nil {
		return nil, err
	}
	if s.lock, _, err = mir.ReadFile(s.commit, "Puppetfile.lock"); err != nil {
		return nil, err
	}
	s.epoch = o.Epoch
	if s.epoch.IsZero() {
		if s.epoch, err = mir.CommitTime(s.commit); err != nil {
			return nil, err
		}
	}
	s.epoch = s.epoch.UTC().Truncate(time.Second)
	return s, nil
}

func resolve(ctx context.Context, o Options, want *manifest.Manifest) (*Inputs, error) {
	src, err := readSource(ctx, o, want)
	if err != nil {
		return nil, err
	}
	cfg := src.config
	if want == nil && o.Published != nil && o.Ref == "" {
		m, err := o.Published(ctx, cfg.Family, o.Release)
		if err != nil {
			return nil, err
		}
		if m != nil {
			o.logf("%s-%s is published: rebuilding exactly its pins (commit %s)\n", m.Family, m.Release, m.Repo.Commit)
			return ResolveManifest(ctx, m, o.Arches, o)
		}
	}
	arches, err := cfg.forBake(ctx, o, want)
	if err != nil {
		return nil, err
	}
	in := newInputs(o, src, want)
	if err := in.pinModules(ctx, o, src, want); err != nil {
		return nil, err
	}
	if in.Agents, err = selectAgents(ctx, o, cfg, arches, want); err != nil {
		return nil, err
	}
	if err := in.addImages(arches); err != nil {
		return nil, err
	}
	if want == nil {
		in.Floating = in.floating(src.lock != nil)
	}
	if o.Locked && len(in.Floating) > 0 {
		return nil, fmt.Errorf("%w: --locked, and these inputs are not pinned by the control repo at %s:\n  %s\ncommit a Puppetfile.lock (imagebake puppetfile lock) and pin the agent binaries exactly in imagebake.toml ([agents] version = \"X.Y.Z\")",
			ErrFloating, src.where, strings.Join(in.Floating, "\n  "))
	}
	in.Manifest.Advisories, in.Manifest.AdvisoryFixes = o.Advisories, o.AdvisoryFixes
	if cfg.Release != nil && cfg.Release.MajorPackages != nil {
		mp := append([]string{}, *cfg.Release.MajorPackages...)
		in.Manifest.MajorPackages = &mp
	}
	if err := in.checkNumber(ctx, o, want); err != nil {
		return nil, err
	}
	return in, nil
}

// forBake applies the command line to the configuration (the builder,
// the environment following the base's Puppet) and returns the arches to
// bake.
func (cfg *Config) forBake(ctx context.Context, o Options, want *manifest.Manifest) ([]string, error) {
	if o.Builder != "" {
		cfg.Builder = o.Builder
		if err := cfg.check(); err != nil {
			return nil, err
		}
	}
	arches, err := cfg.SelectArches(o.Arches)
	if err != nil {
		return nil, err
	}
	if want == nil && cfg.environmentDefault {
		if err := followBasePuppet(ctx, o, cfg, arches); err != nil {
			return nil, err
		}
	}
	return arches, nil
}

// newInputs starts the inputs of a release from its source: the manifest's
// shared part (a rebuild leaves out what the release left out).
func newInputs(o Options, src *source, want *manifest.Manifest) *Inputs {
	cfg := src.config
	in := &Inputs{Config: cfg, Epoch: src.epoch, Manifest: &manifest.Manifest{
		Family: cfg.Family, Release: o.Release, Epoch: src.epoch.Unix(), Builder: cfg.Builder,
		Environment: cfg.Environment,
		Imagebake:   manifest.Tool{Version: o.Version, Go: runtime.Version(), Compressor: tarball.Compressors(), Defaults: manifest.CurrentDefaults},
		Repo:        manifest.Repo{URL: o.Repo, Tag: src.tag, Commit: src.commit},
	}}
	switch {
	case want != nil: // a rebuild makes what the release made
		in.rebuild = true
		in.Manifest.PayloadExclude = want.PayloadExclude
		in.Manifest.Imagebake.Defaults = want.Imagebake.Defaults
	case cfg.Payload != nil:
		in.Manifest.PayloadExclude = cfg.Payload.Exclude
	}
	return in
}

// addImages adds an image per arch (its base and agent binaries) and the
// content digests.
func (in *Inputs) addImages(arches []string) error {
	for _, a := range arches {
		base, _ := in.Config.BaseFor(a)
		im := manifest.Image{Arch: a, OS: "linux", Name: in.Name() + "-" + a, Base: manifest.Base{Ref: base.Ref()}}
		if s, ok := in.Agents[a]; ok { // else an image without agent binaries
			im.Agent = manifest.Agent{Name: s.Name, Version: s.Version, OS: s.OS, Arch: s.Arch, Size: s.Size, SHA256: s.SHA256, Source: s.Source, Path: s.Path}
		}
		in.Manifest.Images = append(in.Manifest.Images, im)
	}
	in.setPartial()
	return in.Manifest.SetContentDigests()
}

// checkNumber checks the release number against the release before it
// (--previous, or the catalog's), before anything is built, and records
// what a security release fixed.
func (in *Inputs) checkNumber(ctx context.Context, o Options, want *manifest.Manifest) error {
	if o.Previous == nil && o.PreviousFrom != nil && want == nil {
		prev, err := o.PreviousFrom(ctx, in.Config.Family, o.Release)
		if err != nil {
			return err
		}
		if prev != nil {
			o.logf("checking %s against %s-%s, the release before it in the catalog\n", o.Release, prev.Family, prev.Release)
		}
		o.Previous = prev
	}
	if o.Previous == nil {
		return nil
	}
	cand, err := in.withBases(ctx, o)
	if err != nil {
		return err
	}
	rules := in.Config.Rules(o.Advisories, o.AdvisoryFixes)
	rules.RepoFiles = RepoChanges(ctx, o, o.Previous.Repo.Commit, cand.Repo.Commit)
	if err := release.Check(o.Previous, cand, o.Release, rules); err != nil {
		return fmt.Errorf("%w\n(--no-release-check skips this)", err)
	}
	// what the security release fixed, for the checks of other lines
	in.Manifest.Fixes = release.FixesOf(o.Previous, cand, rules)
	return nil
}

// followBasePuppet sets an environment imagebake.toml leaves unset to
// where the base's Puppet reads code: Debian's puppet reads
// /etc/puppet/code, Puppet's own packages /etc/puppetlabs/code (the
// default). The first arch's base says, read without building.
func followBasePuppet(ctx context.Context, o Options, cfg *Config, arches []string) error {
	if len(arches) == 0 {
		return nil
	}
	bb, err := o.base(cfg, arches[0])
	if err != nil || bb.Scratch {
		return err
	}
	found, err := builders.Inspect(ctx, bb, arches[0])
	if err != nil || found.Info == nil {
		return err
	}
	_, pkgs := baseContent(found.Info, manifest.CurrentDefaults)
	bp := basePuppet(pkgs)
	if bp == nil || strings.HasPrefix(cfg.Environment+"/", bp.CodeDir+"/") {
		return nil
	}
	cfg.Environment = bp.CodeDir + "/environments/" + path.Base(cfg.Environment)
	o.logf("environment: %s, where the base's Puppet (package %s %s) reads code (imagebake.toml sets none)\n", cfg.Environment, bp.Package, bp.PackageVersion)
	return nil
}

// RepoChanges lists the control repo's files changed between commits
// from and to ("M manifests/site.pp"); nil when they cannot be compared
// (the log says why).
func RepoChanges(ctx context.Context, o Options, from, to string) []string {
	if from == to {
		return nil
	}
	gc, err := o.gitCache()
	if err == nil {
		var mir *gitcache.Mirror
		if mir, err = gc.Mirror(ctx, absRepo(o.Repo)); err == nil {
			defer mir.Close()
			var files []string
			if files, err = mir.ChangedFiles(from, to); err == nil {
				return files
			}
		}
	}
	o.logf("note: the control repo's changes from %s to %s are not listed: %v\n", short(from), short(to), err)
	return nil
}

// withBases is a copy of the manifest with what each arch's base holds
// (its OS and packages), read without building: what the release rules
// compare.
func (in *Inputs) withBases(ctx context.Context, o Options) (*manifest.Manifest, error) {
	m := *in.Manifest
	m.Images = append([]manifest.Image{}, in.Manifest.Images...)
	for i := range m.Images {
		im := &m.Images[i]
		bb, err := o.base(in.Config, im.Arch)
		if err != nil {
			return nil, err
		}
		found, err := builders.Inspect(ctx, bb, im.Arch)
		if err != nil {
			return nil, fmt.Errorf("reading the base of %s for the release rules: %w", im.Arch, err)
		}
		im.Base.OS, im.Base.Packages = baseContent(found.Info, m.Imagebake.Defaults)
	}
	return &m, nil
}

// releaseCommit resolves the tag and commit to build: the manifest's, the
// candidate ref, or the release tag vX.Y.Z (or X.Y.Z).
func releaseCommit(mir *gitcache.Mirror, o Options, want *manifest.Manifest) (string, string, error) {
	if want != nil {
		if !mir.HasCommit(want.Repo.Commit) {
			return "", "", fmt.Errorf("control repo %s has no commit %s (tag %s in the manifest): %w", o.Repo, want.Repo.Commit, want.Repo.Tag, failure.ErrNotFound)
		}
		return want.Repo.Tag, want.Repo.Commit, nil
	}
	if o.Ref != "" {
		sha, err := mir.Resolve("ref", o.Ref)
		if err != nil {
			refs := append(mir.Tags(), mir.Branches()...)
			return "", "", fmt.Errorf("release candidate %q in %s: %w; nearest tags and branches: %s", o.Ref, o.Repo, err, strings.Join(nearest.Names(o.Ref, refs, 5), ", "))
		}
		return o.Ref, sha, nil
	}
	for _, t := range []string{"v" + o.Release, o.Release} {
		if sha, err := mir.Resolve("tag", t); err == nil {
			return t, sha, nil
		}
	}
	var rel []string
	for _, t := range mir.Tags() {
		if _, err := semver.NewVersion(t); err == nil {
			rel = append(rel, t)
		}
	}
	near := nearest.Versions(o.Release, rel, 5)
	hint := "; the repository has no release tags"
	if len(near) > 0 {
		hint = "; nearest release tags: " + strings.Join(near, ", ")
	}
	return "", "", fmt.Errorf("%w: no tag v%s or %s in %s%s", ErrTagNotFound, o.Release, o.Release, o.Repo, hint)
}

// puppetOptions are the options every module operation of a bake takes.
func puppetOptions(o Options, epoch time.Time, forge string) []puppet.Option {
	opts := []puppet.Option{puppet.WithCache(o.Cache), puppet.WithEpoch(epoch), puppet.WithoutInstallState(), puppet.WithRemaps(o.Remaps)}
	if o.Log != nil {
		opts = append(opts, puppet.WithLog(o.Log))
	}
	if o.HTTP != nil {
		opts = append(opts, puppet.WithHTTPClient(o.HTTP))
	} else {
		opts = append(opts, puppet.WithHTTPClient(stall.Client(o.Registry.Stall)))
	}
	if o.Registry.Stall > 0 {
		opts = append(opts, puppet.WithStall(o.Registry.Stall))
	}
	if forge != "" {
		opts = append(opts, puppet.WithForge(forge))
	}
	return opts
}

// pinModules parses the Puppetfile at the commit and pins its modules:
// the manifest's pins, the committed Puppetfile.lock (law; a stale one is
// refused), or a fresh resolution.
func (in *Inputs) pinModules(ctx context.Context, o Options, src *source, want *manifest.Manifest) error {
	in.Manifest.Puppetfile.Moduledir = puppet.DefaultModuledir
	if src.puppetfile == nil {
		return nil // no Puppetfile: no external modules
	}
	pf, err := puppetfile.Parse(src.where+":Puppetfile", src.puppetfile)
	if err != nil {
		return err
	}
	cfg := in.Config
	if cfg.Puppetfile != nil {
		pf.DefaultExcludeSpec(cfg.Puppetfile.ExcludeSpec)
	}
	popts := append(puppetOptions(o, src.epoch, ""), puppet.WithControlBranch(cfg.ControlBranch()))
	ignoreDeps := o.IgnoreDependencies || (!o.IgnoreDependenciesSet && cfg.Puppetfile != nil && cfg.Puppetfile.IgnoreDependencies)
	if ignoreDeps {
		popts = append(popts, puppet.WithoutDependencyCheck()) // the candidate's imagebake.toml counts
	} else if o.dependencies != nil {
		popts = append(popts, puppet.WithDependencyReport(func(err error) { *o.dependencies = err }))
	}
	var lk *lockfile.Lock
	committed := false
	switch {
	case want != nil:
		p := want.Puppetfile
		lk = &lockfile.Lock{Version: lockfile.FormatVersion, Puppetfile: p.SHA256, Forge: p.Forge, Moduledir: p.Moduledir, Modules: p.Modules}
		committed, in.forge = p.LockCommitted, p.Forge
	case src.lock != nil:
		if lk, err = lockfile.Parse(src.lock); err != nil {
			return fmt.Errorf("%s:Puppetfile.lock: %w", src.where, err)
		}
		if diffs := puppet.Stale(pf, lk, popts...); len(diffs) > 0 {
			return fmt.Errorf("%w: the lock committed at %s does not match its Puppetfile:\n  %s\nrun `imagebake puppetfile lock` and tag a new release", puppet.ErrLockStale, src.where, strings.Join(diffs, "\n  "))
		}
		committed = true
	default:
		if lk, err = puppet.Lock(ctx, pf, popts...); err != nil {
			return err
		}
	}
	in.Puppetfile, in.Lock = pf, lk
	in.Manifest.Puppetfile = manifest.Puppetfile{SHA256: pf.SHA256, LockCommitted: committed, Forge: lk.Forge, Moduledir: lk.Moduledir, Modules: lk.Modules}
	in.Manifest.Puppetfile.IgnoreDependencies = ignoreDeps || (want != nil && want.Puppetfile.IgnoreDependencies)
	switch {
	case want != nil:
		in.Manifest.Puppetfile.ControlBranch = want.Puppetfile.ControlBranch
	case pf.UsesControlBranch():
		in.Manifest.Puppetfile.ControlBranch = cfg.ControlBranch()
	}
	return nil
}

// selectAgents picks the agent binaries per arch: the manifest's exact
// ones (by sha256, from the store recorded), or the largest matching
// version over the store chain.
func selectAgents(ctx context.Context, o Options, cfg *Config, arches []string, want *manifest.Manifest) (map[string]agents.Selection, error) {
	out := map[string]agents.Selection{}
	if want != nil {
		return selectPinnedAgents(ctx, o, arches, want)
	}
	if cfg.Agents == nil {
		if len(o.Stores) > 0 {
			return nil, fmt.Errorf("%w: --store names agent stores, but %s has no [agents]: its images carry no agent binaries", failure.ErrUsage, ConfigName)
		}
		return out, nil
	}
	list := o.Stores
	if len(list) == 0 {
		list = cfg.Agents.Stores
	}
	var stores []agents.Store
	for _, s := range list {
		p := o.abs(s) // a flag may point anywhere
		if len(o.Stores) == 0 {
			var err error
			if p, err = o.inContext("[agents] store", s); err != nil {
				return nil, err
			}
			if !strings.Contains(s, "://") {
				if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("%w: [agents] store %q of %s is not a directory in --context %s (looked for %s): relative paths in %s are resolved against --context, the current directory unless given; pass --context DIR",
						failure.ErrNotFound, s, ConfigName, o.Context, p, ConfigName)
				}
			}
		}
		st, err := agents.NewStore(p, o.HTTP)
		if err != nil {
			return nil, err
		}
		stores = append(stores, st)
	}
	chain, q := agents.NewChain(stores...), agents.Query{Name: cfg.Agents.Name, Want: cfg.Agents.Major, OS: "linux"}
	var sels []agents.Selection
	var err error
	if o.AgentsPerArch {
		sels, err = chain.SelectArches(ctx, q, arches)
	} else {
		var note string
		if sels, note, err = chain.SelectCommon(ctx, q, arches); note != "" {
			o.logf("%s\n", note)
		}
	}
	if err != nil {
		return nil, err
	}
	for i, a := range arches {
		out[a] = sels[i]
	}
	return out, nil
}

// setPartial records, when the release holds only some of the configured
// arches, all of them: the manifest of a per-arch bake says it is one.
func (in *Inputs) setPartial() {
	have := map[string]bool{}
	for _, im := range in.Manifest.Images {
		have[im.Arch] = true
	}
	in.Manifest.PartialOf = nil
	for _, a := range in.Config.Arches {
		if !have[a] {
			in.Manifest.PartialOf = append([]string(nil), in.Config.Arches...)
			sort.Strings(in.Manifest.PartialOf)
			return
		}
	}
}

// selectPinnedAgents is selectAgents of a manifest's agent binaries: each
// arch's exact archive, by sha256, from the cache's restored sources or
// the store the manifest records; none for an image that carries none.
func selectPinnedAgents(ctx context.Context, o Options, arches []string, want *manifest.Manifest) (map[string]agents.Selection, error) {
	out := map[string]agents.Selection{}
	for _, a := range arches {
		var im *manifest.Image
		for i := range want.Images {
			if want.Images[i].Arch == a {
				im = &want.Images[i]
			}
		}
		if im == nil {
			return nil, fmt.Errorf("%w: the manifest has no image for %s", failure.ErrUsage, a)
		}
		if im.Agent.None() {
			continue
		}
		if sel, ok := o.Stored.agent(o.Cache, im); ok {
			out[a] = sel
			continue
		}
		st, err := agents.NewStore(strings.TrimSuffix(im.Agent.Source, "/tools"), o.HTTP)
		if err != nil {
			return nil, err
		}
		s, err := agents.NewChain(st).Select(ctx, agents.Query{Name: im.Agent.Name, Want: im.Agent.Version, OS: im.Agent.OS, Arch: a, SHA256: im.Agent.SHA256})
		if err != nil {
			return nil, err
		}
		out[a] = s
	}
	return out, nil
}

// Package bake is the main job: one tagged release of a control repo and
// pinned agent binaries, baked into one image per arch, with a manifest
// that rebuilds the same bytes.
//
// Data flows one way: the release tag is resolved to a commit; its
// imagebake.toml and Puppetfile are read; modules are locked (a committed
// Puppetfile.lock is law) and materialised; agent binaries are selected per
// arch; the payload becomes deterministic layers; a builder makes the
// images; the manifest records it all. Everything is made in a temporary
// directory beside the release directory and renamed into place at the end.
package bake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"golang.org/x/sys/unix"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/builders/oci"
	"github.com/imagebake/imagebake/builders/rootfs"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/internal/gitcache"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/puppet"
	"github.com/imagebake/imagebake/puppet/puppetfile"
	"github.com/imagebake/imagebake/release"
	"github.com/imagebake/imagebake/tarball"
)

// Options say what to bake. Time and environment enter here, from the CLI.
type Options struct {
	Repo    string    // control repo URL or path
	Release string    // X.Y.Z
	Arches  []string  // subset of the configured arches; empty for all
	Out     string    // dist dir; the release goes to Out/FAMILY-X.Y.Z
	Builder string    // overrides imagebake.toml
	Epoch   time.Time // zero: the release commit's commit time
	Cache   string    // git mirrors, Forge tarballs, agent downloads
	Context string    // directory relative paths in imagebake.toml are relative to
	Stores  []string  // overrides imagebake.toml's agent stores
	Version string    // imagebake's own version, recorded
	Log     io.Writer
	HTTP    *http.Client

	// Previous, when set, is the previous release's manifest: the release
	// number is checked against the changes (package release) as soon as
	// the inputs are pinned, before anything is built.
	Previous *manifest.Manifest

	// Ref, when set, is a branch, tag or commit to read instead of the
	// release tag (a release candidate, for Plan).
	Ref string

	// pinned, when set, is a manifest to rebuild exactly (Verify).
	pinned *manifest.Manifest
	// planOnly stops after the inputs are pinned (Plan).
	planOnly bool
	// payloadTo, when set, receives the payload tree of the one arch
	// instead of images being built (Payload).
	payloadTo string
}

// Payload writes the payload of one arch of the release described by the
// manifest at name into dst, laid out as it is inside an image (the
// environment, /opt/NAME/tools with the current link, release.toml), from
// the manifest alone. The Packer provisioner installs it on a machine.
func Payload(ctx context.Context, name, arch, dst string, o Options) error {
	want, err := manifest.Read(name)
	if err != nil {
		return err
	}
	found := false
	for _, im := range want.Images {
		found = found || im.Arch == arch
	}
	if !found {
		var has []string
		for _, im := range want.Images {
			has = append(has, im.Arch)
		}
		return fmt.Errorf("%s %s has no %s image (it has %s): %w", want.Family, want.Release, arch, strings.Join(has, ", "), failure.ErrNotFound)
	}
	tmp, err := os.MkdirTemp("", "imagebake-payload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	r := o
	// the payload does not depend on the builder
	r.Repo, r.Release, r.Arches, r.Out, r.Builder = want.Repo.URL, want.Release, []string{arch}, tmp, ""
	r.Epoch, r.Version, r.Stores, r.pinned, r.payloadTo = time.Unix(want.Epoch, 0), want.Imagebake.Version, nil, want, dst
	_, err = Bake(ctx, r)
	return err
}

// Plan resolves every input of a release (commit, module pins, agent
// binaries, bases) without building: the manifest's inputs part.
func Plan(ctx context.Context, o Options) (*manifest.Manifest, error) {
	o.planOnly = true
	return Bake(ctx, o)
}

// ErrTagNotFound marks a release with no tag.
var ErrTagNotFound = fmt.Errorf("release tag %w", failure.ErrNotFound)

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format, args...)
	}
}

func (o *Options) abs(p string) string {
	if filepath.IsAbs(p) || strings.Contains(p, "://") {
		return p
	}
	return filepath.Join(o.Context, p)
}

// inContext resolves a path named in imagebake.toml (relative, checked by
// ParseConfig) inside the context directory, symlinks included: a link in
// the context may not lead a committed file's reference outside it.
func (o *Options) inContext(what, p string) (string, error) {
	if p == "" || strings.Contains(p, "://") {
		return p, nil
	}
	full := filepath.Join(o.Context, filepath.FromSlash(p))
	ctxReal, err := filepath.EvalSymlinks(o.Context)
	if err != nil {
		return "", fmt.Errorf("context dir %s: %w", o.Context, err)
	}
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		return full, nil // does not exist: opening it reports that
	}
	if rel, err := filepath.Rel(ctxReal, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%w: %s %q in %s resolves to %s, outside --context %s (a symlink on the way); paths in %s stay inside --context",
			ErrConfig, what, p, ConfigName, real, o.Context, ConfigName)
	}
	return full, nil
}

// Bake bakes the release and returns its manifest. A release whose inputs
// are unchanged since the last bake into Out is not rebuilt.
func Bake(ctx context.Context, o Options) (*manifest.Manifest, error) {
	if _, err := semver.StrictNewVersion(o.Release); err != nil || strings.Contains(o.Release, "-") {
		return nil, fmt.Errorf("%w: release %q is not MAJOR.MINOR.SECURITY (e.g. 1.4.2)", failure.ErrUsage, o.Release)
	}
	if o.Context == "" {
		o.Context = "."
	}
	var err error
	if o.Context, err = filepath.Abs(o.Context); err != nil {
		return nil, err
	}
	if !strings.Contains(o.Repo, "://") {
		if abs, err := filepath.Abs(o.Repo); err == nil {
			if _, serr := os.Stat(abs); serr == nil {
				o.Repo = abs
			}
		}
	}
	if o.Out == "" {
		o.Out = "dist"
	}
	if !o.planOnly {
		if err := os.MkdirAll(o.Out, 0o755); err != nil {
			return nil, fmt.Errorf("creating out dir %s: %w", o.Out, err)
		}
		// One bake into an out dir at a time: a second waits, then finds
		// the release up to date or replaces it whole.
		lf, err := flock.LockDir(ctx, o.Out)
		if err != nil {
			return nil, fmt.Errorf("locking out dir %s: %w", o.Out, err)
		}
		defer lf.Close()
		removeLeftovers(o.Out, o.logf)
	}
	b := &baker{o: o}
	defer b.cleanup()
	return b.run(ctx)
}

// leftoverRE matches what a killed bake leaves in the out dir: its staging
// directory and a release directory being swapped out.
var leftoverRE = regexp.MustCompile(`^(\.[a-z][a-z0-9_-]*-[0-9]+\.[0-9]+\.[0-9]+\.tmp-[0-9]+|[a-z][a-z0-9_-]*-[0-9]+\.[0-9]+\.[0-9]+\.old-\..*)$`)

// removeLeftovers removes staging directories of killed bakes. It runs
// under the out dir's lock, so none of them belongs to a running bake.
func removeLeftovers(out string, logf func(string, ...any)) {
	ents, err := os.ReadDir(out)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() && leftoverRE.MatchString(e.Name()) {
			if err := os.RemoveAll(filepath.Join(out, e.Name())); err == nil {
				logf("removed %s, left by a bake that was stopped\n", filepath.Join(out, e.Name()))
			}
		}
	}
}

type baker struct {
	o      Options
	stage  string
	mirror *gitcache.Mirror
	cfg    *Config
	m      *manifest.Manifest
	epoch  time.Time
}

func (b *baker) cleanup() {
	if b.mirror != nil {
		b.mirror.Close()
	}
	if b.stage != "" {
		os.RemoveAll(b.stage)
	}
}

func (b *baker) run(ctx context.Context) (*manifest.Manifest, error) {
	o := &b.o
	gc, err := gitcache.Open(o.Cache)
	if err != nil {
		return nil, err
	}
	if b.mirror, err = gc.Mirror(ctx, o.Repo); err != nil {
		return nil, fmt.Errorf("control repo: %w", err)
	}
	tag, commit, err := b.resolveRelease(ctx)
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("%s at %s (%s)", o.Repo, tag, commit[:12])
	cfgBytes, ok, err := b.mirror.ReadFile(commit, ConfigName)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no %s in %s; see testdata/example/control/imagebake.toml.in", failure.ErrNotFound, ConfigName, where)
	}
	if b.cfg, err = ParseConfig(cfgBytes); err != nil {
		return nil, fmt.Errorf("%s in %s: %w", ConfigName, where, err)
	}
	if o.Builder != "" {
		b.cfg.Builder = o.Builder
		if err := b.cfg.check(); err != nil {
			return nil, err
		}
	}
	arches, err := b.cfg.SelectArches(o.Arches)
	if err != nil {
		return nil, err
	}
	b.epoch = o.Epoch
	if b.epoch.IsZero() {
		if b.epoch, err = b.mirror.CommitTime(commit); err != nil {
			return nil, err
		}
	}
	b.epoch = b.epoch.UTC().Truncate(time.Second)
	b.m = &manifest.Manifest{
		Family: b.cfg.Family, Release: o.Release, Epoch: b.epoch.Unix(), Builder: b.cfg.Builder,
		Environment: b.cfg.Environment,
		Imagebake:   manifest.Tool{Version: o.Version, Go: runtime.Version()},
		Repo:        manifest.Repo{URL: o.Repo, Tag: tag, Commit: commit},
	}
	name := b.cfg.Family + "-" + o.Release
	pf, lk, popts, err := b.pins(ctx, commit, where)
	if err != nil {
		return nil, err
	}
	b.mirror.Close()
	b.mirror = nil
	sels, err := b.selectAgents(ctx, arches)
	if err != nil {
		return nil, err
	}
	for i, a := range arches {
		base, _ := b.cfg.BaseFor(a)
		s := sels[i]
		b.m.Images = append(b.m.Images, manifest.Image{Arch: a, OS: "linux", Name: name + "-" + a,
			Base:  manifest.Base{Ref: base.Ref()},
			Agent: manifest.Agent{Name: s.Name, Version: s.Version, OS: s.OS, Arch: s.Arch, Size: s.Size, SHA256: s.SHA256, Source: s.Source, Path: s.Path}})
	}
	if b.m.InputsDigest, err = b.m.ComputeInputsDigest(); err != nil {
		return nil, err
	}
	if o.Previous != nil && o.pinned == nil {
		if err := release.Check(o.Previous, b.m, o.Release); err != nil {
			return nil, fmt.Errorf("%w\n(--no-release-check skips this)", err)
		}
	}
	if o.planOnly {
		return b.m, nil
	}
	final := filepath.Join(o.Out, name)
	if old, err := manifest.Read(filepath.Join(final, manifest.FileName)); err == nil && b.o.pinned == nil && upToDate(old, b.m, final) {
		o.logf("%s is up to date (inputs %s)\n", final, b.m.InputsDigest)
		return old, nil
	}
	// inputs are pinned: now stage the payload
	if b.stage, err = os.MkdirTemp(o.Out, "."+name+".tmp-"); err != nil {
		return nil, fmt.Errorf("out dir %s is not writable: %w", o.Out, err)
	}
	payload := filepath.Join(b.stage, ".payload")
	env := filepath.Join(payload, "env")
	if err := os.MkdirAll(payload, 0o755); err != nil {
		return nil, err
	}
	if err := b.writeEnvironment(ctx, commit, env, pf, lk, popts); err != nil {
		return nil, err
	}
	return b.build(ctx, sels, payload, final)
}

// upToDate says whether the release in dir was baked from the same inputs
// and still has its artifacts.
func upToDate(old, now *manifest.Manifest, dir string) bool {
	if old.InputsDigest != now.InputsDigest || len(old.Images) != len(now.Images) {
		return false
	}
	for _, im := range old.Images {
		p := filepath.Join(dir, im.Artifact)
		if strings.HasPrefix(im.Artifact, "oci:") {
			p = filepath.Join(dir, "index.json")
		}
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

func (b *baker) resolveRelease(ctx context.Context) (string, string, error) {
	o := &b.o
	if !b.mirror.Fetched() {
		if err := b.mirror.Fetch(ctx); err != nil {
			return "", "", fmt.Errorf("control repo: %w", err)
		}
	}
	if p := o.pinned; p != nil {
		if !b.mirror.HasCommit(p.Repo.Commit) {
			return "", "", fmt.Errorf("control repo %s has no commit %s (tag %s in the manifest): %w", o.Repo, p.Repo.Commit, p.Repo.Tag, failure.ErrNotFound)
		}
		return p.Repo.Tag, p.Repo.Commit, nil
	}
	if o.Ref != "" {
		sha, err := b.mirror.Resolve("ref", o.Ref)
		if err != nil {
			refs := append(b.mirror.Tags(), b.mirror.Branches()...)
			return "", "", fmt.Errorf("release candidate %q in %s: %w; nearest tags and branches: %s", o.Ref, o.Repo, err, strings.Join(nearestNames(o.Ref, refs, 5), ", "))
		}
		return o.Ref, sha, nil
	}
	for _, t := range []string{"v" + o.Release, o.Release} {
		if sha, err := b.mirror.Resolve("tag", t); err == nil {
			return t, sha, nil
		}
	}
	var rel []string
	for _, t := range b.mirror.Tags() {
		if _, err := semver.NewVersion(t); err == nil {
			rel = append(rel, t)
		}
	}
	near := nearestVersions(o.Release, rel, 5)
	hint := "; the repository has no release tags"
	if len(near) > 0 {
		hint = "; nearest release tags: " + strings.Join(near, ", ")
	}
	return "", "", fmt.Errorf("%w: no tag v%s or %s in %s%s", ErrTagNotFound, o.Release, o.Release, o.Repo, hint)
}

// nearestNames returns up to n names sharing the longest prefix with want.
func nearestNames(want string, names []string, n int) []string {
	common := func(a string) int {
		i := 0
		for i < len(a) && i < len(want) && a[i] == want[i] {
			i++
		}
		return i
	}
	sorted := append([]string(nil), names...)
	sort.SliceStable(sorted, func(i, j int) bool { return common(sorted[i]) > common(sorted[j]) })
	if len(sorted) > n {
		sorted = sorted[:n]
	}
	return sorted
}

func nearestVersions(want string, tags []string, n int) []string {
	w, err := semver.NewVersion(want)
	if err != nil {
		return nil
	}
	type tv struct {
		t string
		d float64
	}
	var all []tv
	for _, t := range tags {
		v, _ := semver.NewVersion(t)
		d := func(a, b uint64) float64 {
			if a > b {
				return float64(a - b)
			}
			return float64(b - a)
		}
		all = append(all, tv{t, d(v.Major(), w.Major())*1e6 + d(v.Minor(), w.Minor())*1e3 + d(v.Patch(), w.Patch())})
	}
	for i := 1; i < len(all); i++ {
		for j := i; j > 0 && (all[j].d < all[j-1].d || all[j].d == all[j-1].d && all[j].t < all[j-1].t); j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
	var out []string
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, all[i].t)
	}
	return out
}

// pins reads the Puppetfile at the release commit and returns its lock:
// the manifest's pins (verify), the committed Puppetfile.lock (law), or a
// fresh resolution. pf is nil for a control repo without a Puppetfile.
func (b *baker) pins(ctx context.Context, commit, where string) (*puppetfile.Puppetfile, *lockfile.Lock, []puppet.Option, error) {
	b.m.Puppetfile.Moduledir = puppet.DefaultModuledir
	src, ok, err := b.mirror.ReadFile(commit, "Puppetfile")
	if err != nil || !ok {
		return nil, nil, nil, err // no Puppetfile: no external modules
	}
	pf, err := puppetfile.Parse(where+":Puppetfile", src)
	if err != nil {
		return nil, nil, nil, err
	}
	opts := []puppet.Option{puppet.WithCache(b.o.Cache), puppet.WithEpoch(b.epoch), puppet.WithoutInstallState()}
	if b.o.Log != nil {
		opts = append(opts, puppet.WithLog(b.o.Log))
	}
	if b.o.HTTP != nil {
		opts = append(opts, puppet.WithHTTPClient(b.o.HTTP))
	}
	var lk *lockfile.Lock
	committed := false
	lb, haveLock, err := b.mirror.ReadFile(commit, "Puppetfile.lock")
	if err != nil {
		return nil, nil, nil, err
	}
	switch {
	case b.o.pinned != nil:
		p := b.o.pinned.Puppetfile
		lk = &lockfile.Lock{Version: lockfile.FormatVersion, Puppetfile: p.SHA256, Forge: p.Forge, Moduledir: p.Moduledir, Modules: p.Modules}
		committed = p.LockCommitted
		if p.Forge != "" {
			opts = append(opts, puppet.WithForge(p.Forge))
		}
	case haveLock:
		if lk, err = lockfile.Parse(lb); err != nil {
			return nil, nil, nil, fmt.Errorf("%s:Puppetfile.lock: %w", where, err)
		}
		if diffs := puppet.Stale(pf, lk, opts...); len(diffs) > 0 {
			return nil, nil, nil, fmt.Errorf("%w: the lock committed at %s does not match its Puppetfile:\n  %s\nrun `imagebake puppetfile lock` and tag a new release", puppet.ErrLockStale, where, strings.Join(diffs, "\n  "))
		}
		committed = true
	default:
		if lk, err = puppet.Lock(ctx, pf, opts...); err != nil {
			return nil, nil, nil, err
		}
	}
	b.m.Puppetfile = manifest.Puppetfile{SHA256: pf.SHA256, LockCommitted: committed, Forge: lk.Forge, Moduledir: lk.Moduledir, Modules: lk.Modules}
	return pf, lk, opts, nil
}

// writeEnvironment stages the control repo tree at the commit with its
// modules materialised from the lock.
func (b *baker) writeEnvironment(ctx context.Context, commit, env string, pf *puppetfile.Puppetfile, lk *lockfile.Lock, opts []puppet.Option) error {
	gc, err := gitcache.Open(b.o.Cache)
	if err != nil {
		return err
	}
	mir, err := gc.Mirror(ctx, b.o.Repo)
	if err != nil {
		return fmt.Errorf("control repo: %w", err)
	}
	err = mir.WriteTree(commit, env, b.epoch, nil)
	mir.Close()
	if err != nil || pf == nil {
		return err
	}
	moddir := filepath.Join(env, filepath.FromSlash(lk.Moduledir))
	_, err = puppet.Install(ctx, pf, lk, env, moddir, opts...)
	return err
}

// selectAgents picks the agent binaries per arch (or the manifest's exact ones).
func (b *baker) selectAgents(ctx context.Context, arches []string) ([]agents.Selection, error) {
	ac := b.cfg.Agents
	if p := b.o.pinned; p != nil {
		var out []agents.Selection
		for _, a := range arches {
			var im *manifest.Image
			for i := range p.Images {
				if p.Images[i].Arch == a {
					im = &p.Images[i]
				}
			}
			if im == nil {
				return nil, fmt.Errorf("%w: the manifest has no image for %s", failure.ErrUsage, a)
			}
			st, err := agents.NewStore(strings.TrimSuffix(im.Agent.Source, "/tools"), b.o.HTTP)
			if err != nil {
				return nil, err
			}
			s, err := agents.NewChain(st).Select(ctx, agents.Query{Name: im.Agent.Name, Want: im.Agent.Version, OS: im.Agent.OS, Arch: a, SHA256: im.Agent.SHA256})
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	list := b.o.Stores
	if len(list) == 0 {
		list = ac.Stores
	}
	var stores []agents.Store
	for _, s := range list {
		p := b.o.abs(s) // a flag may point anywhere
		if len(b.o.Stores) == 0 {
			var err error
			if p, err = b.o.inContext("[agents] store", s); err != nil {
				return nil, err
			}
		}
		st, err := agents.NewStore(p, b.o.HTTP)
		if err != nil {
			return nil, err
		}
		stores = append(stores, st)
	}
	return agents.NewChain(stores...).SelectArches(ctx, agents.Query{Name: ac.Name, Want: ac.Major, OS: "linux"}, arches)
}

// build lays out the payload, makes the layers and images, writes the
// manifest and SBOM, and moves the release into place.
func (b *baker) build(ctx context.Context, sels []agents.Selection, payload, final string) (*manifest.Manifest, error) {
	if dst := b.o.payloadTo; dst != "" {
		envDst := filepath.Join(dst, filepath.FromSlash(strings.TrimPrefix(b.cfg.Environment, "/")))
		if err := os.MkdirAll(filepath.Dir(envDst), 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(payload, "env"), envDst); err != nil {
			return nil, err
		}
		return b.m, b.agentTree(ctx, sels[0], b.m.Images[0], dst)
	}
	blobDir := filepath.Join(b.stage, "blobs", "sha256")
	if b.cfg.Builder != "oci" {
		blobDir = filepath.Join(payload, "blobs")
	}
	env := filepath.Join(payload, "env")
	envLayer, err := builders.WriteLayer(blobDir, "environment", b.epoch, func(tw *tarball.Writer) error {
		return tw.AddTree(env, b.cfg.Environment)
	})
	if err != nil {
		return nil, err
	}
	req := &builders.Request{Dir: b.stage, BlobDir: blobDir, Family: b.cfg.Family, Release: b.o.Release,
		Revision: b.m.Repo.Commit, Source: b.o.Repo, Epoch: b.epoch, Log: b.o.Log}
	for i, im := range b.m.Images {
		dir := filepath.Join(payload, "arch-"+im.Arch)
		if err := b.agentTree(ctx, sels[i], im, dir); err != nil {
			return nil, err
		}
		al, err := builders.WriteLayer(blobDir, "agents", b.epoch, func(tw *tarball.Writer) error {
			return tw.AddTree(dir, "")
		})
		if err != nil {
			return nil, err
		}
		base, _ := b.cfg.BaseFor(im.Arch)
		bb := builders.Base{Scratch: base.Scratch, Digest: base.Digest, SHA256: base.SHA256}
		if bb.Layout, err = b.o.inContext("base layout", base.Layout); err != nil {
			return nil, err
		}
		if bb.Rootfs, err = b.o.inContext("base rootfs", base.Rootfs); err != nil {
			return nil, err
		}
		req.Images = append(req.Images, builders.Image{Arch: im.Arch, Name: im.Name, Base: bb, Layers: []builders.Layer{envLayer, al}})
	}
	var res *builders.Result
	switch b.cfg.Builder {
	case "oci":
		res, err = oci.Build(ctx, req)
	case "rootfs":
		res, err = rootfs.Build(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	b.m.IndexDigest = res.IndexDigest
	for i, r := range res.Images {
		im := &b.m.Images[i]
		im.Digest, im.Artifact, im.Base.Digest = r.Digest, r.Artifact, r.BaseDigest
		for _, l := range r.Layers {
			im.Layers = append(im.Layers, manifest.Layer{Role: l.Role, MediaType: string(l.MediaType), DiffID: l.DiffID.String(), Digest: l.Digest.String(), Size: l.Size})
		}
	}
	if err := os.RemoveAll(payload); err != nil {
		return nil, err
	}
	if err := b.m.Write(filepath.Join(b.stage, manifest.FileName)); err != nil {
		return nil, err
	}
	if err := writeSBOM(b.m, filepath.Join(b.stage, SBOMName)); err != nil {
		return nil, err
	}
	if err := publicModes(b.stage); err != nil {
		return nil, err
	}
	if err := replaceDir(b.stage, final); err != nil {
		return nil, err
	}
	b.stage = ""
	return b.m, nil
}

// agentTree lays out one arch's agent binaries and release.toml under dir
// as they appear in the image.
func (b *baker) agentTree(ctx context.Context, s agents.Selection, im manifest.Image, dir string) error {
	file, err := agents.Fetch(ctx, s, filepath.Join(b.o.Cache))
	if err != nil {
		return err
	}
	tools := filepath.Join(dir, "opt", s.Name, "tools")
	if err := os.MkdirAll(tools, 0o755); err != nil {
		return err
	}
	vdir := s.Version + "-" + im.Arch
	if err := agents.Unpack(file, filepath.Join(tools, vdir), 0); err != nil {
		return fmt.Errorf("agent binaries %s %s for %s: %w", s.Name, s.Version, s.Platform(), err)
	}
	if err := os.Symlink(vdir, filepath.Join(tools, "current")); err != nil {
		return err
	}
	rel := fmt.Sprintf("# written by imagebake; see manifest.toml of the release\nfamily = %q\nrelease = %q\narch = %q\nname = %q\ntag = %q\ncommit = %q\nagent = %q\nagent_version = %q\ninputs_digest = %q\n",
		b.m.Family, b.m.Release, im.Arch, im.Name, b.m.Repo.Tag, b.m.Repo.Commit, s.Name, s.Version, b.m.InputsDigest)
	p := filepath.Join(dir, "etc", "imagebake", "release.toml")
	if err := os.MkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(rel), 0o644)
}

// publicModes makes a release readable by everyone whatever the umask and
// whatever the libraries wrote (temp files are 0600, the layout library
// writes index.json 0755): files 0644, directories 0755. A registry or web
// server running as another user serves the release as it is.
func publicModes(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Chmod(p, 0o755)
		case d.Type().IsRegular():
			return os.Chmod(p, 0o644)
		}
		return nil
	})
}

// replaceDir moves src to dst, replacing a dst that exists; a reader of
// dst sees the old release or the new one, never nothing: the two are
// exchanged in one rename (RENAME_EXCHANGE), then the old one is removed.
func replaceDir(src, dst string) error {
	if _, err := os.Lstat(dst); err != nil {
		return os.Rename(src, dst)
	}
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if err == nil {
		return os.RemoveAll(src) // now the old release
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	// a file system without exchange: a short gap while the old one moves
	old := dst + ".old-" + filepath.Base(src)
	if err := os.Rename(dst, old); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		os.Rename(old, dst)
		return err
	}
	return os.RemoveAll(old)
}

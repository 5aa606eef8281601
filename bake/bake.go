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
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/internal/gitcache"
	"github.com/imagebake/imagebake/internal/ociremote"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/release"
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
	// Config, when set, is read in place of the commit's imagebake.toml:
	// init's dry bake of a file not committed yet
	Config  []byte
	Version string // imagebake's own version, recorded
	Log     io.Writer
	Verbose bool // also the notes that are the same on every bake (what a base lacks)
	HTTP    *http.Client

	// Previous, when set, is the previous release's manifest: the release
	// number is checked against the changes (package release) as soon as
	// the inputs are pinned, before anything is built.
	Previous *manifest.Manifest

	// Advisories declare a security release (CVE, DSA, ... IDs): recorded
	// in the manifest, and needed by the number check for a SECURITY
	// number.
	Advisories []string
	// AdvisoryFixes say which packages and modules an advisory fixes
	// (--advisory ID=NAME,...): recorded, and only those are its fix.
	AdvisoryFixes map[string][]string

	// AgentsPerArch takes each arch's newest agent binaries instead of the
	// newest version every arch has.
	AgentsPerArch bool

	// IgnoreDependencies bakes modules whose metadata.json dependencies
	// are not pinned in range; the manifest records it.
	IgnoreDependencies bool
	// IgnoreDependenciesSet says IgnoreDependencies was given on the
	// command line: then it overrides [puppetfile] ignore_dependencies,
	// false included.
	IgnoreDependenciesSet bool

	// dependencies, set by Plan, takes unmet module dependencies instead
	// of failing on them: a plan gives the level and lists them.
	dependencies *error

	// Compile runs the compile gate (bake --compile).
	Compile CompileOptions

	// BuilderID names who runs the bake in the provenance it writes: the
	// CI workflow the command found ("": imagebake itself).
	BuilderID string

	// Remaps point moved remotes at their new home (--remap OLD=NEW): the
	// pins (commit, tree) are checked as ever.
	Remaps []gitcache.Remap

	// Stored, when set, are the sources a published release keeps: a
	// rebuild of its manifest takes its inputs from them first, asking
	// no upstream for what they hold.
	Stored *Stored

	// Pinned, when set, is the release's manifest: the bake rebuilds
	// exactly its pins (commit, modules, agent binaries by sha256, epoch),
	// as verify does, whatever was published or moved since.
	Pinned *manifest.Manifest

	// Published, when set, looks up a release already published (in a
	// catalog): when it returns a manifest, the bake rebuilds exactly its
	// pins, as with Pinned. nil, nil: not published.
	Published func(ctx context.Context, family, release string) (*manifest.Manifest, error)
	// PreviousFrom, when set and Previous is not, looks up the release
	// before release in a catalog (nil: none): the number is checked
	// against it.
	PreviousFrom func(ctx context.Context, family, release string) (*manifest.Manifest, error)

	// Locked refuses to resolve inputs the control repo does not pin (no
	// committed Puppetfile.lock, agent binaries by range).
	Locked bool

	// Force replaces a release in Out baked from other inputs.
	Force bool

	// Registry says how bases in registries are reached.
	Registry ociremote.Options

	// Ref, when set, is a branch, tag or commit to read instead of the
	// release tag (a release candidate, for Plan).
	Ref string

	// Packer says which embedded template and packer binary run a bake
	// with Builder "packer" (BuilderPacker).
	Packer PackerOptions

	// started is when the bake or merge began (the provenance's startedOn).
	started time.Time
}

// Plan resolves every input of a release (commit, module pins, agent
// binaries, bases) without building: the manifest's inputs part, with what
// each base holds (OS and packages, read without building), and the
// release rules of the candidate's imagebake.toml with o.Advisories.
//
// Unmet module dependencies do not stop a plan: the manifest and rules
// come back with an error wrapping puppet.ErrDependencies that lists
// them.
func Plan(ctx context.Context, o Options) (*manifest.Manifest, release.Rules, error) {
	if err := o.normalise(); err != nil {
		return nil, release.Rules{}, err
	}
	var deps error
	o.dependencies = &deps
	in, err := resolve(ctx, o, nil)
	if err != nil {
		return nil, release.Rules{}, err
	}
	m, err := in.withBases(ctx, o)
	if err != nil {
		return nil, release.Rules{}, err
	}
	return m, in.Config.Rules(o.Advisories, o.AdvisoryFixes), deps
}

// Bake bakes the release into Out/FAMILY-X.Y.Z and returns its manifest:
// Resolve, then (unless the release there was baked from the same inputs)
// stagePayload and buildRelease in a staging directory beside it, swapped into place.
// One bake into an out dir runs at a time; a second waits.
func Bake(ctx context.Context, o Options) (*manifest.Manifest, error) {
	if err := failure.NeedLinux("baking an image"); err != nil {
		return nil, err
	}
	o.started = time.Now()
	if o.Builder == BuilderPacker {
		return bakeWithPacker(ctx, o)
	}
	if err := o.normalise(); err != nil {
		return nil, err
	}
	lf, err := o.lockOut(ctx)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	var in *Inputs
	if o.Pinned != nil {
		if o.Release != o.Pinned.Release {
			return nil, fmt.Errorf("%w: --release %s, but the manifest given is of %s", failure.ErrUsage, o.Release, o.Pinned.Release)
		}
		in, err = ResolveManifest(ctx, o.Pinned, o.Arches, o)
	} else {
		in, err = resolve(ctx, o, nil) // o is normalised above
	}
	if err != nil {
		return nil, err
	}
	if len(in.Floating) > 0 {
		o.logf("floating inputs (not pinned by the control repo; --locked refuses them):\n  %s\n", strings.Join(in.Floating, "\n  "))
	}
	final := filepath.Join(o.Out, in.Name())
	old, err := oldRelease(final, o.Force)
	if err != nil {
		return nil, err
	}
	if old != nil {
		keep, err := against(old, in.Manifest, in.agentRule(), o.Force, o.logf)
		if err != nil {
			return nil, err
		}
		if len(keep) > 0 {
			o.logf("keeping %s of %s, already in %s\n", strings.Join(keep, ", "), in.Name(), final)
			if err := in.keepArches(ctx, o, old, keep); err != nil {
				return nil, err
			}
		}
		if upToDate(old, in.Manifest, final) && gateDone(old, in.Config, o) {
			o.logf("%s is up to date (inputs %s)\n", final, in.Manifest.InputsDigest)
			return old, nil
		}
	}
	return o.intoOut(final, func(stage string) (*manifest.Manifest, error) { return stageAndBuild(ctx, in, stage, o) })
}

// gitCache is the git cache of o, with its remaps.
func (o Options) gitCache() (*gitcache.Cache, error) {
	gc, err := gitcache.Open(o.Cache, o.Registry.Stall)
	if err == nil {
		gc.SetRemaps(o.Remaps)
	}
	return gc, err
}

// stageAndBuild stages the payload in dir/.payload, builds the release in
// dir and removes the payload.
func stageAndBuild(ctx context.Context, in *Inputs, dir string, o Options) (*manifest.Manifest, error) {
	payload := filepath.Join(dir, ".payload")
	defer os.RemoveAll(payload)
	p, err := stagePayload(ctx, in, payload, o)
	if err != nil {
		return nil, err
	}
	o.Compile = in.Config.compileOptions(o.Compile)
	m, err := buildRelease(ctx, in, p, dir, o)
	if err != nil {
		return nil, err
	}
	if err := writeSources(ctx, m, in, dir, p.AgentFiles, o); err != nil {
		return nil, err
	}
	if o.Compile.Enabled {
		found, err := compileGate(ctx, m, dir, p, o)
		if err != nil {
			return nil, err
		}
		for i := range m.Images {
			if r, ok := found[m.Images[i].Arch]; ok {
				m.Images[i].Catalogs, m.Images[i].Compiled = r.Catalogs, r.Compiled
			}
		}
		if err := m.Write(filepath.Join(dir, manifest.FileName)); err != nil {
			return nil, err
		}
	}
	if err := os.RemoveAll(payload); err != nil {
		return nil, err
	}
	return m, nil
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
	var has []string
	for _, im := range want.Images {
		found = found || im.Arch == arch
		has = append(has, im.Arch)
	}
	if !found {
		return fmt.Errorf("%s %s has no %s image (it has %s): %w", want.Family, want.Release, arch, strings.Join(has, ", "), failure.ErrNotFound)
	}
	want.Builder = "" // the payload does not depend on the builder
	in, err := ResolveManifest(ctx, want, []string{arch}, o)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "imagebake-payload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := stageEnvironment(ctx, in, filepath.Join(tmp, "env"), o); err != nil {
		return err
	}
	envDst := filepath.Join(dst, filepath.FromSlash(strings.TrimPrefix(in.Config.Environment, "/")))
	if err := os.MkdirAll(filepath.Dir(envDst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(tmp, "env"), envDst); err != nil {
		return err
	}
	_, err = stageAgents(ctx, in, arch, dst, o)
	return err
}

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
		if e.IsDir() && strings.HasPrefix(e.Name(), pullPrefix) {
			removePullDir(filepath.Join(out, e.Name()), logf)
			continue
		}
		if e.IsDir() && leftoverRE.MatchString(e.Name()) {
			if err := os.RemoveAll(filepath.Join(out, e.Name())); err == nil {
				logf("removed %s, left by a bake that was stopped\n", filepath.Join(out, e.Name()))
			}
		}
	}
}

// pullPrefix names the directories a merge pulls registry parts into.
const pullPrefix = ".pull-"

// PullDir makes a directory in out for a merge to pull a registry part
// into. It is locked while it is in use, so that the leftover cleaner of
// another bake or merge in out removes it only once the merge that made
// it is gone (a killed one). done removes it.
func PullDir(out string) (dir string, done func(), err error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", nil, fmt.Errorf("out dir %s: %w", out, err)
	}
	dir, err = os.MkdirTemp(out, pullPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("out dir %s is not writable: %w", out, err)
	}
	lf, err := flock.LockDir(context.Background(), dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return dir, func() { os.RemoveAll(dir); lf.Close() }, nil
}

// removePullDir removes a pull directory no running merge holds.
func removePullDir(dir string, logf func(string, ...any)) {
	gone, cancel := context.WithCancel(context.Background())
	cancel() // one try: a held lock is a running merge's
	lf, err := flock.LockDir(gone, dir)
	if err != nil {
		return
	}
	defer lf.Close()
	if err := os.RemoveAll(dir); err == nil {
		logf("removed %s, left by a merge that was stopped\n", dir)
	}
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
	err := exchange(src, dst)
	if err == nil {
		return os.RemoveAll(src) // now the old release
	}
	if !errors.Is(err, errors.ErrUnsupported) {
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

// lockOut creates and locks the out dir (one bake or merge into it at a
// time; a second waits) and removes what killed ones left there.
func (o *Options) lockOut(ctx context.Context) (io.Closer, error) {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("creating out dir %s: %w", o.Out, err)
	}
	lf, err := flock.LockDirWaiting(ctx, o.Out, func() {
		o.logf("waiting for out dir %s: another bake, merge or Packer run into it holds it\n", o.Out)
	})
	if err != nil {
		return nil, fmt.Errorf("locking out dir %s: %w", o.Out, err)
	}
	removeLeftovers(o.Out, o.logf)
	return lf, nil
}

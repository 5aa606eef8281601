package puppet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/confine"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/internal/gitcache"
	"github.com/imagebake/imagebake/internal/progress"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/puppet/forge"
	"github.com/imagebake/imagebake/puppet/metadata"
	"github.com/imagebake/imagebake/puppet/puppetfile"
	"github.com/imagebake/imagebake/tarball"
)

// Report says what Install did.
type Report struct {
	Lock      *lockfile.Lock `json:"lock"`      // the pins installed
	Installed []string       `json:"installed"` // modules written
	Unchanged []string       `json:"unchanged"` // modules already in place
	Removed   []string       `json:"removed"`   // unmanaged entries purged from the module dir
	Drift     []Drift        `json:"drift"`     // upstream changes seen while fetching
	// Metadata is each module's metadata.json, by the Puppetfile's name
	// (modules without one are in Notes).
	Metadata map[string]*metadata.Metadata `json:"metadata,omitempty"`
	Notes    []string                      `json:"notes,omitempty"`
}

// Install materialises pf's modules: those without :install_path into
// moddir, the others under envRoot. With lk, exactly lk's pins are built
// (a stale lk is refused); without, modules are resolved as r10k would.
// A module whose pin and files are unchanged since the last Install into
// the same directory is left alone. Entries of moddir that no module
// manages and that an earlier Install put there are removed; others are
// kept and named in the log.
func Install(ctx context.Context, pf *puppetfile.Puppetfile, lk *lockfile.Lock, envRoot, moddir string, opts ...Option) (*Report, error) {
	c := newConfig(opts)
	if lk != nil && !c.lockChecked {
		if diffs := Stale(pf, lk, opts...); len(diffs) > 0 {
			return nil, fmt.Errorf("%w against %s:\n  %s\nrun `imagebake puppetfile lock` to update it", ErrLockStale, pf.Path, strings.Join(diffs, "\n  "))
		}
	}
	r, err := newResolver(c, pf)
	if err != nil {
		return nil, err
	}
	t, err := openTargets(envRoot, moddir, pf.Path)
	if err != nil {
		return nil, err
	}
	defer t.close()
	st := &state{Dirs: map[string]stateEntry{}}
	if !c.noState {
		if st, err = openState(c.cacheDir, t.moddir); err != nil {
			return nil, err
		}
		defer st.close()
	}
	rep := &Report{}
	pins, changed, err := r.installAll(ctx, pf, lk, t, st, rep)
	if err != nil {
		return nil, err
	}
	rep.Lock = newLock(pf, r.forgeURL, pins)
	managed := map[string]bool{}
	for i, m := range pf.Modules {
		if m.InstallPath == "" {
			managed[m.Short] = true
		}
		switch {
		case m.Kind == puppetfile.Local:
		case changed[i]:
			rep.Installed = append(rep.Installed, m.Name)
		default:
			rep.Unchanged = append(rep.Unchanged, m.Name)
		}
	}
	rep.Metadata, rep.Notes = readMetadata(pf, t)
	for _, n := range rep.Notes {
		c.logf("note: %s\n", n)
	}
	if !c.ignoreDeps {
		if err := CheckDependencies(pf, pins, rep.Metadata); err != nil {
			return nil, err
		}
	}
	var kept []string
	if rep.Removed, kept, err = purge(t.mods, managed, st); err != nil {
		return nil, err
	}
	c.report(rep, kept, t.moddir, pf.Path)
	return rep, st.save()
}

// targets are the trees Install writes into, confined: a symlink committed
// to the control repo or shipped in a module is refused, never followed.
type targets struct {
	env, mods *confine.Dir
	moddir    string
}

func openTargets(envRoot, moddir, pfPath string) (*targets, error) {
	var err error
	t := &targets{}
	if t.moddir, err = filepath.Abs(moddir); err != nil {
		return nil, err
	}
	if envRoot, err = filepath.Abs(envRoot); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(envRoot, 0o755); err != nil {
		return nil, fmt.Errorf("creating environment dir: %w", err)
	}
	if t.env, err = confine.Open(envRoot); err != nil {
		return nil, err
	}
	// the module dir inside the environment, or wherever a flag put it
	if rel, rerr := t.env.Rel(t.moddir); rerr == nil {
		t.mods, err = t.env.Sub(rel)
	} else if err = os.MkdirAll(t.moddir, 0o755); err == nil {
		t.mods, err = confine.Open(t.moddir)
	}
	if err != nil {
		t.env.Close()
		return nil, fmt.Errorf("module dir %s of %s: %w", t.moddir, pfPath, err)
	}
	return t, nil
}

func (t *targets) close() {
	t.mods.Close()
	t.env.Close()
}

// installAll resolves (without lk) and materialises every module in
// parallel, skipping those whose directory already holds their pin. It
// returns the pins and which modules were written.
func (r *resolver) installAll(ctx context.Context, pf *puppetfile.Puppetfile, lk *lockfile.Lock, t *targets, st *state, rep *Report) ([]lockfile.Module, []bool, error) {
	pins := make([]lockfile.Module, len(pf.Modules))
	changed := make([]bool, len(pf.Modules))
	var mu sync.Mutex
	bar := progress.Start(ctx, "installing the modules of "+pf.Path, int64(len(pf.Modules)), false)
	defer bar.Finish()
	err := parallel(ctx, r.c.jobs, len(pf.Modules), func(ctx context.Context, i int) error {
		defer bar.Add(1)
		m := pf.Modules[i]
		var pin lockfile.Module
		if lk != nil {
			pin, _ = lk.Find(m.Name)
		} else {
			var err error
			if pin, err = r.resolve(ctx, m, false); err != nil {
				return err
			}
		}
		pins[i] = pin
		if m.Kind == puppetfile.Local {
			return nil
		}
		root, rel := t.mods, m.Short
		if m.InstallPath != "" {
			root, rel = t.env, m.Dir("")
		}
		dir, key := root.Path(rel), r.c.pinKey(pin)
		if st.unchanged(dir, key) {
			return nil
		}
		drift, err := r.materialise(ctx, m, pin, lk != nil, root, rel)
		if err != nil {
			return err
		}
		st.record(dir, key)
		mu.Lock()
		rep.Drift = append(rep.Drift, drift...)
		mu.Unlock()
		changed[i] = true
		return nil
	})
	return pins, changed, err
}

// report logs what Install removed, kept and saw drift in.
func (c *config) report(rep *Report, kept []string, moddir, pfPath string) {
	for _, n := range rep.Removed {
		c.logf("removed %s from %s: no module in %s manages it\n", n, moddir, pfPath)
	}
	for _, n := range kept {
		c.logf("kept %s in %s: no module in %s manages it, and imagebake did not install it\n", n, moddir, pfPath)
	}
	sort.Slice(rep.Drift, func(i, j int) bool { return rep.Drift[i].Module < rep.Drift[j].Module })
	for _, d := range rep.Drift {
		c.logf("warning: %s; the lock's pin was built\n", d)
	}
}

// pinKey identifies what a module dir holds: its pin and how it was written.
func (c *config) pinKey(p lockfile.Module) string {
	ep := "source"
	if !c.epoch.IsZero() {
		ep = fmt.Sprint(c.epoch.Unix())
	}
	return fmt.Sprintf("%s %s spec=%t epoch=%s", p.Kind, p.Pin(), !p.ExcludeSpec, ep)
}

// materialise writes one module into rel of root, replacing what is there
// only once the new tree is complete. The new tree is written into a
// fresh directory of imagebake's own, then renamed into place inside root.
func (r *resolver) materialise(ctx context.Context, m puppetfile.Module, pin lockfile.Module, locked bool, root *confine.Dir, rel string) ([]Drift, error) {
	tmpParent, err := root.MkdirTemp(path.Dir(rel), ".imagebake-tmp-"+m.Short+"-")
	if err != nil {
		return nil, fmt.Errorf("module %q: %w", m.Name, err)
	}
	defer root.RemoveAll(tmpParent)
	tmp := root.Path(path.Join(tmpParent, m.Short))
	var drift []Drift
	switch m.Kind {
	case puppetfile.Git:
		drift, err = r.writeGit(ctx, m, pin, locked, tmp)
	case puppetfile.Forge:
		err = r.writeForge(ctx, m, pin, tmp)
	}
	if err != nil {
		return nil, err
	}
	if err := root.Rename(rel, path.Join(tmpParent, "old")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("module %q: replacing %s: %w", m.Name, root.Path(rel), err)
	}
	if err := root.Rename(path.Join(tmpParent, m.Short), rel); err != nil {
		return nil, fmt.Errorf("module %q: installing into %s: %w", m.Name, root.Path(rel), err)
	}
	return drift, nil
}

func (r *resolver) writeGit(ctx context.Context, m puppetfile.Module, pin lockfile.Module, locked bool, dst string) ([]Drift, error) {
	mir, err := r.cache.Mirror(ctx, m.Source)
	if err != nil {
		return nil, fmt.Errorf("module %q: %w", m.Name, err)
	}
	defer mir.Close()
	var drift []Drift
	if !mir.HasCommit(pin.Commit) {
		// by its SHA; by the ref that named it where the server refuses SHAs
		fallback := ""
		if ref, err := r.refOf(m); err == nil {
			fallback = refNameOf(m.RefType, ref, mir)
		}
		if err := mir.Ensure(ctx, pin.Commit, fallback); err != nil {
			if errors.Is(err, gitcache.ErrRefNotFound) {
				return nil, fmt.Errorf("module %q: commit %s (%s %s) is not in %s any more, nor in the cache: %w", m.Name, pin.Commit, pin.RefType, pin.Ref, mir.URL, failure.ErrNotFound)
			}
			return nil, fmt.Errorf("module %q: %w", m.Name, err)
		}
		// a fetch by name shows where the ref is now: report a move
		if ref, err := r.refOf(m); err == nil && locked && m.RefType != puppetfile.Commit {
			if now, ok := mir.Advertised(string(m.RefType), ref); ok && now != pin.Commit {
				drift = append(drift, Drift{Module: m.Name, Ref: fmt.Sprintf("%s %s", m.RefType, ref), Locked: pin.Commit, Now: now, Source: mir.URL})
			}
		}
	}
	mtime := r.c.epoch
	if mtime.IsZero() {
		if mtime, err = mir.CommitTime(pin.Commit); err != nil {
			return nil, err
		}
	}
	if err := mir.WriteTree(ctx, pin.Commit, dst, mtime, treeSkip(m.ExcludeSpec)); err != nil {
		return nil, fmt.Errorf("module %q: %w", m.Name, err)
	}
	return drift, nil
}

// refNameOf is the full name of the ref a :tag or :branch names, or of a
// :ref that the repository has as a tag or branch ("" otherwise).
func refNameOf(t puppetfile.RefType, ref string, mir *gitcache.Mirror) string {
	switch t {
	case puppetfile.Tag:
		return "refs/tags/" + ref
	case puppetfile.Branch:
		return "refs/heads/" + ref
	case puppetfile.Ref:
		if _, err := mir.Resolve("tag", ref); err == nil {
			return "refs/tags/" + ref
		}
		if _, err := mir.Resolve("branch", ref); err == nil {
			return "refs/heads/" + ref
		}
	}
	return ""
}

func (r *resolver) writeForge(ctx context.Context, m puppetfile.Module, pin lockfile.Module, dst string) error {
	rel := forge.Release{Slug: m.ForgeSlug(), Version: pin.Version, URL: pin.URL, SHA256: pin.SHA256}
	file, err := r.forge.Fetch(ctx, rel, r.forgeCache())
	if err != nil {
		return err
	}
	err = tarball.ExtractFile(file, dst, tarball.ExtractOptions{Ctx: ctx, StripComponents: 1, Mtime: r.c.epoch, Skip: skipFor(m.ExcludeSpec), MaxBytes: 1 << 30})
	if err != nil {
		return fmt.Errorf("module %q version %s: %w", m.Name, pin.Version, err)
	}
	return nil
}

// purge removes entries of the module dir that no module manages and that
// imagebake itself installed there (the install state records them), and
// leftovers of killed installs. Anything else (a directory committed to
// the control repo, a hand-made one) is kept and returned in kept.
func purge(mods *confine.Dir, managed map[string]bool, st *state) (removed, kept []string, err error) {
	ents, err := mods.ReadDir(".")
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		n := e.Name()
		if managed[n] {
			continue
		}
		tmp := strings.HasPrefix(n, ".imagebake-tmp-")
		if !tmp && !st.installed(mods.Path(n)) {
			if !strings.HasPrefix(n, ".") {
				kept = append(kept, n)
			}
			continue
		}
		if err := mods.RemoveAll(n); err != nil {
			return removed, kept, err
		}
		st.forget(mods.Path(n))
		if !tmp {
			removed = append(removed, n)
		}
	}
	return removed, kept, nil
}

// state remembers, per module dir, the pin it holds and a fingerprint of
// its files (paths, modes, sizes, mtimes), so an unchanged module is not
// rewritten and a hand-edited one is. It lives in the cache, keyed by the
// module dir, so the module dir holds only modules.
type state struct {
	file string
	lock *os.File
	mu   sync.Mutex
	Dirs map[string]stateEntry `toml:"dirs"`
}

type stateEntry struct {
	Pin         string `toml:"pin"`
	Fingerprint string `toml:"fingerprint"`
}

func openState(cacheDir, moddir string) (*state, error) {
	sum := sha256.Sum256([]byte(moddir))
	dir := filepath.Join(cacheDir, "installs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &state{file: filepath.Join(dir, hex.EncodeToString(sum[:12])+".toml"), Dirs: map[string]stateEntry{}}
	// one install into a module dir at a time; a second process waits
	lf, err := flock.Lock(s.file + ".lock")
	if err != nil {
		return nil, fmt.Errorf("locking install state of %s: %w", moddir, err)
	}
	s.lock = lf
	if b, err := os.ReadFile(s.file); err == nil {
		if _, err := toml.Decode(string(b), s); err != nil {
			s.Dirs = map[string]stateEntry{} // unreadable state only costs a reinstall
		}
	}
	return s, nil
}

func (s *state) unchanged(dir, pin string) bool {
	if s.file == "" {
		return false
	}
	s.mu.Lock()
	e, ok := s.Dirs[dir]
	s.mu.Unlock()
	if !ok || e.Pin != pin {
		return false
	}
	fp, err := fingerprint(dir)
	return err == nil && fp == e.Fingerprint
}

// installed says whether imagebake installed dir (and it was not removed since).
func (s *state) installed(dir string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.Dirs[dir]
	return ok
}

func (s *state) record(dir, pin string) {
	if s.file == "" {
		return
	}
	fp, err := fingerprint(dir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.Dirs, dir)
		return
	}
	s.Dirs[dir] = stateEntry{Pin: pin, Fingerprint: fp}
}

func (s *state) forget(dir string) {
	s.mu.Lock()
	delete(s.Dirs, dir)
	s.mu.Unlock()
}

func (s *state) save() error {
	if s.file == "" {
		return nil
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(s); err != nil {
		return err
	}
	return atomicfile.WriteFile(s.file, buf.Bytes(), 0o644)
}

func (s *state) close() { s.lock.Close() }

// fingerprint hashes the names, modes, sizes and mtimes under dir.
func fingerprint(dir string) (string, error) {
	h := sha256.New()
	var b [8]byte
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h.Write([]byte(p[len(dir):]))
		h.Write([]byte{0})
		binary.LittleEndian.PutUint64(b[:], uint64(fi.Mode()))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], uint64(fi.Size()))
		h.Write(b[:])
		binary.LittleEndian.PutUint64(b[:], uint64(fi.ModTime().UnixNano()))
		h.Write(b[:])
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

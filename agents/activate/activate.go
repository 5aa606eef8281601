// Package activate moves a machine (or an image root) from one agent
// version to another without a moment where the agent is missing.
//
// Agent binaries live in ROOT/opt/NAME/tools/VERSION-ARCH/ with a current
// symlink to the active one. Activate downloads and verifies a version into
// a temporary directory beside tools/, renames it into place, runs a check
// (by default the new agent's own --version, which must print the version),
// and only then switches current: a new link under a temporary name,
// renamed over the old one. rename(2) replaces the link atomically, so a
// reader always finds current pointing at a whole version directory.
//
// The state lives in ROOT/var/lib/imagebake/agents/NAME.toml (running,
// proposed, previous, last error, and when each changed), written
// atomically, so an operator can tell an upgrade in progress from one that
// failed. Activations of one agent take turns on a lock.
package activate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/Masterminds/semver/v3"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
)

// ErrCheck marks a new version whose check failed; current is unchanged.
var ErrCheck = fmt.Errorf("agent check failed: %w", failure.ErrVerify)

// ErrIncompatible marks a version another major away without AllowMajor.
var ErrIncompatible = fmt.Errorf("incompatible agent version: %w", failure.ErrUsage)

// State is the recorded state of one agent on a machine.
type State struct {
	Name         string    `toml:"name" json:"name"`
	Running      string    `toml:"running" json:"running"`
	RunningSince time.Time `toml:"running_since" json:"running_since"`
	Proposed     string    `toml:"proposed" json:"proposed"`
	ProposedAt   time.Time `toml:"proposed_at" json:"proposed_at"`
	Previous     string    `toml:"previous" json:"previous"`
	LastError    string    `toml:"last_error" json:"last_error"`
	LastErrorAt  time.Time `toml:"last_error_at" json:"last_error_at"`
	// Versions records the sha256 each version directory was unpacked from.
	Versions map[string]string `toml:"versions" json:"versions"`
	// Current is where the current link points now (read, not stored).
	Current string `toml:"-" json:"current"`
	// Baked is set when nothing was recorded since the image was baked:
	// Running is then the version the current link names.
	Baked bool `toml:"-" json:"baked"`
}

// Machine is an agent's place on a machine.
type Machine struct {
	Root, Name, OS, Arch string
	// Now gives the time recorded in the state; it is the CLI's clock.
	Now func() time.Time
}

// NewMachine returns the agent name under root for this machine's platform.
func NewMachine(root, name string, now func() time.Time) *Machine {
	return &Machine{Root: root, Name: name, OS: runtime.GOOS, Arch: runtime.GOARCH, Now: now}
}

// Tools is ROOT/opt/NAME/tools.
func (m *Machine) Tools() string { return filepath.Join(m.Root, "opt", m.Name, "tools") }

func (m *Machine) stateFile() string {
	return filepath.Join(m.Root, "var", "lib", "imagebake", "agents", m.Name+".toml")
}

func (m *Machine) dirName(version string) string { return version + "-" + m.Arch }

// lock serialises changes to one agent.
func (m *Machine) lock() (*os.File, error) {
	return flock.Lock(m.stateFile() + ".lock")
}

// Status reads the state (an empty one when none was recorded) and where
// current points.
func (m *Machine) Status() (*State, error) {
	s := &State{Name: m.Name, Versions: map[string]string{}}
	b, err := os.ReadFile(m.stateFile())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err == nil {
		if _, err := toml.Decode(string(b), s); err != nil {
			return nil, fmt.Errorf("agent state %s: %w: %v", m.stateFile(), failure.ErrUsage, err)
		}
		if s.Versions == nil {
			s.Versions = map[string]string{}
		}
	}
	if l, err := os.Readlink(filepath.Join(m.Tools(), "current")); err == nil {
		s.Current = l
	}
	if s.Running == "" && s.Proposed == "" && s.Current != "" {
		// a freshly baked image: the bake laid out VERSION-ARCH and the link
		if i := strings.LastIndex(filepath.Base(s.Current), "-"); i > 0 {
			s.Running, s.Baked = filepath.Base(s.Current)[:i], true
		}
	}
	return s, nil
}

func (m *Machine) save(s *State) error {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(s); err != nil {
		return err
	}
	return atomicfile.WriteFile(m.stateFile(), buf.Bytes(), 0o644)
}

// Options of an activation.
type Options struct {
	Version    string
	Chain      *agents.Chain
	Cache      string
	Check      string        // shell command; "" runs the agent's --version
	Timeout    time.Duration // of the check; 0 means 30s
	AllowMajor bool
}

// Activate makes opts.Version the current agent, or leaves current as it
// was and records why not.
func (m *Machine) Activate(ctx context.Context, o Options) (*State, error) {
	if err := failure.NeedLinux("activating agent binaries"); err != nil {
		return nil, err
	}
	lf, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	s, err := m.Status()
	if err != nil {
		return nil, err
	}
	running := strings.TrimSuffix(s.Current, "-"+m.Arch)
	if running != "" && !o.AllowMajor {
		if a, b := semver.MustParse(o.Version), semverOrNil(running); b != nil && a.Major() != b.Major() {
			return s, fmt.Errorf("%w: %s %s is major %d, the running %s is major %d; a major upgrade changes what the agent does: pass --major to do it on purpose",
				ErrIncompatible, m.Name, o.Version, a.Major(), running, b.Major())
		}
	}
	s.Proposed, s.ProposedAt = o.Version, m.Now().UTC()
	if err := m.save(s); err != nil {
		return nil, err
	}
	fail := func(err error) (*State, error) {
		s.LastError, s.LastErrorAt = err.Error(), m.Now().UTC()
		s.Proposed = ""
		if serr := m.save(s); serr != nil {
			return s, errors.Join(err, serr)
		}
		return s, err
	}
	sel, err := o.Chain.Select(ctx, agents.Query{Name: m.Name, Want: o.Version, OS: m.OS, Arch: m.Arch})
	if err != nil {
		return fail(err)
	}
	dir := m.dirName(o.Version)
	if err := m.place(ctx, sel, dir, s, o.Cache); err != nil {
		return fail(err)
	}
	// record what tools/dir holds before current can point at it: a kill
	// after the switch must not leave a current version the state does
	// not know (the next activation would refuse to touch it)
	if err := m.save(s); err != nil {
		return fail(err)
	}
	if err := m.check(ctx, o, dir); err != nil {
		return fail(err)
	}
	if err := m.switchTo(dir); err != nil {
		return fail(err)
	}
	if running != "" && running != o.Version {
		s.Previous = running
	}
	s.Running, s.RunningSince, s.Proposed, s.LastError = o.Version, m.Now().UTC(), "", ""
	s.Current = dir
	return s, m.save(s)
}

func semverOrNil(v string) *semver.Version {
	sv, err := semver.NewVersion(v)
	if err != nil {
		return nil
	}
	return sv
}

// place puts the verified version directory at tools/dir, reusing one
// unpacked from the same sha256.
func (m *Machine) place(ctx context.Context, sel agents.Selection, dir string, s *State, cache string) error {
	final := filepath.Join(m.Tools(), dir)
	if _, err := os.Stat(final); err == nil {
		if s.Versions[dir] == sel.SHA256 {
			return nil
		}
		// other content under the same name (or unknown): replace it, unless it is current
		if cur, _ := os.Readlink(filepath.Join(m.Tools(), "current")); cur == dir {
			return fmt.Errorf("%s holds other content than %s (sha256 %s) and is current; not replacing the running agent", final, sel.URL, sel.SHA256)
		}
		if err := os.RemoveAll(final); err != nil {
			return err
		}
	}
	file, err := agents.Fetch(ctx, sel, cache)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.Tools(), 0o755); err != nil {
		return err
	}
	// unpack beside tools/ (same file system), then rename into it
	tmp := filepath.Join(filepath.Dir(m.Tools()), ".tmp-"+dir)
	os.RemoveAll(tmp)
	if err := agents.Unpack(file, tmp, 0); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	s.Versions[dir] = sel.SHA256
	return nil
}

// check runs the check of the version in tools/dir.
func (m *Machine) check(ctx context.Context, o Options, dir string) error {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	vdir := filepath.Join(m.Tools(), dir)
	var cmd *exec.Cmd
	if o.Check != "" {
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", o.Check)
	} else {
		cmd = exec.CommandContext(ctx, filepath.Join(vdir, "bin", m.Name), "--version")
	}
	cmd.Env = append(os.Environ(), "IMAGEBAKE_AGENT_DIR="+vdir, "IMAGEBAKE_AGENT_VERSION="+o.Version)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	what := fmt.Sprintf("%s --version", filepath.Join(vdir, "bin", m.Name))
	if o.Check != "" {
		what = o.Check
	}
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%w: %s %s: `%s` did not finish within %s; current left at the running version", ErrCheck, m.Name, o.Version, what, timeout)
	}
	if err != nil {
		return fmt.Errorf("%w: %s %s: `%s`: %v: %s; current left at the running version", ErrCheck, m.Name, o.Version, what, err, strings.TrimSpace(string(out)))
	}
	if o.Check == "" && strings.TrimSpace(string(out)) != o.Version {
		return fmt.Errorf("%w: %s %s: `%s` printed %q, want %q; current left at the running version", ErrCheck, m.Name, o.Version, what, strings.TrimSpace(string(out)), o.Version)
	}
	return nil
}

// switchTo points current at dir: a new link under a temporary name,
// renamed over the old one.
func (m *Machine) switchTo(dir string) error {
	cur := filepath.Join(m.Tools(), "current")
	tmp := filepath.Join(m.Tools(), ".current-new")
	os.Remove(tmp)
	if err := os.Symlink(dir, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, cur); err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(m.Tools())
	if err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Rollback switches current back to the previous version, after the same check.
func (m *Machine) Rollback(ctx context.Context, o Options) (*State, error) {
	if err := failure.NeedLinux("rolling agent binaries back"); err != nil {
		return nil, err
	}
	s, err := m.Status()
	if err != nil {
		return nil, err
	}
	if s.Previous == "" {
		return s, fmt.Errorf("%s: no previous version recorded in %s: %w", m.Name, m.stateFile(), failure.ErrNotFound)
	}
	dir := m.dirName(s.Previous)
	if _, err := os.Stat(filepath.Join(m.Tools(), dir)); err != nil {
		return s, fmt.Errorf("%s: previous version %s is not in %s any more (pruned?): %w", m.Name, s.Previous, m.Tools(), failure.ErrNotFound)
	}
	lf, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	o.Version = s.Previous
	if err := m.check(ctx, o, dir); err != nil {
		s.LastError, s.LastErrorAt = err.Error(), m.Now().UTC()
		return s, errors.Join(err, m.save(s))
	}
	if err := m.switchTo(dir); err != nil {
		return s, err
	}
	s.Previous, s.Running = s.Running, o.Version
	s.RunningSince, s.LastError, s.Current = m.Now().UTC(), "", dir
	return s, m.save(s)
}

// Prune removes version directories beyond the newest keep, never the
// current or previous one. It returns what it removed.
func (m *Machine) Prune(keep int) ([]string, error) {
	lf, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	s, err := m.Status()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(m.Tools())
	if err != nil {
		return nil, err
	}
	type vd struct {
		name string
		v    *semver.Version
	}
	var dirs []vd
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || !strings.HasSuffix(n, "-"+m.Arch) {
			continue
		}
		if v := semverOrNil(strings.TrimSuffix(n, "-"+m.Arch)); v != nil {
			dirs = append(dirs, vd{n, v})
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].v.GreaterThan(dirs[j].v) })
	protect := map[string]bool{s.Current: true}
	if s.Previous != "" {
		protect[m.dirName(s.Previous)] = true
	}
	var removed []string
	for i, d := range dirs {
		if i < keep || protect[d.name] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(m.Tools(), d.name)); err != nil {
			return removed, err
		}
		delete(s.Versions, d.name)
		removed = append(removed, d.name)
	}
	return removed, m.save(s)
}

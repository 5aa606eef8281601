package agents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/tarball"
)

// ErrExists marks a publish of a version that exists with other content.
var ErrExists = fmt.Errorf("agent binaries already published with other content: %w", failure.ErrVerify)

// lockTools takes the store's exclusive lock; publishers, index rebuilds
// and syncs into one store take turns.
func (d *DirStore) lockTools() (*os.File, error) {
	return flock.Lock(filepath.Join(d.Tools(), ".lock"))
}

func (d *DirStore) indexOrEmpty(ctx context.Context) (*Index, error) {
	ix, err := d.Index(ctx)
	if errors.Is(err, ErrNoIndex) {
		return &Index{Version: IndexFormat}, nil
	}
	return ix, err
}

func (d *DirStore) writeIndex(ix *Index) error {
	b, err := ix.Encode()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(d.Tools(), IndexName), b, 0o644)
}

// PublishOptions names what is published.
type PublishOptions struct {
	Name, Version, OS, Arch string
	// Epoch is the archive's mtime ceiling (SOURCE_DATE_EPOCH); zero means 1970.
	Epoch time.Time
}

// Publish packs the directory from into a deterministic tarball named by
// the scheme and adds it to the store's index. Publishing the same content
// again is a no-op; the same version with other content is refused.
func Publish(ctx context.Context, d *DirStore, from string, o PublishOptions) (Entry, bool, error) {
	if err := o.check(from); err != nil {
		return Entry{}, false, err
	}
	lock, err := d.lockTools()
	if err != nil {
		return Entry{}, false, err
	}
	defer lock.Close()
	tmp, e, err := pack(from, o, d.Tools())
	if err != nil {
		return Entry{}, false, err
	}
	defer os.Remove(tmp)
	ix, err := d.indexOrEmpty(ctx)
	if err != nil {
		return Entry{}, false, err
	}
	if old, ok, err := ix.present(e, d.Location()); ok || err != nil {
		return old, false, err
	}
	dst := filepath.Join(d.Tools(), e.Path)
	if _, err := os.Stat(dst); err == nil {
		return Entry{}, false, fmt.Errorf("%w: %s exists but is not in the index; run `imagebake agents index %s` first", ErrExists, dst, d.Root())
	}
	if err := os.Rename(tmp, dst); err != nil {
		return Entry{}, false, err
	}
	ix.Agents = append(ix.Agents, e)
	if err := d.writeIndex(ix); err != nil {
		return Entry{}, false, err
	}
	return e, true, nil
}

func (o PublishOptions) entry() Entry {
	return Entry{Name: o.Name, Version: o.Version, OS: o.OS, Arch: o.Arch, SHA256: strings.Repeat("0", 64), Path: FileName(o.Name, o.Version, o.OS, o.Arch)}
}

// check refuses options that name no valid entry, and a source that is
// not a directory.
func (o PublishOptions) check(from string) error {
	e := o.entry()
	if err := e.check(); err != nil {
		return fmt.Errorf("%w: %v", failure.ErrUsage, err)
	}
	if fi, err := os.Stat(from); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: --from %s is not a directory", failure.ErrUsage, from)
	}
	return checkLayout(from, o.Name)
}

// checkLayout refuses a tree that is not agent binaries as images unpack
// them: bin/NAME, a regular executable file, is what the image runs.
func checkLayout(from, name string) error {
	main := filepath.Join(from, "bin", name)
	fi, err := os.Lstat(main)
	var problem string
	switch {
	case err != nil:
		var entries []string
		if des, err := os.ReadDir(from); err == nil {
			for _, d := range des {
				entries = append(entries, d.Name())
			}
		}
		problem = fmt.Sprintf("it has no bin/%s (its top level: %s)", name, strings.Join(entries, ", "))
	case !fi.Mode().IsRegular():
		problem = fmt.Sprintf("bin/%s is not a regular file (%s)", name, fi.Mode().Type())
	case fi.Mode().Perm()&0o111 == 0:
		problem = fmt.Sprintf("bin/%s is not executable (mode %04o)", name, fi.Mode().Perm())
	default:
		return nil
	}
	return fmt.Errorf("%w: --from %s is not agent binaries laid out as images run them: %s; want bin/%s (the agent) and whatever it needs beside it", failure.ErrUsage, from, problem, name)
}

// pack writes the deterministic tarball of from into a temporary file in
// dir and returns its path and index entry.
func pack(from string, o PublishOptions, dir string) (string, Entry, error) {
	e := o.entry()
	tmp, err := os.CreateTemp(dir, ".publish-*")
	if err != nil {
		return "", Entry{}, err
	}
	n, sum, err := packTo(tmp, from, o.Epoch)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", Entry{}, fmt.Errorf("packing %s: %w", from, err)
	}
	e.Size, e.SHA256 = n, sum
	return tmp.Name(), e, nil
}

// packTo writes the deterministic tarball of from into w and returns its
// size and sha256. The tar writer runs beside the copy; when the copy
// fails (a full disk), the pipe is closed with its error so the writer
// stops too, and packTo returns only once it has: no goroutine is left
// blocked holding a file of from.
func packTo(w io.Writer, from string, epoch time.Time) (int64, string, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		defer failure.Crash()
		err := tarball.WriteTreeGz(pw, from, "", epoch)
		pw.CloseWithError(err)
		done <- err
	}()
	n, sum, err := copyHash(w, pr)
	pr.CloseWithError(fmt.Errorf("the copy stopped: %w", errOr(err, io.ErrClosedPipe)))
	if werr := <-done; err == nil && werr != nil {
		err = werr
	}
	return n, sum, err
}

func errOr(err, other error) error {
	if err != nil {
		return err
	}
	return other
}

// present says whether ix holds e already (the same sha256) and refuses
// other content under the same name, version and platform.
func (ix *Index) present(e Entry, where string) (Entry, bool, error) {
	old, ok := ix.Find(e.Name, e.Version, e.OS, e.Arch)
	switch {
	case !ok:
		return Entry{}, false, nil
	case old.SHA256 == e.SHA256:
		return old, true, nil
	}
	return Entry{}, false, fmt.Errorf("%w: %s %s for %s is in %s with sha256 %s; this content has sha256 %s. Releases are immutable: publish a new version",
		ErrExists, e.Name, e.Version, e.Platform(), where, old.SHA256, e.SHA256)
}

// Reindex regenerates the store's index from the tarballs in tools/,
// atomically. It returns the file names it skipped (not in the scheme).
func Reindex(ctx context.Context, d *DirStore) (*Index, []string, error) {
	lock, err := d.lockTools()
	if err != nil {
		return nil, nil, err
	}
	defer lock.Close()
	ents, err := os.ReadDir(d.Tools())
	if err != nil {
		return nil, nil, err
	}
	withdrawn := map[string]*Withdrawal{} // kept across a re-index, by content
	if old, err := d.Index(ctx); err == nil {
		for _, e := range old.Agents {
			if e.Withdrawn != nil {
				withdrawn[e.Path+" "+e.SHA256] = e.Withdrawn
			}
		}
	}
	ix := &Index{Version: IndexFormat, Agents: []Entry{}}
	var skipped []string
	for _, de := range ents {
		n := de.Name()
		if !de.Type().IsRegular() || !strings.HasSuffix(n, ".tar.gz") {
			continue
		}
		name, ver, os_, arch, ok := ParseFileName(n)
		if !ok {
			skipped = append(skipped, n)
			continue
		}
		f, err := os.Open(filepath.Join(d.Tools(), n))
		if err != nil {
			return nil, nil, err
		}
		size, sum, err := copyHash(io.Discard, f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
		ix.Agents = append(ix.Agents, Entry{Name: name, Version: ver, OS: os_, Arch: arch, Size: size, SHA256: sum, Path: n, Withdrawn: withdrawn[n+" "+sum]})
	}
	sort.Strings(skipped)
	if err := d.writeIndex(ix); err != nil {
		return nil, nil, err
	}
	return ix, skipped, nil
}

// SyncOptions filter what Sync mirrors.
type SyncOptions struct {
	Name   string   // "" for every agent
	Major  string   // "" for every version, else a major number
	Arches []string // empty for every arch
	// Progress, when not nil, is told of each file.
	Progress func(e Entry, skipped bool)
}

// SyncReport says what Sync did.
type SyncReport struct {
	Fetched, Skipped []Entry
	Bytes            int64
}

// Sync mirrors from into the directory store to: each selected file is
// downloaded to a .part file (resuming one left by an interrupted run),
// verified against the index's size and sha256, and only then renamed to
// its final name. The destination index is written at the end, atomically.
func Sync(ctx context.Context, from Store, to *DirStore, o SyncOptions) (*SyncReport, error) {
	selected, err := o.selected(ctx, from)
	if err != nil {
		return nil, err
	}
	lock, err := to.lockTools()
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	dst, err := to.indexOrEmpty(ctx)
	if err != nil {
		return nil, err
	}
	rep := &SyncReport{}
	for _, e := range selected {
		if old, ok := dst.Find(e.Name, e.Version, e.OS, e.Arch); ok && old.SHA256 != e.SHA256 {
			return rep, fmt.Errorf("%w: %s %s for %s: %s has sha256 %s, %s has %s", ErrConflict, e.Name, e.Version, e.Platform(), from.Location(), e.SHA256, to.Location(), old.SHA256)
		}
		final := filepath.Join(to.Tools(), filepath.FromSlash(e.Path))
		if verifyFile(final, e, final) == nil {
			rep.Skipped = append(rep.Skipped, e)
			if o.Progress != nil {
				o.Progress(e, true)
			}
		} else {
			if err := syncFile(ctx, from, e, final); err != nil {
				return rep, err
			}
			rep.Fetched = append(rep.Fetched, e)
			rep.Bytes += e.Size
			if o.Progress != nil {
				o.Progress(e, false)
			}
		}
		if _, ok := dst.Find(e.Name, e.Version, e.OS, e.Arch); !ok {
			dst.Agents = append(dst.Agents, e)
		}
	}
	return rep, to.writeIndex(dst)
}

// selected reads from's index and returns the entries o selects.
func (o SyncOptions) selected(ctx context.Context, from Store) ([]Entry, error) {
	src, err := from.Index(ctx)
	if err != nil {
		return nil, err
	}
	var major *semver.Constraints
	if o.Major != "" {
		if major, err = semver.NewConstraint(o.Major + ".x-0"); err != nil {
			return nil, fmt.Errorf("%w: --major %q: %v", failure.ErrUsage, o.Major, err)
		}
	}
	archOK := map[string]bool{}
	for _, a := range o.Arches {
		archOK[a] = true
	}
	var out []Entry
	for _, e := range src.Agents {
		if (o.Name != "" && e.Name != o.Name) || (major != nil && !major.Check(e.v)) || (len(archOK) > 0 && !archOK[e.Arch]) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

func syncFile(ctx context.Context, from Store, e Entry, final string) error {
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	part := final + ".part"
	var offset int64
	if fi, err := os.Stat(part); err == nil && fi.Size() < e.Size {
		offset = fi.Size()
	}
	r, err := from.Open(ctx, e.Path, offset)
	if errors.Is(err, errNoRange) {
		offset = 0
		r, err = from.Open(ctx, e.Path, 0)
	}
	if err != nil {
		return fmt.Errorf("agent binaries %s %s for %s: %w", e.Name, e.Version, e.Platform(), err)
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if offset > 0 {
		flags = os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		r.Close()
		return err
	}
	// a fresh download is hashed as it arrives; a resumed one is read again whole
	n, sum, err := copyHash(f, r)
	r.Close()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("agent binaries %s %s for %s: downloading %s/%s (rerun to resume): %w", e.Name, e.Version, e.Platform(), from.Location(), e.Path, err)
	}
	where := from.Location() + "/" + e.Path
	if offset == 0 {
		err = e.match(n, sum, where)
	} else {
		err = verifyFile(part, e, where)
	}
	if err != nil {
		os.Remove(part) // a bad download is not resumed
		return err
	}
	return os.Rename(part, final)
}

// Withdraw marks the agent binaries name version os/arch in d as
// withdrawn (a broken upload): selection skips them from now on, while a
// release that pinned them by sha256 can still be rebuilt. The file stays.
// Withdrawing again keeps the first withdrawal.
func Withdraw(ctx context.Context, d *DirStore, name, version, os_, arch, reason string, at time.Time) (Entry, error) {
	if strings.TrimSpace(reason) == "" {
		return Entry{}, errNoReason
	}
	lock, err := d.lockTools()
	if err != nil {
		return Entry{}, err
	}
	defer lock.Close()
	ix, err := d.Index(ctx)
	if err != nil {
		return Entry{}, err
	}
	e, changed, err := ix.withdraw(name, version, os_, arch, reason, at, d.Location())
	if err != nil || !changed {
		return e, err
	}
	return e, d.writeIndex(ix)
}

var errNoReason = fmt.Errorf("%w: a withdrawal needs --reason, so users learn why", failure.ErrUsage)

// withdraw marks an entry of ix withdrawn; it says whether ix changed.
func (ix *Index) withdraw(name, version, os_, arch, reason string, at time.Time, where string) (Entry, bool, error) {
	for i, e := range ix.Agents {
		if e.Name != name || e.Version != version || e.OS != os_ || e.Arch != arch {
			continue
		}
		if e.Withdrawn != nil {
			return e, false, nil
		}
		ix.Agents[i].Withdrawn = &Withdrawal{Reason: reason, Date: at.UTC().Format(time.RFC3339)}
		return ix.Agents[i], true, nil
	}
	var has []string
	for _, e := range ix.Agents {
		if e.Name == name {
			has = append(has, e.Version+" "+e.Platform())
		}
	}
	if len(has) == 0 {
		has = []string{"nothing of " + name}
	}
	return Entry{}, false, fmt.Errorf("%s %s for %s/%s is not in %s (it has %s): %w", name, version, os_, arch, where, strings.Join(has, ", "), failure.ErrNotFound)
}

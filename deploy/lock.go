package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/strict"
	"github.com/imagebake/imagebake/manifests/catalog"
)

// LockVersion is the deploy lock format written.
const LockVersion = 1

// Lock is a deploy file's exact selection at one moment (deploy.lock):
// `select --lock` writes it, and `check --lock` says whether the images
// it names are still what the file selects, with the same digests. Paths
// are relative to the lock's directory.
type Lock struct {
	Version    int            `toml:"version"`
	DeployFile string         `toml:"deploy_file"` // the deploy file, relative to the lock
	Catalog    string         `toml:"catalog"`     // the catalog read, relative to the lock when a path
	Selections []LockedChoice `toml:"selection"`
}

// LockedChoice is one selection of a Lock.
type LockedChoice struct {
	Name    string        `toml:"name,omitempty"` // its key under images: ("" for the one-image form)
	Family  string        `toml:"family"`
	Version string        `toml:"version"` // the query the file wrote
	Release string        `toml:"release"` // what it resolved to
	Images  []LockedImage `toml:"image"`
}

// LockedImage is one arch's image of a LockedChoice.
type LockedImage struct {
	Arch   string `toml:"arch"`
	Name   string `toml:"name"`
	Digest string `toml:"digest"`
	Pull   string `toml:"pull,omitempty"` // REGISTRY/REPO@sha256:... when the catalog records a push
}

// NewLock is the lock of the resolved selections of the deploy file
// deployFile, read from catalog src, to be written at lockPath.
func NewLock(lockPath, deployFile, src string, all []*Resolved) Lock {
	l := Lock{Version: LockVersion, DeployFile: relTo(lockPath, deployFile), Catalog: relTo(lockPath, src)}
	for _, r := range all {
		c := LockedChoice{Name: r.Key, Family: r.Family, Version: r.Want, Release: r.Release}
		for _, im := range r.Images {
			c.Images = append(c.Images, LockedImage{Arch: im.Arch, Name: im.Name, Digest: im.Digest, Pull: im.Pull})
		}
		l.Selections = append(l.Selections, c)
	}
	return l
}

// relTo is p relative to the directory of the file at, when p is a path.
func relTo(at, p string) string {
	if strings.Contains(p, "://") {
		return p
	}
	ap, err1 := filepath.Abs(p)
	base, err2 := filepath.Abs(filepath.Dir(at))
	if err1 != nil || err2 != nil {
		return filepath.ToSlash(p)
	}
	if rel, err := filepath.Rel(base, ap); err == nil {
		return filepath.ToSlash(rel)
	}
	return filepath.ToSlash(ap)
}

// WriteLock writes l to path whole (a temporary file renamed over it).
func WriteLock(path string, l Lock) error {
	var buf bytes.Buffer
	buf.WriteString("# deploy lock: the exact images " + l.DeployFile + " selects; written by `imagebake select --lock`,\n")
	buf.WriteString("# read by `imagebake check --lock`. Paths are relative to this file.\n\n")
	if err := toml.NewEncoder(&buf).Encode(l); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes(), 0o644)
}

// ReadLock reads a deploy lock, refusing unknown keys and another version.
func ReadLock(path string) (Lock, error) {
	var l Lock
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return l, fmt.Errorf("%w: deploy lock %s does not exist (imagebake select --lock %s writes it)", failure.ErrNotFound, path, path)
		}
		return l, err
	}
	if l, err = ParseLock(b); err != nil {
		return l, fmt.Errorf("deploy lock %s: %w", path, err)
	}
	return l, nil
}

// ParseLock reads a deploy lock's bytes: usage errors for unknown keys, a
// version this imagebake does not read, and a selection without what it
// locks.
func ParseLock(b []byte) (Lock, error) {
	var l Lock
	if err := strict.DecodeTOML(b, &l); err != nil {
		return l, fmt.Errorf("%w: %v", failure.ErrUsage, err)
	}
	if l.Version != LockVersion {
		return l, fmt.Errorf("%w: version %d; this imagebake reads version %d", failure.ErrUsage, l.Version, LockVersion)
	}
	for i, s := range l.Selections {
		if s.Family == "" || s.Release == "" || len(s.Images) == 0 {
			return l, fmt.Errorf("%w: selection %d names no family, release or image", failure.ErrUsage, i+1)
		}
	}
	return l, nil
}

// CompareLock says how the resolved selections of f differ from the lock:
// a selection that now resolves to another release, or to none, or is
// gone from f (the lock is stale), and a locked image whose digest the
// catalog no longer gives (a release changed under its number: refused).
// ok lines say what still matches.
func CompareLock(l Lock, f *File, all []*Resolved, c *catalog.Catalog) (ok, stale, changed []string) {
	inFile := map[string]bool{}
	for _, s := range f.Selections {
		inFile[s.Key] = true
	}
	now := map[string]*Resolved{}
	for _, r := range all {
		now[r.Key] = r
	}
	for _, s := range l.Selections {
		label := s.Name
		if label == "" {
			label = s.Family
		}
		r := now[s.Name]
		switch {
		case r == nil && inFile[s.Name]:
			stale = append(stale, fmt.Sprintf("%s: locked at %s %s, but the deploy file's selection resolves to no release now (the errors above say why)", label, s.Family, s.Release))
			continue
		case r == nil:
			stale = append(stale, fmt.Sprintf("%s: locked at %s %s, but the deploy file no longer has this selection", label, s.Family, s.Release))
			continue
		case r.Family != s.Family || r.Release != s.Release:
			stale = append(stale, fmt.Sprintf("%s: locked at %s %s, the deploy file now selects %s %s (imagebake select --lock writes the new lock)", label, s.Family, s.Release, r.Family, r.Release))
		}
		changed = append(changed, lockedDigests(label, s, c)...)
		if r.Family == s.Family && r.Release == s.Release {
			ok = append(ok, fmt.Sprintf("%s: %s %s, %d image(s) as locked", label, s.Family, s.Release, len(s.Images)))
		}
	}
	return ok, stale, changed
}

// lockedDigests names the locked images of s whose digest the catalog now
// gives otherwise, or no longer gives.
func lockedDigests(label string, s LockedChoice, c *catalog.Catalog) []string {
	var out []string
	var rel *catalog.Release
	if f := c.Family(s.Family, false); f != nil {
		rel = f.Release(s.Release)
	}
	if rel == nil {
		return []string{fmt.Sprintf("%s: %s %s is locked but not in the catalog", label, s.Family, s.Release)}
	}
	have := map[string]string{}
	for _, im := range rel.Images {
		have[im.Arch] = im.Digest
	}
	for _, im := range s.Images {
		if have[im.Arch] != im.Digest {
			out = append(out, fmt.Sprintf("%s: %s is locked at %s, the catalog gives %s", label, im.Name, im.Digest, orNone(have[im.Arch])))
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

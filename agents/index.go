// Package agents finds, verifies and publishes agent binaries: the per-arch
// tarballs every machine runs, stored as NAME-X.Y.Z-ARCH.tar.gz (or
// NAME-X.Y.Z-OS-ARCH.tar.gz) under tools/ of a store.
//
// # Stores and the index
//
// A store is a local directory or a read-only HTTP(S) URL. Its tools/
// folder holds the tarballs and index.json, the only thing read to learn
// what a store has (an HTTP store is never listed):
//
//	{"version": 1, "agents": [
//	  {"name": "mozagent", "version": "2.4.0", "os": "linux", "arch": "amd64",
//	   "size": 1234, "sha256": "64 hex digits", "path": "mozagent-2.4.0-amd64.tar.gz"}]}
//
// path is relative to tools/. Entries are sorted by name, version, os and
// arch. `imagebake agents index DIR` regenerates a directory store's index.
//
// # Selection
//
// Several stores form a chain, searched in order (private first). For a
// wanted major, constraint or exact version and an os/arch, Select returns
// the largest matching version over the whole chain; a version held by
// several stores must have one sha256 everywhere. Pre-releases are taken
// only when asked for or named exactly. A miss names every store searched,
// what each held, and the nearest candidates.
package agents

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/imagebake/imagebake/internal/failure"
)

// IndexFormat is the index format version this package writes.
const IndexFormat = 1

// IndexName is the index file, inside tools/.
const IndexName = "index.json"

// ErrBadIndex marks an index that cannot be used.
var ErrBadIndex = fmt.Errorf("invalid agent index: %w", failure.ErrUsage)

// Entry is one tarball in an index.
type Entry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Path    string `json:"path"`
	// Withdrawn marks a broken upload: selection skips it, but it stays
	// for rebuilding old releases by their exact sha256.
	Withdrawn *Withdrawal `json:"withdrawn,omitempty"`

	v *semver.Version
}

// Withdrawal says why and when agent binaries were withdrawn.
type Withdrawal struct {
	Reason string `json:"reason"`
	Date   string `json:"date"` // RFC 3339
}

// SemVer is the parsed version.
func (e *Entry) SemVer() *semver.Version { return e.v }

// Platform is "os/arch".
func (e Entry) Platform() string { return e.OS + "/" + e.Arch }

// Index lists a store's agent binaries.
type Index struct {
	Version int     `json:"version"`
	Agents  []Entry `json:"agents"`
}

// Hand-written checks: an index of 10,000 entries is read on every bake.
func isName(s string) bool {
	if s == "" || !isLowerDigit(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLowerDigit(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLowerDigit(c) && c != '_' {
			return false
		}
	}
	return s != ""
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isLowerDigit(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// ParseIndex decodes and checks an index.
func ParseIndex(b []byte) (*Index, error) {
	var ix Index
	// Unknown fields are tolerated so newer writers can add some; the
	// format version guards incompatible changes.
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadIndex, err)
	}
	if ix.Version != IndexFormat {
		return nil, fmt.Errorf("%w: format version %d, this imagebake reads %d", ErrBadIndex, ix.Version, IndexFormat)
	}
	for i := range ix.Agents {
		if err := ix.Agents[i].check(); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrBadIndex, i+1, err)
		}
	}
	return &ix, nil
}

func (e *Entry) check() error {
	if !isName(e.Name) {
		return fmt.Errorf("name %q is not a lower-case agent name", e.Name)
	}
	v, err := semver.StrictNewVersion(e.Version)
	if err != nil {
		return fmt.Errorf("%s: version %q is not X.Y.Z: %v", e.Name, e.Version, err)
	}
	e.v = v
	if !isWord(e.OS) || !isWord(e.Arch) {
		return fmt.Errorf("%s %s: os %q / arch %q must be lower-case words", e.Name, e.Version, e.OS, e.Arch)
	}
	if e.Size < 0 || !isSHA256(e.SHA256) {
		return fmt.Errorf("%s %s %s: size %d / sha256 %q invalid", e.Name, e.Version, e.Platform(), e.Size, e.SHA256)
	}
	c := path.Clean(e.Path)
	if e.Path == "" || c != e.Path || strings.HasPrefix(c, "/") || c == ".." || strings.HasPrefix(c, "../") || strings.Contains(c, "\\") {
		return fmt.Errorf("%s %s %s: path %q is not a clean path inside tools/", e.Name, e.Version, e.Platform(), e.Path)
	}
	return nil
}

func (e Entry) key() string { return e.Name + " " + e.Version + " " + e.Platform() }

// Sort orders entries by name, version (ascending), os and arch.
func (ix *Index) Sort() {
	sort.SliceStable(ix.Agents, func(i, j int) bool {
		a, b := &ix.Agents[i], &ix.Agents[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if c := a.v.Compare(b.v); c != 0 {
			return c < 0
		}
		if a.OS != b.OS {
			return a.OS < b.OS
		}
		return a.Arch < b.Arch
	})
}

// Encode returns the index's canonical bytes.
func (ix *Index) Encode() ([]byte, error) {
	ix.Version = IndexFormat
	seen := map[string]bool{}
	for i := range ix.Agents {
		if err := ix.Agents[i].check(); err != nil {
			return nil, err
		}
		if seen[ix.Agents[i].key()] {
			return nil, fmt.Errorf("%w: %s listed twice", ErrBadIndex, ix.Agents[i].key())
		}
		seen[ix.Agents[i].key()] = true
	}
	ix.Sort()
	if ix.Agents == nil {
		ix.Agents = []Entry{}
	}
	b, err := json.MarshalIndent(ix, "", " ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Find returns the entry for name, version, os and arch.
func (ix *Index) Find(name, version, os, arch string) (Entry, bool) {
	for _, e := range ix.Agents {
		if e.Name == name && e.Version == version && e.OS == os && e.Arch == arch {
			return e, true
		}
	}
	return Entry{}, false
}

// fileRE parses NAME-X.Y.Z[-PRE]-[OS-]ARCH.tar.gz. PRE has no dashes and
// is taken only when the rest cannot be OS-ARCH, so "2.4.0-darwin-arm64"
// is darwin/arm64 and "2.5.0-rc.1-amd64" a pre-release; the index, not the
// file name, is authoritative.
var fileRE = regexp.MustCompile(`^([a-z0-9][a-z0-9_.-]*?)-(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)??)-(?:([a-z0-9_]+)-)?([a-z0-9_]+)\.tar\.gz$`)

// ParseFileName splits an agent tarball's file name. A name without an OS
// is for linux.
func ParseFileName(file string) (name, version, os, arch string, ok bool) {
	m := fileRE.FindStringSubmatch(file)
	if m == nil {
		return "", "", "", "", false
	}
	if _, err := semver.StrictNewVersion(m[2]); err != nil {
		return "", "", "", "", false
	}
	os = m[3]
	if os == "" {
		os = "linux"
	}
	return m[1], m[2], os, m[4], true
}

// FileName is the tarball name of an agent: the OS is written only when
// it is not linux.
func FileName(name, version, os, arch string) string {
	if os == "linux" {
		return fmt.Sprintf("%s-%s-%s.tar.gz", name, version, arch)
	}
	return fmt.Sprintf("%s-%s-%s-%s.tar.gz", name, version, os, arch)
}

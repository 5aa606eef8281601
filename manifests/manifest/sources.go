package manifest

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/strict"
)

// SourcesFileName is the release file that lists the release's sources:
// what a rebuild needs when every upstream is gone, each kept as a blob
// of the release (blobs/sha256/HEX, the store's pool once published).
const SourcesFileName = "sources.toml"

// Source kinds.
const (
	SourceControl = "control" // the control repo's commit: a git pack of its tree
	SourceGit     = "git"     // a git module's pinned commit: a git pack of its tree
	SourceForge   = "forge"   // a Forge module's tarball
	SourceAgent   = "agent"   // an arch's agent binaries archive
	SourceBase    = "base"    // a base rootfs tarball: a layer of the release
)

// Sources lists a release's sources.
type Sources struct {
	Version int      `toml:"version"`
	Source  []Source `toml:"source"`
}

// Source is one source of a release. Commit, Tree and SHA256 are pins
// the signed manifest holds too (or, for Tree, its commit determines):
// a blob is trusted for what it proves against them, never for being
// listed here.
type Source struct {
	Kind string `toml:"kind"`
	// Name is the module's name, the arch of agents or a base, or
	// "control repo".
	Name   string `toml:"name"`
	URL    string `toml:"url,omitempty"`
	Commit string `toml:"commit,omitempty"`
	Tree   string `toml:"tree,omitempty"`
	// SHA256 is a Forge tarball's, an agent archive's or a base file's
	// pinned sha256 (hex).
	SHA256 string `toml:"sha256,omitempty"`
	// File is the name a Forge tarball has in the cache.
	File string `toml:"file,omitempty"`
	// Blob is the release blob that holds it: sha256:HEX.
	Blob string `toml:"blob"`
	Size int64  `toml:"size"`
}

var (
	sha1RE    = regexp.MustCompile(`^[0-9a-f]{40}$`)
	hex64RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	blobRE    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	cacheFile = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.tar\.gz$`)
)

// ParseSources reads sources.toml bytes; every problem is named in one
// error (failure.ErrUsage).
func ParseSources(b []byte) (*Sources, error) {
	var s Sources
	if err := strict.DecodeTOML(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", failure.ErrUsage, SourcesFileName, err)
	}
	var bad []string
	if s.Version != 1 {
		bad = append(bad, fmt.Sprintf("version %d (this imagebake reads 1)", s.Version))
	}
	for i, x := range s.Source {
		if p := x.problem(); p != "" {
			bad = append(bad, fmt.Sprintf("source %d (%s %q): %s", i+1, x.Kind, x.Name, p))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %s:\n  %s", failure.ErrUsage, SourcesFileName, strings.Join(bad, "\n  "))
	}
	return &s, nil
}

func (x Source) problem() string {
	switch {
	case !blobRE.MatchString(x.Blob):
		return fmt.Sprintf("blob %q is not sha256:HEX", x.Blob)
	case x.Size < 0:
		return "negative size"
	}
	switch x.Kind {
	case SourceControl, SourceGit:
		if !sha1RE.MatchString(x.Commit) || !sha1RE.MatchString(x.Tree) || x.URL == "" {
			return "a git source needs its url, commit and tree"
		}
	case SourceForge:
		if !hex64RE.MatchString(x.SHA256) || !cacheFile.MatchString(x.File) {
			return "a Forge source needs its sha256 and a file name like author-name-1.2.3.tar.gz"
		}
	case SourceAgent, SourceBase:
		if !hex64RE.MatchString(x.SHA256) {
			return "needs its sha256"
		}
	default:
		return "kind is not control, git, forge, agent or base"
	}
	return ""
}

// ReadSources reads the sources.toml at name.
func ReadSources(name string) (*Sources, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	s, err := ParseSources(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// Write writes s to name (whole or not at all).
func (s *Sources) Write(name string) error {
	var buf bytes.Buffer
	buf.WriteString("# What a rebuild of this release needs when its upstreams are gone; each\n# source is the blob named, checked against the signed manifest's pins.\n")
	if err := toml.NewEncoder(&buf).Encode(s); err != nil {
		return err
	}
	return atomicfile.WriteFile(name, buf.Bytes(), 0o644)
}

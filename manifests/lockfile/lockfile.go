// Package lockfile reads and writes Puppetfile.lock, the exact pins of a
// Puppetfile.
//
// # Format
//
// Puppetfile.lock is TOML. Top-level keys:
//
//	version            = 1                 # format version
//	puppetfile_sha256  = "hex"             # sha256 of the Puppetfile bytes it was made from
//	forge              = "https://..."     # Forge API base URL used for Forge modules
//	moduledir          = "modules"         # module dir, relative to the environment
//
// then one [[module]] table per module, sorted by name:
//
//	name         = "puppetlabs/stdlib"   # as written in the Puppetfile
//	kind         = "forge" | "git" | "local"
//	source       = "..."                 # git URL, or the Forge base URL
//	path         = "modules/stdlib"      # install dir, relative to the environment
//	exclude_spec = true                  # only when set
//	# git modules
//	ref_type     = "tag" | "branch" | "commit" | "ref"
//	ref          = "v1.0.0"              # as written
//	commit       = "40 hex digits"       # the resolved commit; tags are peeled
//	# Forge modules
//	ref          = "9.6.0"               # as written; absent for :latest or no version
//	version      = "9.6.0"               # the resolved release
//	url          = "https://.../puppetlabs-stdlib-9.6.0.tar.gz"
//	sha256       = "64 hex digits"       # of the release tarball
//
// The file holds no time stamps: locking the same pins twice writes the same
// bytes. Unknown keys are errors, so a typo never goes unnoticed.
package lockfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/gitarg"
	"github.com/imagebake/imagebake/internal/strict"
)

// FormatVersion is the lock format this package writes.
const FormatVersion = 1

// ErrInvalid marks a lock file that cannot be used.
var ErrInvalid = fmt.Errorf("invalid Puppetfile.lock: %w", failure.ErrUsage)

// Lock is a Puppetfile.lock.
type Lock struct {
	Version    int      `toml:"version" json:"version"`
	Puppetfile string   `toml:"puppetfile_sha256" json:"puppetfile_sha256"`
	Forge      string   `toml:"forge,omitempty" json:"forge,omitempty"`
	Moduledir  string   `toml:"moduledir" json:"moduledir"`
	Modules    []Module `toml:"module" json:"modules"`
}

// Module is one module's pin.
type Module struct {
	Name        string `toml:"name" json:"name"`
	Kind        string `toml:"kind" json:"kind"`
	Source      string `toml:"source,omitempty" json:"source,omitempty"`
	Path        string `toml:"path" json:"path"`
	ExcludeSpec bool   `toml:"exclude_spec,omitempty" json:"exclude_spec,omitempty"`
	RefType     string `toml:"ref_type,omitempty" json:"ref_type,omitempty"`
	Ref         string `toml:"ref,omitempty" json:"ref,omitempty"`
	Commit      string `toml:"commit,omitempty" json:"commit,omitempty"`
	Version     string `toml:"version,omitempty" json:"version,omitempty"`
	URL         string `toml:"url,omitempty" json:"url,omitempty"`
	SHA256      string `toml:"sha256,omitempty" json:"sha256,omitempty"`
	// ModuleName and ModuleVersion are what the module's metadata.json
	// says it is, recorded in a release's manifest once it is installed
	// (a release's levels judge modules by them, whatever the pin).
	ModuleName    string `toml:"module_name,omitempty" json:"module_name,omitempty"`
	ModuleVersion string `toml:"module_version,omitempty" json:"module_version,omitempty"`
}

// Pin is the module's exact pin, for people: a commit SHA or version@sha256.
func (m Module) Pin() string {
	switch m.Kind {
	case "git":
		return m.Commit
	case "forge":
		return m.Version + "@sha256:" + m.SHA256
	}
	return "(local)"
}

// Find returns the module named name.
func (l *Lock) Find(name string) (Module, bool) {
	i := sort.Search(len(l.Modules), func(i int) bool { return l.Modules[i].Name >= name })
	if i < len(l.Modules) && l.Modules[i].Name == name {
		return l.Modules[i], true
	}
	return Module{}, false
}

var (
	shaRE    = regexp.MustCompile(`^[0-9a-f]{40}$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Read loads and checks the lock file at name.
func Read(name string) (*Lock, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("reading lock %s: %w (create it with `imagebake puppetfile lock`)", name, err)
		}
		return nil, fmt.Errorf("reading lock %s: %w", name, err)
	}
	l, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

// Parse decodes and checks lock file bytes.
func Parse(b []byte) (*Lock, error) {
	var l Lock
	if err := strict.DecodeTOML(b, &l); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := l.check(); err != nil {
		return nil, err
	}
	return &l, nil
}

func (l *Lock) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if l.Version != FormatVersion {
		return bad("format version %d, this imagebake reads version %d", l.Version, FormatVersion)
	}
	if !sha256RE.MatchString(l.Puppetfile) {
		return bad("puppetfile_sha256 %q is not a sha256", l.Puppetfile)
	}
	for i, m := range l.Modules {
		if m.Name == "" {
			return bad("module %d has no name", i+1)
		}
		if i > 0 && l.Modules[i-1].Name >= m.Name {
			return bad("modules are not sorted by name, or %q is listed twice", m.Name)
		}
		if m.Path == "" || strings.HasPrefix(m.Path, "/") || strings.Contains("/"+m.Path+"/", "/../") {
			return bad("module %q: path %q is not inside the environment", m.Name, m.Path)
		}
		switch m.Kind {
		case "git":
			if m.Source == "" || m.Ref == "" || !shaRE.MatchString(m.Commit) {
				return bad("module %q: a git pin needs source, ref and a 40-digit commit (got commit %q)", m.Name, m.Commit)
			}
			if err := gitarg.Remote(m.Source); err != nil {
				return bad("module %q: source %q %v", m.Name, m.Source, err)
			}
			if err := gitarg.Ref(m.Ref); err != nil && m.Ref != ":control_branch" {
				return bad("module %q: ref %q %v", m.Name, m.Ref, err)
			}
		case "forge":
			if m.Version == "" || m.URL == "" || !sha256RE.MatchString(m.SHA256) {
				return bad("module %q: a Forge pin needs version, url and a sha256 (got sha256 %q)", m.Name, m.SHA256)
			}
			if err := gitarg.Remote(m.URL); err != nil {
				return bad("module %q: url %q %v", m.Name, m.URL, err)
			}
		case "local":
		default:
			return bad("module %q: unknown kind %q (want git, forge or local)", m.Name, m.Kind)
		}
	}
	return nil
}

// Sort orders the modules by name, as the file stores them.
func (l *Lock) Sort() {
	sort.Slice(l.Modules, func(i, j int) bool { return l.Modules[i].Name < l.Modules[j].Name })
}

// Encode returns the lock's canonical bytes.
func (l *Lock) Encode() ([]byte, error) {
	l.Sort()
	if l.Version == 0 {
		l.Version = FormatVersion
	}
	if err := l.check(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString("# Puppetfile.lock: exact pins of the Puppetfile, written by imagebake.\n# Do not edit; run `imagebake puppetfile lock` to update.\n\n")
	if err := toml.NewEncoder(&buf).Encode(l); err != nil {
		return nil, fmt.Errorf("encoding lock: %w", err)
	}
	return buf.Bytes(), nil
}

// Write stores the lock at name atomically.
func (l *Lock) Write(name string) error {
	b, err := l.Encode()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(name, b, 0o644)
}

// Package metadata reads a Puppet module's metadata.json: its name and
// version (which judge release levels, whatever the pin), the modules it
// depends on with their version ranges, and the Puppet versions it runs
// on. Ranges are Puppet's (SemanticPuppet: ">= 9.0.0 < 10.0.0", "1.x",
// ">= 4.13.1", "1.2.3", "||" between alternatives), read with
// Masterminds/semver, whose grammar is a superset of them.
package metadata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// FileName is where a module keeps its metadata.
const FileName = "metadata.json"

// MaxSize is the largest metadata.json read: real ones are a few KB.
const MaxSize = 1 << 20

// Metadata is what imagebake reads of a metadata.json.
type Metadata struct {
	Name         string       `json:"name"`    // author-name, as written
	Version      string       `json:"version"` // X.Y.Z
	Dependencies []Dependency `json:"dependencies"`
	Requirements []Dependency `json:"requirements"` // "puppet" (and "openvox") ranges
	OSSupport    []OSSupport  `json:"operatingsystem_support"`
}

// Dependency is a module (or, in requirements, Puppet itself) and the
// versions of it that work.
type Dependency struct {
	Name  string `json:"name"`
	Range string `json:"version_requirement"`
}

// OSSupport is one operating system a module supports.
type OSSupport struct {
	OS       string   `json:"operatingsystem"`
	Releases []string `json:"operatingsystemrelease"`
}

// Parse reads metadata.json bytes; file names it in errors. Unknown keys
// are allowed (modules carry many); the ones read must have their types,
// the version must be a version and every range must parse.
func Parse(file string, b []byte) (*Metadata, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s is larger than %d KiB, more than a metadata.json holds", file, MaxSize>>10)
	}
	var m Metadata
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s: %s is a JSON %s, want a %s", file, te.Field, te.Value, te.Type)
		}
		return nil, fmt.Errorf("%s is not JSON: %v", file, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s holds more than one JSON value", file)
	}
	var errs []string
	if m.Name == "" {
		errs = append(errs, "no name")
	}
	if _, err := semver.StrictNewVersion(m.Version); err != nil {
		errs = append(errs, fmt.Sprintf("version %q is not X.Y.Z", m.Version))
	}
	for _, list := range [][]Dependency{m.Dependencies, m.Requirements} {
		for _, d := range list {
			if d.Name == "" {
				errs = append(errs, "a dependency or requirement without a name")
				continue
			}
			if _, err := d.Constraint(); err != nil {
				errs = append(errs, fmt.Sprintf("%s: version_requirement %q does not parse: %v", d.Name, d.Range, err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %s", file, strings.Join(errs, "; "))
	}
	return &m, nil
}

// Constraint is the dependency's range; none given is any version.
func (d Dependency) Constraint() (*semver.Constraints, error) {
	r := strings.TrimSpace(d.Range)
	if r == "" {
		r = "*"
	}
	return semver.NewConstraint(r)
}

// Allows says whether version v is in the dependency's range. A version
// that is not one (a branch name) is never in a range.
func (d Dependency) Allows(v string) bool {
	c, err := d.Constraint()
	if err != nil {
		return false
	}
	sv, err := semver.NewVersion(strings.TrimPrefix(v, "v"))
	if err != nil {
		return false
	}
	return c.Check(sv)
}

// Slug normalises a module name: puppetlabs/stdlib, puppetlabs-stdlib and
// PuppetLabs-stdlib are all "puppetlabs-stdlib".
func Slug(name string) string {
	return strings.ToLower(strings.Replace(strings.TrimSpace(name), "/", "-", 1))
}

// Short is the module's directory name: what follows the author.
func Short(name string) string {
	s := Slug(name)
	if i := strings.IndexByte(s, '-'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Puppets are the module's requirements on Puppet, named "puppet" or
// "openvox" (the fork that carries Puppet's version line on) as written:
// a module runs on a Puppet any of them allows.
func (m *Metadata) Puppets() []Dependency {
	var out []Dependency
	for _, r := range m.Requirements {
		switch strings.ToLower(r.Name) {
		case "puppet", "openvox":
			out = append(out, r)
		}
	}
	return out
}

// Puppet is the module's Puppet range (requirements named "puppet" or
// "openvox"), ok false when it states none.
func (m *Metadata) Puppet() (Dependency, bool) {
	for _, r := range m.Requirements {
		switch strings.ToLower(r.Name) {
		case "puppet", "openvox":
			return r, true
		}
	}
	return Dependency{}, false
}

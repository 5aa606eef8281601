// Package catalog is the signed index of every release of every family in a
// store, with its lifecycle.
//
// # Format (catalog.toml)
//
//	format = 1
//	serial  = 12                       # grows with every write (rollback protection)
//	expires = 2027-01-31T00:00:00Z     # readers refuse the catalog after (optional; catalog refresh)
//	expiry_notice_days = 7             # readers warn this long before
//	[[family]]
//	name       = "example"
//	grace_days = 14                    # how long a superseded minor line may lag its newest security release
//	  [[family.support]]               # one per major
//	  major       = 1
//	  eol         = 2027-06-30         # end of life of the major
//	  notice_days = 90                 # warn this long before
//	  [[family.release]]               # sorted by version
//	  version         = "1.0.1"
//	  date            = 2026-05-01T12:00:00Z   # the release commit's time (its epoch)
//	  security        = true           # MAJOR.MINOR.SECURITY with SECURITY > 0
//	  advisories      = ["CVE-2014-0160"]   # what a security release fixes (bake --advisory)
//	    [[family.release.fix]]         # what fixed each advisory (manifest [[fix]])
//	    advisory = "CVE-2014-0160"
//	      [[family.release.fix.package]]
//	      name = "openssl", format = "dpkg", old = "1.0.1e-2+deb7u4", new = "1.0.1e-2+deb7u5"
//	  state           = "active"       # active, deprecated, obsolete, revoked
//	  reason          = ""             # why, for any state but active
//	  replacement     = ""             # the version to move to
//	  state_date      = 2026-06-01     # when the state took effect
//	  manifest_digest = "sha256:..."   # of images/FAMILY-VERSION/manifest.toml
//	  index_digest    = "sha256:..."
//	    [[family.release.image]]
//	    arch = "amd64", name = "example-1.0.1-amd64", digest = "sha256:...",
//	    location = "images/example-1.0.1"   # relative to the store
//
// # Store layout
//
// A directory store holds images/FAMILY-VERSION/ (the release directory,
// with manifest.toml.minisig) and catalog, a symlink to a generation
// directory .catalog-N/ holding catalog.toml and catalog.toml.minisig.
// Every change writes a new generation and renames a new symlink over the
// old one, so the catalog and its signature change together: a reader, or
// a publisher killed at any instant, sees the old pair or the new one.
package catalog

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/strict"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// Format is the catalog format this package writes.
const Format = 1

// The release states.
const (
	Active     = "active"
	Deprecated = "deprecated" // still usable; users are warned
	Obsolete   = "obsolete"   // must not be used; a replacement is named
	Revoked    = "revoked"    // must not be used, ever (a bad or compromised release)
)

// ErrInvalid marks a catalog that cannot be used.
var ErrInvalid = fmt.Errorf("invalid catalog: %w", failure.ErrUsage)

// ErrExists marks a publish of a version that exists with other content.
var ErrExists = fmt.Errorf("release already published with other content: %w", failure.ErrVerify)

// Catalog is a catalog.toml.
type Catalog struct {
	Format int `toml:"format" json:"format"`
	// Serial grows with every write of the catalog: readers refuse one
	// lower than they saw before at the same location (guard.go).
	Serial uint64 `toml:"serial" json:"serial"`
	// Expires is when readers stop trusting this copy (zero: never).
	Expires time.Time `toml:"expires,omitempty" json:"expires,omitempty"`
	// ExpiryNoticeDays is how long before Expires readers are warned
	// (0: DefaultExpiryNoticeDays).
	ExpiryNoticeDays int      `toml:"expiry_notice_days,omitempty" json:"expiry_notice_days,omitempty"`
	Families         []Family `toml:"family" json:"families"`
}

// Family is one image family's releases and support windows.
type Family struct {
	Name      string    `toml:"name" json:"name"`
	GraceDays int       `toml:"grace_days" json:"grace_days"`
	Support   []Support `toml:"support,omitempty" json:"support,omitempty"`
	Releases  []Release `toml:"release" json:"releases"`
}

// Support is the support window of one major.
type Support struct {
	Major      uint64    `toml:"major" json:"major"`
	EOL        time.Time `toml:"eol" json:"eol"`
	NoticeDays int       `toml:"notice_days" json:"notice_days"`
}

// Release is one release of a family.
type Release struct {
	Version  string    `toml:"version" json:"version"`
	Date     time.Time `toml:"date" json:"date"`
	Security bool      `toml:"security" json:"security"`
	// Advisories are the security advisories the release fixes, from its
	// manifest (bake --advisory).
	Advisories []string `toml:"advisories,omitempty" json:"advisories,omitempty"`
	// Fixes say what fixed each advisory (the manifest's, or derived at
	// publish from the release before it): what publish, audit and check
	// compare other releases with.
	Fixes       []manifest.Fix `toml:"fix,omitempty" json:"fixes,omitempty"`
	State       string         `toml:"state" json:"state"`
	Reason      string         `toml:"reason,omitempty" json:"reason,omitempty"`
	Replacement string         `toml:"replacement,omitempty" json:"replacement,omitempty"`
	StateDate   time.Time      `toml:"state_date,omitempty" json:"state_date,omitempty"`
	// History is every lifecycle change, oldest first; the last is the
	// current state.
	History        []Transition `toml:"history,omitempty" json:"history,omitempty"`
	ManifestDigest string       `toml:"manifest_digest" json:"manifest_digest"`
	IndexDigest    string       `toml:"index_digest,omitempty" json:"index_digest,omitempty"`
	// Repositories are the registry repositories (REGISTRY/REPO) the
	// release was pushed to, recorded by push --store: its images are
	// pullable there by digest.
	Repositories []string `toml:"repositories,omitempty" json:"repositories,omitempty"`
	Images       []Image  `toml:"image" json:"images"`

	v *semver.Version
}

// Transition is one lifecycle change of a release.
type Transition struct {
	State       string    `toml:"state" json:"state"`
	Date        time.Time `toml:"date" json:"date"`
	Reason      string    `toml:"reason,omitempty" json:"reason,omitempty"`
	Replacement string    `toml:"replacement,omitempty" json:"replacement,omitempty"`
}

// Image is one arch's image of a release.
type Image struct {
	Arch     string `toml:"arch" json:"arch"`
	Name     string `toml:"name" json:"name"`
	Digest   string `toml:"digest" json:"digest"`
	Location string `toml:"location" json:"location"`
}

// SemVer is the release's parsed version.
func (r *Release) SemVer() *semver.Version { return r.v }

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Parse decodes and checks catalog bytes; unknown keys and states are errors.
func Parse(b []byte) (*Catalog, error) {
	var c Catalog
	if err := strict.DecodeTOML(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Format != Format {
		return nil, fmt.Errorf("%w: format %d, this imagebake reads %d", ErrInvalid, c.Format, Format)
	}
	return &c, c.check()
}

func (c *Catalog) check() error {
	if c.ExpiryNoticeDays < 0 {
		return fmt.Errorf("%w: expiry_notice_days %d is negative", ErrInvalid, c.ExpiryNoticeDays)
	}
	seenF := map[string]bool{}
	for fi := range c.Families {
		f := &c.Families[fi]
		if f.Name == "" || seenF[f.Name] {
			return fmt.Errorf("%w: family %q is unnamed or listed twice", ErrInvalid, f.Name)
		}
		seenF[f.Name] = true
		if f.GraceDays < 0 {
			return fmt.Errorf("%w: family %s: grace_days %d is negative", ErrInvalid, f.Name, f.GraceDays)
		}
		seen := map[string]bool{}
		for ri := range f.Releases {
			r := &f.Releases[ri]
			v, err := semver.StrictNewVersion(r.Version)
			if err != nil || seen[r.Version] {
				return fmt.Errorf("%w: family %s: release %q is not X.Y.Z or is listed twice", ErrInvalid, f.Name, r.Version)
			}
			seen[r.Version] = true
			r.v = v
			switch r.State {
			case Active, Deprecated, Obsolete, Revoked:
			default:
				return fmt.Errorf("%w: family %s release %s: unknown state %q (want active, deprecated, obsolete or revoked)", ErrInvalid, f.Name, r.Version, r.State)
			}
			if !digestRE.MatchString(r.ManifestDigest) {
				return fmt.Errorf("%w: family %s release %s: manifest_digest %q is not sha256:<hex>", ErrInvalid, f.Name, r.Version, r.ManifestDigest)
			}
			for _, repo := range r.Repositories {
				if err := checkRepository(repo); err != nil {
					return fmt.Errorf("%w: family %s release %s: repositories: %v", ErrInvalid, f.Name, r.Version, err)
				}
			}
			if err := manifest.CheckFixes(r.Advisories, r.Fixes); err != nil {
				return fmt.Errorf("%w: family %s release %s: %v", ErrInvalid, f.Name, r.Version, err)
			}
			if r.Replacement != "" {
				if _, err := semver.StrictNewVersion(r.Replacement); err != nil {
					return fmt.Errorf("%w: family %s release %s: replacement %q is not X.Y.Z", ErrInvalid, f.Name, r.Version, r.Replacement)
				}
			}
		}
	}
	return nil
}

// Encode returns the canonical bytes: families by name, releases by version.
func (c *Catalog) Encode() ([]byte, error) {
	c.Format = Format
	if err := c.check(); err != nil {
		return nil, err
	}
	sort.Slice(c.Families, func(i, j int) bool { return c.Families[i].Name < c.Families[j].Name })
	for fi := range c.Families {
		f := &c.Families[fi]
		sort.Slice(f.Releases, func(i, j int) bool { return f.Releases[i].v.LessThan(f.Releases[j].v) })
		sort.Slice(f.Support, func(i, j int) bool { return f.Support[i].Major < f.Support[j].Major })
	}
	var buf bytes.Buffer
	buf.WriteString("# catalog.toml: every release of every family in this store, with its lifecycle.\n# Written by imagebake; signed in catalog.toml.minisig.\n\n")
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Family returns the family named name, creating it when create is set.
func (c *Catalog) Family(name string, create bool) *Family {
	for i := range c.Families {
		if c.Families[i].Name == name {
			return &c.Families[i]
		}
	}
	if !create {
		return nil
	}
	c.Families = append(c.Families, Family{Name: name, GraceDays: 14})
	return &c.Families[len(c.Families)-1]
}

// Release returns the release of version in f.
func (f *Family) Release(version string) *Release {
	for i := range f.Releases {
		if f.Releases[i].Version == version {
			return &f.Releases[i]
		}
	}
	return nil
}

// Previous returns the release of f with the highest version below
// version (nil when there is none): what a new release is numbered after.
func (f *Family) Previous(version string) *Release {
	v, err := semver.StrictNewVersion(version)
	if err != nil {
		return nil
	}
	var best *Release
	for i := range f.Releases {
		r := &f.Releases[i]
		if r.SemVer().LessThan(v) && (best == nil || best.SemVer().LessThan(r.SemVer())) {
			best = r
		}
	}
	return best
}

// SupportOf returns the support window of major, if one is set.
func (f *Family) SupportOf(major uint64) (Support, bool) {
	for _, s := range f.Support {
		if s.Major == major {
			return s, true
		}
	}
	return Support{}, false
}

// Versions lists the family's versions, for "what exists" messages.
func (f *Family) Versions() []string {
	var out []string
	for _, r := range f.Releases {
		out = append(out, r.Version)
	}
	return out
}

// SetState changes a release's state.
func (c *Catalog) SetState(family, version, state, reason, replacement string, at time.Time) error {
	f := c.Family(family, false)
	if f == nil {
		return fmt.Errorf("family %s is not in the catalog: %w", family, failure.ErrNotFound)
	}
	r := f.Release(version)
	if r == nil {
		return fmt.Errorf("%s %s is not in the catalog (has %s): %w", family, version, strings.Join(f.Versions(), ", "), failure.ErrNotFound)
	}
	if r.State == Revoked && state != Revoked {
		return fmt.Errorf("%w: %s %s is revoked; a revoked release stays revoked", failure.ErrUsage, family, version)
	}
	if replacement != "" && f.Release(replacement) == nil {
		return fmt.Errorf("replacement %s %s is not in the catalog: %w", family, replacement, failure.ErrNotFound)
	}
	if state != Active && reason == "" {
		return fmt.Errorf("%w: a %s release needs --reason, so users learn why", failure.ErrUsage, state)
	}
	if replacement == "" && state != Active {
		replacement = r.Replacement // a second change keeps the replacement it does not name
	}
	r.History = append(r.History, Transition{State: state, Date: at.UTC(), Reason: reason, Replacement: replacement})
	r.State, r.Reason, r.Replacement, r.StateDate = state, reason, replacement, at.UTC()
	return nil
}

// SetEOL sets the end of life of a major.
func (c *Catalog) SetEOL(family string, major uint64, eol time.Time, noticeDays int) error {
	f := c.Family(family, false)
	if f == nil {
		return fmt.Errorf("family %s is not in the catalog: %w", family, failure.ErrNotFound)
	}
	has := false
	for _, r := range f.Releases {
		has = has || r.SemVer().Major() == major
	}
	if !has {
		return fmt.Errorf("%s has no release of major %d (it has %s): %w", family, major, strings.Join(f.Versions(), ", "), failure.ErrNotFound)
	}
	for i := range f.Support {
		if f.Support[i].Major == major {
			f.Support[i].EOL, f.Support[i].NoticeDays = eol.UTC(), noticeDays
			return nil
		}
	}
	f.Support = append(f.Support, Support{Major: major, EOL: eol.UTC(), NoticeDays: noticeDays})
	return nil
}

func parseVersion(v string) (*semver.Version, error) {
	sv, err := semver.StrictNewVersion(v)
	if err != nil {
		return nil, fmt.Errorf("%w: release %q is not X.Y.Z", ErrInvalid, v)
	}
	return sv, nil
}

// checkRepository accepts REGISTRY/REPO with neither tag nor digest.
func checkRepository(repo string) error {
	if strings.ContainsAny(repo, "@ ") || strings.Contains(repo, "://") {
		return fmt.Errorf("%q is not REGISTRY/REPO (no scheme, tag or digest)", repo)
	}
	if _, err := name.NewRepository(repo, name.StrictValidation); err != nil {
		return fmt.Errorf("%q is not REGISTRY/REPO: %v", repo, err)
	}
	return nil
}

// RecordPush notes that family's release version, whose manifest has
// manifestDigest, was pushed to the registry repository repo. It says
// whether the catalog changed; a manifest other than the catalog's is
// refused (another release was pushed under that number).
func (c *Catalog) RecordPush(family, version, manifestDigest, repo string) (bool, error) {
	if err := checkRepository(repo); err != nil {
		return false, fmt.Errorf("%w: %v", failure.ErrUsage, err)
	}
	rel := c.find(family, version)
	switch {
	case rel == nil:
		return false, fmt.Errorf("%s %s is not in the catalog; publish it before recording where it was pushed: %w", family, version, failure.ErrNotFound)
	case rel.ManifestDigest != manifestDigest:
		return false, fmt.Errorf("%w: the release pushed has manifest %s, the catalog's %s %s has %s", ErrManifestMismatch, manifestDigest, family, version, rel.ManifestDigest)
	}
	for _, r := range rel.Repositories {
		if r == repo {
			return false, nil
		}
	}
	rel.Repositories = append(rel.Repositories, repo)
	sort.Strings(rel.Repositories)
	return true, nil
}

// SupportedAbove says whether a major above major has an active release
// whose own end of life is after when (or not set): where the users of
// major can go when it ends.
func (f *Family) SupportedAbove(major uint64, when time.Time) bool {
	for _, r := range f.Releases {
		v := r.SemVer()
		if v.Major() <= major || r.State != Active {
			continue
		}
		if s, ok := f.SupportOf(v.Major()); ok && !s.EOL.IsZero() && !s.EOL.After(when) {
			continue
		}
		return true
	}
	return false
}

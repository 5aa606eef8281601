// Package manifest reads and writes manifest.toml, the record of one baked
// release: every input pinned and every output's digest, enough to rebuild
// the same bytes (`imagebake verify`).
//
// # Schema
//
//	format        = 1
//	family        = "example"
//	release       = "1.0.0"
//	epoch         = 1735732800        # build epoch, seconds since 1970
//	builder       = "oci" | "rootfs"
//	environment   = "/etc/puppetlabs/code/environments/production"
//	inputs_digest = "sha256:..."      # of the images' content digests: the release's content identity
//	index_digest  = "sha256:..."      # oci: the image index over all arches
//
//	[imagebake]   version, go
//	[repo]        url, tag, commit
//	[puppetfile]  sha256, lock_committed, forge, moduledir,
//	              [[puppetfile.module]] one pin each (see manifests/lockfile)
//	[[image]]     arch, os, name ("example-1.0.0-amd64"), content_digest (also in the image's
//	              release.toml), digest, artifact (path in the release dir)
//	  [image.base]   ref ("scratch", "oci:PATH@sha256:...", "rootfs:PATH@sha256:..."), digest
//	  [image.agent]  name, version, os, arch, size, sha256, source (store), path (in the store)
//	  [[image.layer]] role ("base", "environment", "agents", "release"), media_type, diff_id, digest, size
//	[[artifact]]  build, builder_id, id; [[artifact.file]] path, sha256  (Packer builds)
//
// Images are sorted by arch; nothing in it is a wall-clock time, so baking
// the same inputs twice writes the same bytes.
//
// # Content and provenance
//
// An image's bytes depend on its content identity only: the release
// number, the epoch, the builder and environment path, the control repo's
// tag and commit, the Puppetfile's sha256 and module pins (commits and
// checksums), the image's arch and name, its base digest and its agent
// binaries (name, version, platform, size, sha256). Where inputs were
// fetched from (the control repo URL, module and Forge URLs, the agent
// store and path) and the imagebake version are provenance: recorded here,
// never part of a digest. Each image's content_digest covers only its own
// arch, so an arch baked alone is the same image as in a bake of all.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/distro"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/strict"
	"github.com/imagebake/imagebake/manifests/lockfile"
)

// Format is the manifest format this package writes.
const Format = 1

// FileName is the manifest's name in a release directory.
const FileName = "manifest.toml"

// ErrInvalid marks a manifest that cannot be used.
var ErrInvalid = fmt.Errorf("invalid manifest: %w", failure.ErrUsage)

// Manifest is one release's manifest.
type Manifest struct {
	Format  int    `toml:"format" json:"format"`
	Family  string `toml:"family" json:"family"`
	Release string `toml:"release" json:"release"`
	// Advisories are the security advisories (CVE, DSA, ... IDs) the
	// release fixes, declared when it was baked (bake --advisory).
	Advisories []string `toml:"advisories,omitempty" json:"advisories,omitempty"`
	// AdvisoryFixes say, for an advisory declared with what it fixes
	// (bake --advisory DSA-6001-1=openssl,libssl3), the packages (binary
	// or source names) and modules it fixes: only those changes are its
	// fix, and a new upstream version of one is a security fix.
	AdvisoryFixes map[string][]string `toml:"advisory_fixes,omitempty" json:"advisory_fixes,omitempty"`
	// Fixes say, per advisory, what fixed it: the package and module
	// changes from the release before it in its line (a security release
	// carries only those). Recorded when the bake checked its number
	// (--previous or --catalog); a release carries an advisory's fix when
	// its packages and modules are at least the new versions.
	Fixes []Fix `toml:"fix,omitempty" json:"fixes,omitempty"`
	// MajorPackages are imagebake.toml's [release] major_packages when
	// set (nil: the default list), so that a later number check (publish)
	// judges by the rules the release was baked with.
	MajorPackages *[]string `toml:"major_packages,omitempty" json:"major_packages,omitempty"`
	Epoch         int64     `toml:"epoch" json:"epoch"`
	Builder       string    `toml:"builder" json:"builder"`
	Environment   string    `toml:"environment" json:"environment"`
	// PayloadExclude is imagebake.toml's [payload] exclude: the control
	// repo paths left out of the environment (see Excluded).
	PayloadExclude []string `toml:"payload_exclude,omitempty" json:"payload_exclude,omitempty"`
	// PartialOf, set when the release holds only some of its arches (a
	// per-arch bake, to be merged), lists all the arches of the release.
	PartialOf    []string   `toml:"partial_of,omitempty" json:"partial_of,omitempty"`
	InputsDigest string     `toml:"inputs_digest" json:"inputs_digest"`
	IndexDigest  string     `toml:"index_digest,omitempty" json:"index_digest,omitempty"`
	Imagebake    Tool       `toml:"imagebake" json:"imagebake"`
	Repo         Repo       `toml:"repo" json:"repo"`
	Puppetfile   Puppetfile `toml:"puppetfile" json:"puppetfile"`
	Images       []Image    `toml:"image" json:"images"`
	// Artifacts are what Packer builds produced from this release
	// (post-processor imagebake-manifest); outputs, not inputs.
	Artifacts []Artifact `toml:"artifact,omitempty" json:"artifacts,omitempty"`
}

// Fix is what fixed one advisory.
type Fix struct {
	Advisory string       `toml:"advisory" json:"advisory"`
	Packages []PackageFix `toml:"package,omitempty" json:"packages,omitempty"`
	Modules  []ModuleFix  `toml:"module,omitempty" json:"modules,omitempty"`
}

// PackageFix is a base package raised to a fixed version.
type PackageFix struct {
	Name   string `toml:"name" json:"name"`
	Source string `toml:"source,omitempty" json:"source,omitempty"`
	Format string `toml:"format" json:"format"` // dpkg, apk, rpm: whose version order applies
	Old    string `toml:"old" json:"old"`
	New    string `toml:"new" json:"new"`
}

// ModuleFix is a Puppetfile module raised to a fixed version (Old and New
// are module versions) or pin (no version known: the commits).
type ModuleFix struct {
	Name      string `toml:"name" json:"name"`
	Old       string `toml:"old" json:"old"`
	New       string `toml:"new" json:"new"`
	NewCommit string `toml:"new_commit,omitempty" json:"new_commit,omitempty"`
}

// Artifact is one Packer artifact.
type Artifact struct {
	Build     string         `toml:"build" json:"build"`
	BuilderID string         `toml:"builder_id" json:"builder_id"`
	ID        string         `toml:"id" json:"id"`
	Files     []ArtifactFile `toml:"file,omitempty" json:"files,omitempty"`
}

// ArtifactFile is a file of an artifact.
type ArtifactFile struct {
	Path   string `toml:"path" json:"path"`
	SHA256 string `toml:"sha256" json:"sha256"`
}

// Tool is the imagebake that baked the release.
type Tool struct {
	Version string `toml:"version" json:"version"`
	Go      string `toml:"go" json:"go"`
	// Compressor is the gzip library and version the layers were
	// compressed with (compressed digests depend on it).
	Compressor string `toml:"compressor,omitempty" json:"compressor,omitempty"`
	// Defaults is what imagebake adds to the images it makes: 1, an image
	// config with a PATH when the base's sets none, a base given as a
	// plain tar stored as a gzip layer, and rootfs tarballs compressed on
	// every CPU (pgzip); 0 (unset), none of these, as releases made
	// before. A rebuild keeps the release's.
	Defaults int `toml:"defaults,omitempty" json:"defaults,omitempty"`
}

// CurrentDefaults is the Defaults new bakes get. 2: release.toml in a
// layer of its own ("release"), and the agents layer at its archive's
// time, so that releases with the same agents share that layer. 3: the
// SBOM's base packages name their source package (purl upstream=, as
// syft writes it), a Go agent's build information is recorded and its
// modules listed, and remotes are URIs in the SBOM and the provenance
// (git+file:///..., git+ssh://...). 4: a Debian package's source version,
// where it differs from the binary's, is recorded (source_version) and in
// its purl (upstream=util-linux@2.38.1-5+deb12u3), Debian's point release
// is recorded (point_release) and names the purls' distro (debian-12.15),
// and an epoch's colon is percent-encoded: as syft writes them. The
// images of 3 and 4 are those of 2 (their content digest counts them as
// 2).
const CurrentDefaults = 4

// Repo is the control repo at the release.
type Repo struct {
	URL    string `toml:"url" json:"url"`
	Tag    string `toml:"tag" json:"tag"`
	Commit string `toml:"commit" json:"commit"`
}

// Puppetfile is the release's Puppetfile and its pins.
type Puppetfile struct {
	SHA256        string `toml:"sha256" json:"sha256"`
	LockCommitted bool   `toml:"lock_committed" json:"lock_committed"`
	Forge         string `toml:"forge,omitempty" json:"forge,omitempty"`
	Moduledir     string `toml:"moduledir" json:"moduledir"`
	// ControlBranch is the branch :control_branch meant, when a module
	// names it (the lock keeps :control_branch as written).
	ControlBranch string `toml:"control_branch,omitempty" json:"control_branch,omitempty"`
	// IgnoreDependencies says the release was baked with modules'
	// dependencies unchecked (--ignore-dependencies).
	IgnoreDependencies bool              `toml:"ignore_dependencies,omitempty" json:"ignore_dependencies,omitempty"`
	Modules            []lockfile.Module `toml:"module" json:"modules"`
}

// Image is one arch's image.
type Image struct {
	Arch string `toml:"arch" json:"arch"`
	OS   string `toml:"os" json:"os"`
	Name string `toml:"name" json:"name"`
	// ContentDigest is the digest of the image's content identity.
	ContentDigest string  `toml:"content_digest,omitempty" json:"content_digest,omitempty"`
	Digest        string  `toml:"digest,omitempty" json:"digest,omitempty"`
	Artifact      string  `toml:"artifact,omitempty" json:"artifact,omitempty"`
	Base          Base    `toml:"base" json:"base"`
	Agent         Agent   `toml:"agent,omitempty" json:"agent,omitzero"` // none: an image without agent binaries
	Layers        []Layer `toml:"layer,omitempty" json:"layers,omitempty"`
	// Puppet is the Puppet the base carries (from its packages), when it
	// carries one.
	Puppet *Puppet `toml:"puppet,omitempty" json:"puppet,omitempty"`
	// Compiled says the compile gate ran on this image, and how (bake
	// --compile); empty when it did not.
	Compiled string `toml:"compiled,omitempty" json:"compiled,omitempty"`
	// Catalogs are the catalogs the compile gate compiled on this image,
	// one per node, kept as release files (catalog-NODE.json).
	Catalogs []NodeCatalog `toml:"catalog,omitempty" json:"catalogs,omitempty"`
}

// NodeCatalog is one node's compiled catalog, a file of the release.
type NodeCatalog struct {
	Node string `toml:"node" json:"node"`
	// Facts is the fact set the node was compiled with, as imagebake.toml
	// names it; empty: the base's own facts.
	Facts       string `toml:"facts,omitempty" json:"facts,omitempty"`
	FactsSHA256 string `toml:"facts_sha256" json:"facts_sha256"`
	File        string `toml:"file" json:"file"`
	SHA256      string `toml:"sha256" json:"sha256"`
	Resources   int    `toml:"resources" json:"resources"`
}

// Puppet is the Puppet a base carries and where it reads code.
type Puppet struct {
	Package        string `toml:"package" json:"package"`
	PackageVersion string `toml:"package_version" json:"package_version"`
	Version        string `toml:"version" json:"version"` // upstream X.Y.Z
	CodeDir        string `toml:"code_dir" json:"code_dir"`
	// Binary is the puppet program the package installs (empty in
	// releases made before it was recorded: /usr/bin/puppet).
	Binary string `toml:"binary,omitempty" json:"binary,omitempty"`
}

// Program is p's puppet program.
func (p *Puppet) Program() string {
	if p.Binary != "" {
		return p.Binary
	}
	return "/usr/bin/puppet"
}

// Base is an image's base, pinned, and what its files say it is.
type Base struct {
	Ref    string `toml:"ref" json:"ref"`
	Digest string `toml:"digest,omitempty" json:"digest,omitempty"`
	// OS is the base's os-release identity; nil when it has none.
	OS *OS `toml:"os,omitempty" json:"os,omitempty"`
	// Packages are the base's installed packages; nil when it has no
	// package database imagebake reads.
	Packages *Packages `toml:"packages,omitempty" json:"packages,omitempty"`
}

// OS is a base's identity from its os-release (id, version_id,
// codename, pretty_name): the type the base reader makes.
type OS = distro.OS

// Packages is a base's package database, read without running anything:
// every installed package, sorted by name and arch.
type Packages struct {
	Format string `toml:"format" json:"format"` // dpkg, apk
	Count  int    `toml:"count" json:"count"`
	// Digest is the sha256 of the sorted "NAME VERSION ARCH" lines: equal
	// for two bases with the same packages.
	Digest string    `toml:"digest" json:"digest"`
	List   []Package `toml:"package" json:"list"`
}

// Package is one installed package of a base (name, version, arch,
// source, license): the type the base reader makes.
type Package = distro.Package

// Agent is the agent binaries an image carries; all empty when it carries
// none (imagebake.toml without [agents]).
type Agent struct {
	Name    string `toml:"name" json:"name"`
	Version string `toml:"version" json:"version"`
	OS      string `toml:"os" json:"os"`
	Arch    string `toml:"arch" json:"arch"`
	Size    int64  `toml:"size" json:"size"`
	SHA256  string `toml:"sha256" json:"sha256"`
	Source  string `toml:"source" json:"source"`
	Path    string `toml:"path" json:"path"`
	// GoBuild is what the agent's Go build information says (defaults 3,
	// a Go binary only): its Go version and modules, for the SBOM.
	GoBuild *GoBuild `toml:"go_build,omitempty" json:"go_build,omitempty"`
}

// None says the image carries no agent binaries.
func (a Agent) None() bool { return a.Name == "" && a.Version == "" && a.SHA256 == "" }

// OSAt is o as a release of defaults d records it: before defaults 4,
// without Debian's point release. o is not changed.
func OSAt(o *OS, d int) *OS {
	if o == nil || d >= 4 || o.PointRelease == "" {
		return o
	}
	out := *o
	out.PointRelease = ""
	return &out
}

// PackagesAt is ps as a release of defaults d records them: before
// defaults 4, without source versions (a rebuild of an older release
// records what it did). ps is not changed.
func PackagesAt(ps *Packages, d int) *Packages {
	if ps == nil || d >= 4 {
		return ps
	}
	out := *ps
	out.List = make([]Package, len(ps.List))
	for i, p := range ps.List {
		p.SourceVersion = ""
		out.List[i] = p
	}
	return &out
}

// GoBuild is a Go binary's build information (debug/buildinfo).
type GoBuild struct {
	Go   string   `toml:"go" json:"go"`               // "go1.26.8"
	Main string   `toml:"main" json:"main"`           // the main module, "PATH@VERSION" ("(devel)" when unversioned)
	Deps []string `toml:"deps,omitempty" json:"deps"` // "PATH@VERSION", sorted
}

// Layer is one layer of an image.
type Layer struct {
	Role      string `toml:"role" json:"role"`
	MediaType string `toml:"media_type" json:"media_type"`
	DiffID    string `toml:"diff_id" json:"diff_id"`
	Digest    string `toml:"digest" json:"digest"`
	Size      int64  `toml:"size" json:"size"`
}

// Encode returns the manifest's canonical bytes.
func (m *Manifest) Encode() ([]byte, error) {
	m.Format = Format
	sort.Slice(m.Images, func(i, j int) bool { return m.Images[i].Arch < m.Images[j].Arch })
	sort.Slice(m.Puppetfile.Modules, func(i, j int) bool { return m.Puppetfile.Modules[i].Name < m.Puppetfile.Modules[j].Name })
	var buf bytes.Buffer
	buf.WriteString("# manifest.toml: every input of this release pinned, every output's digest.\n# `imagebake verify` rebuilds from it alone.\n\n")
	if err := toml.NewEncoder(&buf).Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// content is what one image is made of, content identity only.
type content struct {
	Family      string          `toml:"family"`
	Release     string          `toml:"release"`
	Epoch       int64           `toml:"epoch"`
	Builder     string          `toml:"builder"`
	Environment string          `toml:"environment"`
	Exclude     []string        `toml:"exclude,omitempty"` // none: the digests of manifests before it
	Defaults    int             `toml:"defaults,omitempty"`
	Tag         string          `toml:"tag"`
	Commit      string          `toml:"commit"`
	Puppetfile  string          `toml:"puppetfile"`
	Moduledir   string          `toml:"moduledir"`
	Modules     []moduleContent `toml:"module"`
	Arch        string          `toml:"arch"`
	OS          string          `toml:"os"`
	Name        string          `toml:"name"`
	Base        string          `toml:"base"`
	Agent       Agent           `toml:"agent"`
}

type moduleContent struct {
	Name        string `toml:"name"`
	Kind        string `toml:"kind"`
	Path        string `toml:"path"`
	ExcludeSpec bool   `toml:"exclude_spec"`
	Commit      string `toml:"commit"`
	Version     string `toml:"version"`
	SHA256      string `toml:"sha256"`
}

// BaseIdentity is the content part of a base reference: its digest
// ("sha256:...") where the reference carries one, else the reference
// ("scratch").
func BaseIdentity(ref string) string {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return ref[i+1:]
	}
	return ref
}

// imageDefaults is the part of defaults d that shapes images: 3 changed
// only the SBOM and the provenance, so an image of defaults 3 is made of
// what one of 2 is (and has its digest).
func imageDefaults(d int) int { return min(d, 2) }

// ContentDigest is the digest of what im is made of (see "Content and
// provenance" in the package documentation).
func (m *Manifest) ContentDigest(im Image) (string, error) {
	c := content{Family: m.Family, Release: m.Release, Epoch: m.Epoch, Builder: m.Builder, Environment: m.Environment, Exclude: m.PayloadExclude, Defaults: imageDefaults(m.Imagebake.Defaults),
		Tag: m.Repo.Tag, Commit: m.Repo.Commit, Puppetfile: m.Puppetfile.SHA256, Moduledir: m.Puppetfile.Moduledir,
		Arch: im.Arch, OS: im.OS, Name: im.Name, Base: BaseIdentity(im.Base.Ref), Agent: im.Agent}
	c.Agent.Source, c.Agent.Path, c.Agent.GoBuild = "", "", nil // where from, and what its bytes say
	for _, x := range m.Puppetfile.Modules {
		c.Modules = append(c.Modules, moduleContent{Name: x.Name, Kind: x.Kind, Path: x.Path, ExcludeSpec: x.ExcludeSpec, Commit: x.Commit, Version: x.Version, SHA256: x.SHA256})
	}
	sort.Slice(c.Modules, func(i, j int) bool { return c.Modules[i].Name < c.Modules[j].Name })
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return "", err
	}
	s := sha256.Sum256(buf.Bytes())
	return "sha256:" + hex.EncodeToString(s[:]), nil
}

// SetContentDigests computes every image's content digest and the
// release's inputs digest over them (sorted by arch).
func (m *Manifest) SetContentDigests() error {
	sort.Slice(m.Images, func(i, j int) bool { return m.Images[i].Arch < m.Images[j].Arch })
	h := sha256.New()
	for i := range m.Images {
		d, err := m.ContentDigest(m.Images[i])
		if err != nil {
			return err
		}
		m.Images[i].ContentDigest = d
		fmt.Fprintf(h, "%s %s\n", m.Images[i].Arch, d)
	}
	m.InputsDigest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return nil
}

// Write stores the manifest atomically.
func (m *Manifest) Write(name string) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(name, b, 0o644)
}

// Read loads and checks a manifest.
func Read(name string) (*Manifest, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

// Parse decodes and checks manifest bytes; unknown keys are errors.
func Parse(b []byte) (*Manifest, error) {
	var m Manifest
	if err := strict.DecodeTOML(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%w: format %d, this imagebake reads %d", ErrInvalid, m.Format, Format)
	}
	if m.Family == "" || m.Release == "" || len(m.Repo.Commit) != 40 || len(m.Images) == 0 {
		return nil, fmt.Errorf("%w: family, release, repo.commit and at least one image are required", ErrInvalid)
	}
	for _, im := range m.Images {
		if im.Arch == "" || (!im.Agent.None() && (im.Agent.Version == "" || len(im.Agent.SHA256) != 64)) {
			return nil, fmt.Errorf("%w: image %q: arch is required, and agent version and sha256 with an agent", ErrInvalid, im.Name)
		}
	}
	if err := CheckExclude(m.PayloadExclude); err != nil {
		return nil, fmt.Errorf("%w: payload_%v", ErrInvalid, err)
	}
	if err := CheckFixes(m.Advisories, m.Fixes); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &m, nil
}

// CheckExclude refuses exclude patterns that cannot name a path of the
// control repo: empty ones, malformed globs, ones that climb out ("..").
func CheckExclude(globs []string) error {
	var bad []string
	for _, g := range globs {
		g2 := strings.Trim(strings.TrimPrefix(g, "!"), "/")
		_, err := path.Match(strings.ReplaceAll(g2, "**", "*"), "")
		if err != nil || g2 == "" || g2 == "." || g2 == ".." || strings.HasPrefix(g2, "../") || strings.Contains(g2, "/../") {
			bad = append(bad, fmt.Sprintf("%q", g))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("exclude: %s: want .gitignore patterns of paths in the control repo (ci, .github/, docs/**/*.md, /README.md)", strings.Join(bad, ", "))
	}
	return nil
}

// Excluded says whether the control repo path p (slash-separated, from
// the root; isDir for a directory) is left out by globs, read as the
// lines of a .gitignore at the repo's root (go-git's matcher, git's
// rules): a pattern without a "/" but at its end matches a name at any
// depth; one with a "/" at its start or in the middle is anchored at the
// root; a trailing "/" matches directories only; "**" spans directories;
// a later "!pattern" keeps what an earlier one left out; a directory left
// out is left out whole.
func Excluded(globs []string, p string, isDir bool) bool { return ExcludedBy(globs, p, isDir) != "" }

// ExcludedBy is the pattern that leaves p out ("" when p is kept): the
// last of globs that matches p, as in a .gitignore.
func ExcludedBy(globs []string, p string, isDir bool) string {
	parts := strings.Split(p, "/")
	for i := len(globs) - 1; i >= 0; i-- {
		switch gitignore.ParsePattern(globs[i], nil).Match(parts, isDir) {
		case gitignore.Exclude:
			return globs[i]
		case gitignore.Include:
			return ""
		}
	}
	return ""
}

// CheckFixes refuses fixes of advisories not declared, and fixes that name
// no package or module, or a package without a name, format and both
// versions.
func CheckFixes(advisories []string, fixes []Fix) error {
	declared := map[string]bool{}
	for _, a := range advisories {
		declared[a] = true
	}
	var problems []string
	for _, f := range fixes {
		if !declared[f.Advisory] {
			problems = append(problems, fmt.Sprintf("fix of %q, which the release does not declare (advisories %v)", f.Advisory, advisories))
		}
		if len(f.Packages)+len(f.Modules) == 0 {
			problems = append(problems, fmt.Sprintf("fix of %q names no package or module", f.Advisory))
		}
		for _, p := range f.Packages {
			if p.Name == "" || p.Format == "" || p.Old == "" || p.New == "" {
				problems = append(problems, fmt.Sprintf("fix of %q: package %q needs name, format, old and new", f.Advisory, p.Name))
			}
		}
		for _, x := range f.Modules {
			if x.Name == "" || x.New == "" {
				problems = append(problems, fmt.Sprintf("fix of %q: module %q needs name and new", f.Advisory, x.Name))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

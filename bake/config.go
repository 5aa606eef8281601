package bake

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/strict"
	"github.com/imagebake/imagebake/internal/versionq"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/release"
)

// ConfigName is the config file at the root of the control repo.
const ConfigName = "imagebake.toml"

// DefaultEnvironment is where the control repo goes inside an image.
const DefaultEnvironment = "/etc/puppetlabs/code/environments/production"

// ErrConfig marks an imagebake.toml that cannot be used.
var ErrConfig = fmt.Errorf("invalid %s: %w", ConfigName, failure.ErrUsage)

// Config is imagebake.toml. testdata/example/control/imagebake.toml.in is
// the annotated example.
type Config struct {
	Family      string            `toml:"family" jsonschema:"pattern=^[a-z][a-z0-9_-]*$"`
	Arches      []string          `toml:"arches" jsonschema:"minItems=1"`
	Environment string            `toml:"environment"`
	Builder     string            `toml:"builder" jsonschema:"enum=oci,enum=rootfs,enum=packer"`
	Base        *Base             `toml:"base"`  // for every arch
	Bases       map[string]Base   `toml:"bases"` // per arch, over Base
	Agents      *AgentsConfig     `toml:"agents"`
	Release     *ReleaseConfig    `toml:"release"`
	Puppetfile  *PuppetfileConfig `toml:"puppetfile"`
	Compile     *CompileConfig    `toml:"compile"`
	Payload     *PayloadConfig    `toml:"payload"`

	// environmentDefault: environment is not set, and follows the code
	// dir of the base's Puppet.
	environmentDefault bool
}

// PayloadConfig is what of the control repo goes into the image
// ([payload]).
type PayloadConfig struct {
	// Exclude lists control repo paths left out of the environment (CI
	// files, docs) as the lines of a .gitignore at the repo's root: a
	// pattern without "/" matches a name at any depth, one with "/" at its
	// start or in the middle the path from the root, a trailing "/"
	// directories only, "**" any depth, "!" keeps again; a matched
	// directory is left out whole. Recorded in the manifest
	// (payload_exclude), so a rebuild leaves out the same.
	Exclude []string `toml:"exclude"`
}

// CompileConfig is the compile gate's ([compile]); bake's flags win.
type CompileConfig struct {
	Enabled bool   `toml:"enabled"`
	Node    string `toml:"node"`
	Timeout string `toml:"timeout"` // a duration: "2m"
	// Nodes are the nodes the gate compiles a catalog for, each with the
	// facts of a real one (what `facter --yaml` prints there); none: the
	// base's own node.
	Nodes []NodeConfig `toml:"nodes"`
}

// NodeConfig is one node of [compile] nodes.
type NodeConfig struct {
	Name string `toml:"name"`
	// Facts is a fact set file, relative to the context directory.
	Facts string `toml:"facts"`
	// Arch is the image the node is compiled on (default: the fact set's
	// architecture, else the release's first arch).
	Arch string `toml:"arch"`
}

// compileOptions are the gate's options: the flags', then [compile]'s
// for what they leave unset; Enabled is the flag when given (--compile or
// --compile=false), else the file's.
func (c *Config) compileOptions(o CompileOptions) CompileOptions {
	if c == nil || c.Compile == nil {
		return o
	}
	o.Enabled = o.Enabled || (!o.Set && c.Compile.Enabled)
	return c.Compile.merged(o)
}

// merged is o with what the file sets and the flags leave unset.
func (c *CompileConfig) merged(o CompileOptions) CompileOptions {
	if o.Node == "" {
		o.Node = c.Node
	}
	if o.Timeout == 0 && c.Timeout != "" {
		o.Timeout, _ = time.ParseDuration(c.Timeout) // checked with the file
	}
	if len(o.Nodes) == 0 {
		o.Nodes = c.Nodes
	}
	return o
}

// PuppetfileConfig is how the Puppetfile is read ([puppetfile]).
type PuppetfileConfig struct {
	// ExcludeSpec is the :exclude_spec of modules that do not set it:
	// false (the default) keeps spec/ as r10k 3.x does; true drops it as
	// r10k 5.x does.
	ExcludeSpec bool `toml:"exclude_spec"`
	// ControlBranch is the branch :control_branch means; unset: the
	// environment's name (the last element of environment), the branch
	// r10k deploys that environment from.
	ControlBranch string `toml:"control_branch"`
	// IgnoreDependencies bakes modules whose metadata.json dependencies
	// are not pinned in range (recorded in the manifest).
	IgnoreDependencies bool `toml:"ignore_dependencies"`
}

// branchRE is what a branch name in imagebake.toml may be.
var branchRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$`)

// ControlBranch is the branch :control_branch means in this release.
func (c *Config) ControlBranch() string {
	if c.Puppetfile != nil && c.Puppetfile.ControlBranch != "" {
		return c.Puppetfile.ControlBranch
	}
	return path.Base(c.Environment)
}

// ReleaseConfig is how release numbers are judged ([release]).
type ReleaseConfig struct {
	// MajorPackages are the base packages (names or globs, matched against
	// a package's name and its source package's) whose upstream
	// MAJOR.MINOR change needs a MAJOR release. Unset: the default list
	// (release.DefaultMajorPackages); an empty list: none.
	MajorPackages *[]string `toml:"major_packages"`
}

// Rules are the release rules of the config, with advisories.
func (c *Config) Rules(advisories []string, fixes map[string][]string) release.Rules {
	r := release.Rules{Advisories: advisories, AdvisoryFixes: fixes}
	if c.Release != nil && c.Release.MajorPackages != nil {
		r.MajorPackages = append([]string{}, *c.Release.MajorPackages...)
	}
	return r
}

// Base is what an image is built on, pinned: exactly one of Scratch, an
// OCI layout (Layout + Digest of an image or index) or a root file system
// tarball (Rootfs + SHA256). Relative paths are relative to the context
// directory (--context, default the current directory).
type Base struct {
	Scratch bool   `toml:"scratch" json:"scratch,omitempty"`
	Layout  string `toml:"layout" json:"layout,omitempty"`
	Digest  string `toml:"digest" json:"digest,omitempty"`
	Rootfs  string `toml:"rootfs" json:"rootfs,omitempty"`
	SHA256  string `toml:"sha256" json:"sha256,omitempty" jsonschema:"pattern=^[0-9a-f]{64}$"`
	Image   string `toml:"image" json:"image,omitempty"` // REGISTRY/REPO@sha256:...
}

// AgentsConfig names the agent binaries an image carries. Without
// [agents], images carry none: the manifest records no agent.
type AgentsConfig struct {
	Name  string `toml:"name"`
	Major string `toml:"major"` // a major, major.minor, exact version or constraint
	// Version pins one exact version (X.Y.Z), as --locked wants; it takes
	// the place of major.
	Version string   `toml:"version"`
	Stores  []string `toml:"stores"`
}

var (
	familyRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	archRE   = regexp.MustCompile(`^[a-z0-9_]+$`)
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	hexRE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ParseConfig decodes and checks imagebake.toml. Unknown keys are errors.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	if err := strict.DecodeTOML(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if c.Environment == "" {
		c.Environment, c.environmentDefault = DefaultEnvironment, true
	}
	if c.Builder == "" {
		c.Builder = "oci"
	}
	return &c, c.check()
}

func (c *Config) check() error {
	for _, part := range []func() error{c.checkImage, c.checkBases, c.checkAgents, c.checkSections} {
		if err := part(); err != nil {
			return err
		}
	}
	return nil
}

// badConfig is an ErrConfig naming what is wrong.
func badConfig(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// checkImage checks what names the images: family, arches, environment,
// builder.
func (c *Config) checkImage() error {
	if !familyRE.MatchString(c.Family) {
		return badConfig("family %q: want a lower-case name (letters, digits, - and _)", c.Family)
	}
	if len(c.Arches) == 0 {
		return badConfig("arches is empty: name at least one, e.g. arches = [\"amd64\", \"arm64\"]")
	}
	seen := map[string]bool{}
	for _, a := range c.Arches {
		if !archRE.MatchString(a) || seen[a] {
			return badConfig("arch %q is not a lower-case word, or is listed twice", a)
		}
		seen[a] = true
	}
	if !path.IsAbs(c.Environment) || path.Clean(c.Environment) != c.Environment || c.Environment == "/" {
		return badConfig("environment %q: want a clean absolute path inside the image", c.Environment)
	}
	if _, err := builders.Lookup(c.Builder); err != nil {
		return badConfig("builder %q: want %s", c.Builder, strings.Join(builders.Names(), " or "))
	}
	return nil
}

// checkBases checks [base] and [bases.ARCH].
func (c *Config) checkBases() error {
	for a := range c.Bases {
		if !slices.Contains(c.Arches, a) {
			return badConfig("[bases.%s] names an arch not in arches %v", a, c.Arches)
		}
	}
	for _, a := range c.Arches {
		b, err := c.BaseFor(a)
		if err != nil {
			return err
		}
		if err := b.check(a); err != nil {
			return err
		}
	}
	return nil
}

// checkAgents checks [agents]: name, a major or an exact version, stores.
func (c *Config) checkAgents() error {
	if c.Agents != nil && c.Agents.Version != "" {
		if c.Agents.Major != "" && c.Agents.Major != c.Agents.Version {
			return badConfig("[agents] gives both major %q and version %q: version pins one exact version, major a range; keep one", c.Agents.Major, c.Agents.Version)
		}
		if q, err := versionq.Parse(c.Agents.Version, false); err != nil || !q.Exact() {
			return badConfig("[agents] version %q is not an exact version X.Y.Z (a range goes in major)", c.Agents.Version)
		}
		c.Agents.Major = c.Agents.Version
	}
	if c.Agents == nil {
		return nil // images without agent binaries
	}
	if c.Agents.Name == "" || c.Agents.Major == "" {
		return badConfig("[agents] needs name and major (a range: \"2\", \"2.4\") or version (exact: \"2.4.1\"): the agent binaries every image carries; leave [agents] out for images without any")
	}
	for _, s := range c.Agents.Stores {
		if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
			continue
		}
		if err := contextPath(s); err != nil {
			return badConfig("[agents] store %q %v", s, err)
		}
	}
	return nil
}

// checkSections checks [payload], [release], [puppetfile] and [compile].
func (c *Config) checkSections() error {
	if c.Payload != nil {
		if err := manifest.CheckExclude(c.Payload.Exclude); err != nil {
			return badConfig("[payload] %v", err)
		}
	}
	if c.Release != nil && c.Release.MajorPackages != nil {
		if err := release.CheckGlobs(*c.Release.MajorPackages); err != nil {
			return badConfig("[release] %v", err)
		}
	}
	if cb := c.controlBranch(); cb != "" && (!branchRE.MatchString(cb) || strings.Contains(cb, "..")) {
		return badConfig("[puppetfile] control_branch %q is not a branch name", cb)
	}
	if c.Compile != nil && c.Compile.Timeout != "" {
		if d, err := time.ParseDuration(c.Compile.Timeout); err != nil || d <= 0 {
			return badConfig("[compile] timeout %q is not a duration like \"2m\"", c.Compile.Timeout)
		}
	}
	if c.Compile != nil {
		return checkNodes(c.Compile.Nodes)
	}
	return nil
}

// checkNodes checks [compile] nodes, every problem in one error.
func checkNodes(nodes []NodeConfig) error {
	var bad []string
	seen := map[string]bool{}
	for i, n := range nodes {
		switch {
		case n.Name == "":
			bad = append(bad, fmt.Sprintf("node %d has no name", i+1))
		case !certnameRE.MatchString(n.Name):
			bad = append(bad, fmt.Sprintf("node %q is not a Puppet certname (lower-case letters, digits, '.', '-' and '_'; no '/' or control characters)", n.Name))
		case seen[n.Name]:
			bad = append(bad, fmt.Sprintf("node %q is named twice", n.Name))
		}
		seen[n.Name] = true
		if n.Facts == "" {
			bad = append(bad, fmt.Sprintf("node %q names no facts file (facts = \"facts/%s.yaml\", what facter --yaml prints on the node)", n.Name, n.Name))
		} else if err := contextPath(n.Facts); err != nil {
			bad = append(bad, fmt.Sprintf("node %q: facts %q %v", n.Name, n.Facts, err))
		}
		if n.Arch != "" && !archRE.MatchString(n.Arch) {
			bad = append(bad, fmt.Sprintf("node %q: arch %q is not an arch name (amd64, arm64)", n.Name, n.Arch))
		}
	}
	if len(bad) > 0 {
		return badConfig("[compile] nodes:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}

// controlBranch is [puppetfile] control_branch ("" when unset).
func (c *Config) controlBranch() string {
	if c.Puppetfile == nil {
		return ""
	}
	return c.Puppetfile.ControlBranch
}

// contextPath refuses a path in imagebake.toml that could name a file
// outside the context directory: the file is committed by whoever can
// commit to the control repo, who may not pick files of the baking host
// (a flag may point anywhere; a committed file may not).
func contextPath(p string) error {
	switch {
	case strings.Contains(p, "://"):
		return errors.New("is a URL: only http(s):// stores, or paths relative to --context, may be named in imagebake.toml (bake --store may name any store)")
	case path.IsAbs(p) || filepath.IsAbs(p) || strings.HasPrefix(p, "~"):
		return errors.New("is absolute: paths in imagebake.toml are relative to --context and stay inside it")
	case strings.Contains(p, "\\"):
		return errors.New("contains a backslash: write paths with /")
	}
	if c := path.Clean(p); c == ".." || strings.HasPrefix(c, "../") {
		return errors.New("leaves --context: paths in imagebake.toml are relative to --context and stay inside it")
	}
	return nil
}

// BaseFor returns the base of arch: [bases.ARCH], else [base].
func (c *Config) BaseFor(arch string) (Base, error) {
	if b, ok := c.Bases[arch]; ok {
		return b, nil
	}
	if c.Base != nil {
		return *c.Base, nil
	}
	return Base{}, fmt.Errorf("%w: no base for %s: add [base] (all arches) or [bases.%s]", ErrConfig, arch, arch)
}

func (b Base) check(arch string) error {
	n := 0
	if b.Scratch {
		n++
	}
	if b.Layout != "" {
		n++
		if err := contextPath(b.Layout); err != nil {
			return fmt.Errorf("%w: base of %s: layout %q %v", ErrConfig, arch, b.Layout, err)
		}
		if !digestRE.MatchString(b.Digest) {
			return fmt.Errorf("%w: base of %s: layout %s needs digest = \"sha256:...\" (the image or index digest it is pinned to)", ErrConfig, arch, b.Layout)
		}
	}
	if b.Rootfs != "" {
		n++
		if err := contextPath(b.Rootfs); err != nil {
			return fmt.Errorf("%w: base of %s: rootfs %q %v", ErrConfig, arch, b.Rootfs, err)
		}
		if !hexRE.MatchString(b.SHA256) {
			return fmt.Errorf("%w: base of %s: rootfs %s needs sha256 = \"<64 hex digits>\" to pin it", ErrConfig, arch, b.Rootfs)
		}
	}
	if b.Image != "" {
		n++
		if _, d, ok := strings.Cut(b.Image, "@"); !ok || !digestRE.MatchString(d) {
			return fmt.Errorf("%w: base of %s: image %q is not pinned by digest: want REGISTRY/REPO@sha256:<64 hex digits> (imagebake base pin %s prints it)", ErrConfig, arch, b.Image, b.Image)
		}
		if strings.Contains(b.Image, "://") {
			return fmt.Errorf("%w: base of %s: image %q: name the registry without a scheme (REGISTRY/REPO@sha256:...)", ErrConfig, arch, b.Image)
		}
	}
	if n != 1 {
		return fmt.Errorf("%w: base of %s: give exactly one of scratch = true, layout + digest, rootfs + sha256, image = \"REGISTRY/REPO@sha256:...\"", ErrConfig, arch)
	}
	return nil
}

// Ref names the base for people and the manifest: "scratch",
// "oci:PATH@sha256:..." or "rootfs:PATH@sha256:...".
func (b Base) Ref() string {
	switch {
	case b.Scratch:
		return "scratch"
	case b.Layout != "":
		return "oci:" + b.Layout + "@" + b.Digest
	case b.Image != "":
		return b.Image
	}
	return "rootfs:" + b.Rootfs + "@sha256:" + b.SHA256
}

// SelectArches returns the arches to build: all configured ones, or the
// requested subset (each must be configured).
func (c *Config) SelectArches(want []string) ([]string, error) {
	if len(want) == 0 {
		out := append([]string(nil), c.Arches...)
		sort.Strings(out)
		return out, nil
	}
	ok := map[string]bool{}
	for _, a := range c.Arches {
		ok[a] = true
	}
	var out []string
	for _, a := range want {
		if !ok[a] {
			return nil, fmt.Errorf("%w: arch %s is not configured for %s (arches: %s)", failure.ErrUsage, a, c.Family, strings.Join(c.Arches, ", "))
		}
		out = append(out, a)
	}
	sort.Strings(out)
	return out, nil
}

package bake

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"go.yaml.in/yaml/v3"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/puppet/puppetfile"
)

// InitOptions are what init is told; the rest it reads from the control
// repo.
type InitOptions struct {
	Dir    string   // the control repo's work tree
	Family string   // "": the directory's name, made a family name
	Arches []string // none: this machine's
	// Base is "scratch" (the default), a root file system tarball
	// (.tar, .tar.gz, .tgz), an OCI layout directory, or
	// REGISTRY/REPO@sha256:...; a path is written relative to Dir, which
	// must hold it (bake --context).
	Base  string
	Force bool // write over an imagebake.toml there
}

// InitReport is what init read and wrote.
type InitReport struct {
	Path    string // the imagebake.toml written
	Config  []byte
	Family  string
	Arches  []string
	Base    string // what the base is, for people
	Modules map[puppetfile.Kind]int
	// Moduledir is where the Puppetfile installs modules ("modules"
	// unless it says otherwise).
	Moduledir string
	// EnvironmentConf is what environment.conf sets (modulepath,
	// manifest, ...), nil without one.
	EnvironmentConf map[string]string
	HieraVersion    int // 0: no hiera.yaml
	Notes           []string
}

var (
	notFamilyChar = regexp.MustCompile(`[^a-z0-9_-]+`)
	familyStart   = regexp.MustCompile(`^[^a-z]+`)
)

// familyOf makes a family name of a directory name: lower case, letters,
// digits, - and _, starting with a letter ("" when nothing is left).
func familyOf(dir string) string {
	f := notFamilyChar.ReplaceAllString(strings.ToLower(filepath.Base(dir)), "-")
	return strings.Trim(familyStart.ReplaceAllString(f, ""), "-")
}

// Init writes imagebake.toml into the control repo at o.Dir: the family,
// arches and base it is told or can tell, checked as a bake would read
// it. It reads the Puppetfile, environment.conf and hiera.yaml and
// reports what they say; every problem they have is reported in one run.
func Init(o InitOptions) (*InitReport, error) {
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(filepath.Join(dir, ".git")); err != nil || st == nil {
		return nil, fmt.Errorf("%w: %s is not the work tree of a git repository (looked for %s): imagebake bakes tagged releases of a control repo; run `git init` there first, or give the repo's directory",
			failure.ErrUsage, dir, filepath.Join(dir, ".git"))
	}
	r := &InitReport{Path: filepath.Join(dir, ConfigName), Family: o.Family, Arches: o.Arches}
	if _, err := os.Stat(r.Path); err == nil && !o.Force {
		return nil, fmt.Errorf("%w: %s exists; --force writes over it", failure.ErrUsage, r.Path)
	}
	if r.Family == "" {
		if r.Family = familyOf(dir); r.Family == "" {
			return nil, fmt.Errorf("%w: no family name can be made of the directory name %q: give --family", failure.ErrUsage, filepath.Base(dir))
		}
	}
	if len(r.Arches) == 0 {
		r.Arches = []string{runtime.GOARCH}
	}
	errs := []error{r.checkNames(), r.readPuppetfile(dir), r.readEnvironmentConf(dir), r.readHiera(dir)}
	base, err := initBase(dir, o.Base)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: nothing written to %s:\n%w", failure.ErrUsage, r.Path, err)
	}
	r.Base = base.describe()
	r.Config = r.render(base)
	if _, err := ParseConfig(r.Config); err != nil {
		return nil, err
	}
	return r, atomicfile.WriteFile(r.Path, r.Config, 0o644)
}

// checkNames checks the family and arches as imagebake.toml would.
func (r *InitReport) checkNames() error {
	var errs []error
	if !familyRE.MatchString(r.Family) {
		errs = append(errs, fmt.Errorf("family %q: want a lower-case name (letters, digits, - and _)", r.Family))
	}
	for _, a := range r.Arches {
		if !archRE.MatchString(a) {
			errs = append(errs, fmt.Errorf("arch %q: want a lower-case word (amd64, arm64)", a))
		}
	}
	return errors.Join(errs...)
}

// initRead are the files init reads from the work tree: a bake reads them
// from a commit.
var initRead = []string{"Puppetfile", "Puppetfile.lock", "environment.conf", "hiera.yaml"}

// WorkTreeHead is the commit HEAD of the git work tree dir ("" when it has
// none yet) and which of the files init reads differ there from HEAD's
// (changed, added or removed). It reads the repository with go-git: no git
// runs in a repository whose config could name programs to run.
func WorkTreeHead(dir string) (string, []string, error) {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return "", nil, fmt.Errorf("reading the git repository %s: %w", dir, err)
	}
	ref, err := repo.Head()
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("reading HEAD of %s: %w", dir, err)
	}
	c, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return "", nil, fmt.Errorf("reading HEAD of %s: %w", dir, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return "", nil, fmt.Errorf("reading HEAD of %s: %w", dir, err)
	}
	var changed []string
	for _, name := range initRead {
		var committed *string
		if f, err := tree.File(name); err == nil {
			s, err := f.Contents()
			if err != nil {
				return "", nil, fmt.Errorf("reading %s at HEAD of %s: %w", name, dir, err)
			}
			committed = &s
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if committed != nil {
				changed = append(changed, name)
			}
		case err != nil:
			return "", nil, err
		case committed == nil || *committed != string(b):
			changed = append(changed, name)
		}
	}
	return ref.Hash().String(), changed, nil
}

// readPuppetfile counts the Puppetfile's modules by kind.
func (r *InitReport) readPuppetfile(dir string) error {
	p := filepath.Join(dir, "Puppetfile")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		r.Notes = append(r.Notes, "no Puppetfile: the images carry the control repo's own modules only")
		return nil
	}
	if err != nil {
		return err
	}
	pf, err := puppetfile.Parse(p, b)
	if err != nil {
		return err
	}
	r.Modules = map[puppetfile.Kind]int{}
	for _, m := range pf.Modules {
		r.Modules[m.Kind]++
	}
	r.Moduledir = pf.Moduledir
	if r.Moduledir == "" {
		r.Moduledir = "modules"
	}
	if _, err := os.Stat(filepath.Join(dir, "Puppetfile.lock")); err != nil && len(pf.Modules) > 0 {
		r.Notes = append(r.Notes, "no Puppetfile.lock: each bake resolves the Puppetfile's refs afresh; `imagebake puppetfile lock` pins them, commit the lock to bake the same modules every time")
	}
	return nil
}

// readEnvironmentConf reads environment.conf's settings.
func (r *InitReport) readEnvironmentConf(dir string) error {
	p := filepath.Join(dir, "environment.conf")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.EnvironmentConf, err = ParseEnvironmentConf(p, b); err != nil {
		return err
	}
	return nil
}

// ParseEnvironmentConf reads the settings of a Puppet environment.conf
// (name: what names it in errors): "key = value" lines, # and ; comments,
// an optional [main] section. Every malformed line is reported.
func ParseEnvironmentConf(name string, b []byte) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line == "[main]" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsAny(k, " \t[]") {
			errs = append(errs, fmt.Errorf("%s:%d: %q is not a setting: want key = value", name, n, line))
			continue
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// readHiera reads hiera.yaml's version.
func (r *InitReport) readHiera(dir string) error {
	p := filepath.Join(dir, "hiera.yaml")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var h struct {
		Version int `yaml:"version"`
	}
	if err := yaml.Unmarshal(b, &h); err != nil {
		return fmt.Errorf("%s: %v", p, err)
	}
	if h.Version != 5 {
		r.Notes = append(r.Notes, fmt.Sprintf("hiera.yaml is version %d: Puppet 7 and 8 read version 5 in environments", h.Version))
	}
	r.HieraVersion = h.Version
	return nil
}

// initBase is the [base] of the value of --base, pinned.
func initBase(dir, v string) (Base, error) {
	switch {
	case v == "" || v == "scratch":
		return Base{Scratch: true}, nil
	case strings.Contains(v, "@sha256:") && !strings.Contains(v, "://"):
		return Base{Image: v}, nil
	}
	p, err := filepath.Abs(v)
	if err != nil {
		return Base{}, err
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return Base{}, fmt.Errorf("base %s is outside the control repo %s: paths in %s stay inside the bake's --context; copy the base into it (and keep it out of git), or name an image REGISTRY/REPO@sha256:... (imagebake base pin prints it)", p, dir, ConfigName)
	}
	rel = filepath.ToSlash(rel)
	st, err := os.Stat(p)
	if err != nil {
		return Base{}, fmt.Errorf("base %s: %v; want scratch, a root file system .tar[.gz], an OCI layout directory or an image REGISTRY/REPO@sha256:<digest>", v, err)
	}
	if st.IsDir() {
		d, err := layoutDigest(p)
		if err != nil {
			return Base{}, fmt.Errorf("base %s: %v", v, err)
		}
		return Base{Layout: rel, Digest: d}, nil
	}
	sum, err := filehash.SHA256(p)
	return Base{Rootfs: rel, SHA256: sum}, err
}

// layoutDigest is the digest of the one image (or index) the OCI layout
// at p lists.
func layoutDigest(p string) (string, error) {
	l, err := layout.FromPath(p)
	if err != nil {
		return "", fmt.Errorf("not an OCI layout: %v", err)
	}
	idx, err := l.ImageIndex()
	if err != nil {
		return "", err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return "", err
	}
	if len(im.Manifests) != 1 {
		var ds []string
		for _, m := range im.Manifests {
			ds = append(ds, m.Digest.String())
		}
		return "", fmt.Errorf("the layout lists %d images (%s): pin one in %s by hand (layout and digest)", len(im.Manifests), strings.Join(ds, ", "), ConfigName)
	}
	return im.Manifests[0].Digest.String(), nil
}

// describe says what the base is, for people.
func (b Base) describe() string {
	switch {
	case b.Scratch:
		return "scratch (an empty image: give --base for a real OS)"
	case b.Image != "":
		return "image " + b.Image
	case b.Layout != "":
		return fmt.Sprintf("OCI layout %s (index %s)", b.Layout, b.Digest)
	}
	return fmt.Sprintf("root file system %s (sha256 %s)", b.Rootfs, b.SHA256)
}

// tomlValue is v written as a TOML value.
func tomlValue(v any) string {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(map[string]any{"v": v}); err != nil {
		return "" // strings and string lists always encode; ParseConfig would refuse the file
	}
	return strings.TrimSpace(strings.TrimPrefix(buf.String(), "v = "))
}

// render writes the annotated imagebake.toml of r on base.
func (r *InitReport) render(base Base) []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# imagebake.toml: how to bake this control repo's releases (written by imagebake init).\n")
	w("# It lives at the root of the control repo, so each release tag pins it too.\n")
	w("# Every key: https://github.com/imagebake/imagebake/blob/main/docs/formats.md (imagebake schema config prints its JSON Schema).\n\n")
	w("# Images are named FAMILY-X.Y.Z-ARCH.\nfamily = %s\n\n", tomlValue(r.Family))
	w("# One image per arch; `bake --arch` may pick a subset (one CI runner per arch).\narches = %s\n\n", tomlValue(r.Arches))
	w("# Where the control repo goes inside the image: unset, the code directory of the base's\n# Puppet (%s without one).\n# environment = %s\n\n", DefaultEnvironment, tomlValue(DefaultEnvironment))
	w("# oci (an OCI image layout, an image per arch and an index), rootfs (a .tar.gz of the\n# merged root file system per arch) or packer.\nbuilder = \"oci\"\n\n")
	w("# The base every arch builds on, pinned. Exactly one of:\n#   scratch = true\n#   rootfs = \"path/to/rootfs.tar.gz\", sha256 = \"...\"\n#   layout = \"path/to/oci-layout\", digest = \"sha256:...\"\n#   image = \"REGISTRY/REPO@sha256:...\"   (imagebake base pin REGISTRY/REPO:TAG prints it)\n# Paths are relative to `bake --context` (default: the current directory).\n[base]\n")
	switch {
	case base.Scratch:
		w("scratch = true\n")
	case base.Image != "":
		w("image = %s\n", tomlValue(base.Image))
	case base.Layout != "":
		w("layout = %s\ndigest = %s\n", tomlValue(base.Layout), tomlValue(base.Digest))
	default:
		w("rootfs = %s\nsha256 = %s\n", tomlValue(base.Rootfs), tomlValue(base.SHA256))
	}
	w("\n# No [agents]: the images carry no agent binaries. To carry some, publish them\n# (imagebake agents publish) and name them:\n# [agents]\n# name   = \"NAME\"\n# major  = \"2\"          # the largest 2.x.y in the stores; version = \"2.4.1\" pins one\n# stores = [\"store\"]    # relative to --context, or http(s):// URLs\n\n")
	w("# The compile gate (bake --compile): each node's catalog compiled by the base's own\n# Puppet in a sandbox before the release is written.\n# [compile]\n# enabled = true\n")
	return []byte(b.String())
}

package bake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/gate"
	"github.com/imagebake/imagebake/internal/sandbox"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/puppet/compiled"
	"github.com/imagebake/imagebake/tarball"
)

// CompileOptions are the compile gate's (bake --compile).
type CompileOptions struct {
	// Enabled runs the gate.
	Enabled bool
	// Set says Enabled was given on the command line: then it overrides
	// imagebake.toml's [compile] enabled, false included (--compile=false).
	Set bool
	// Node is the node name the catalog is compiled for (default: the
	// image's name).
	Node string
	// Facts, when set, is a YAML or JSON file of facts (name: value) that
	// override the image's own.
	Facts string
	// Timeout stops a Puppet that hangs (0: DefaultCompileTimeout).
	Timeout time.Duration
	// Nodes are the nodes compiled, with their fact sets ([compile]
	// nodes); none: the base's own node, on each image.
	Nodes []NodeConfig
	// CacheMax caps the bytes of unpacked bases the gate keeps in the
	// cache (0: gate.DefaultCacheMax; negative: no cap).
	CacheMax int64
}

// compileGate has the base's own Puppet compile the baked environment
// (puppet catalog compile) for each node, inside the image's root file
// system, for the arches this machine can run: a catalog that does not
// compile refuses the release (ErrCompile) with Puppet's errors and the
// control repo files and lines. Each node's catalog is kept, normalised,
// as a release file (catalog-NODE.json) with its digest in the manifest,
// for the next release's plan to diff against. Puppet runs in a sandbox:
// a module's Ruby is hostile code.
//
// It returns what it found for each image of m that it compiled, by arch:
// the catalogs kept and the line saying by what (the caller records them).
func compileGate(ctx context.Context, m *manifest.Manifest, dir string, p *staged, o Options) (map[string]gateResult, error) {
	if m.Builder != "oci" && m.Builder != "rootfs" {
		o.logf("note: the compile gate runs on oci and rootfs releases; %s: skipped\n", m.Builder)
		return nil, nil
	}
	if err := checkNode(o.Compile.Node); err != nil {
		return nil, err
	}
	overrides, err := readFacts(o.Compile.Facts)
	if err != nil {
		return nil, err
	}
	sets, err := o.factSets()
	if err != nil {
		return nil, err
	}
	found := map[string]gateResult{}
	var errs []error
	for i := range m.Images {
		im := &m.Images[i]
		if im.Puppet == nil {
			errs = append(errs, fmt.Errorf("%w: %s: --compile needs the Puppet of the %s base %s, and its packages name none (looked for puppet, puppet-agent, openvox-agent among %s); give the image a base with Puppet installed",
				failure.ErrUsage, im.Name, im.Arch, im.Base.Ref, packagesSeen(im.Base.Packages)))
			continue
		}
		nodes := gateNodes(m, im, sets, o)
		if len(nodes) == 0 {
			continue
		}
		if !canRun(im.Arch) {
			o.logf("note: compile gate: %s is for %s and this machine runs %s with no binfmt handler for it: skipped\n", im.Name, im.Arch, runtime.GOARCH)
			continue
		}
		start := time.Now()
		cats, err := compileImage(ctx, m, im, dir, p, nodes, overrides, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		names := make([]string, len(cats))
		for i, c := range cats {
			names[i] = c.Node
		}
		found[im.Arch] = gateResult{Catalogs: cats,
			Compiled: fmt.Sprintf("catalogs compiled by %s %s (puppet catalog compile), nodes %s", im.Puppet.Package, im.Puppet.PackageVersion, strings.Join(names, ", "))}
		o.logf("compile gate: %s compiles on %s %s for %s (%s)\n", im.Name, im.Puppet.Package, im.Puppet.PackageVersion, strings.Join(names, ", "), time.Since(start).Round(10*time.Millisecond))
	}
	return found, errors.Join(errs...)
}

// gateResult is what the gate found for one image: the catalogs it kept
// and by what they were compiled.
type gateResult struct {
	Catalogs []manifest.NodeCatalog
	Compiled string
}

// gateDone says whether a release in --out, up to date otherwise, needs
// no compile gate run: the gate is off, or it compiled every image this
// machine can run, for the nodes now configured.
func gateDone(old *manifest.Manifest, cfg *Config, o Options) bool {
	if o.Compile = cfg.compileOptions(o.Compile); !o.Compile.Enabled {
		return true
	}
	// each configured node, with the digest its fact set has now (a fact
	// set that does not read makes the gate run, and say so)
	want := map[string]string{}
	sets, err := o.factSets()
	if err != nil {
		return false
	}
	for _, n := range sets {
		want[n.Name] = n.sha256
	}
	has := map[string]string{}
	for _, im := range old.Images {
		if im.Puppet != nil && canRun(im.Arch) && im.Compiled == "" {
			return false
		}
		for _, c := range im.Catalogs {
			has[c.Node] = c.FactsSHA256
		}
	}
	for n, sum := range want {
		if got, ok := has[n]; !ok || got != sum {
			return false
		}
	}
	return len(want) == 0 || len(has) == len(want)
}

// factSet is one [compile] nodes entry, its fact set read.
type factSet struct {
	NodeConfig
	facts  map[string]any
	sha256 string
}

// factSets reads the fact sets of [compile] nodes, every problem in one
// error.
func (o Options) factSets() ([]factSet, error) {
	var out []factSet
	var errs []error
	for _, n := range o.Compile.Nodes {
		p := n.Facts
		if !filepath.IsAbs(p) {
			p = filepath.Join(o.Context, filepath.FromSlash(p))
		}
		f, sum, err := gate.ReadFactSet(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("[compile] node %s: %w", n.Name, err))
			continue
		}
		if n.Arch == "" {
			n.Arch = gate.FactArch(f)
		}
		out = append(out, factSet{NodeConfig: n, facts: f, sha256: sum})
	}
	return out, errors.Join(errs...)
}

// gateNodes are the nodes compiled on im: the [compile] nodes of its arch
// (a node whose arch no image has goes to the first image), or, without
// any, the base's own node, named FAMILY-ARCH (or --node).
func gateNodes(m *manifest.Manifest, im *manifest.Image, sets []factSet, o Options) []factSet {
	if len(sets) == 0 {
		name := o.Compile.Node
		if name == "" {
			name = m.Family + "-" + im.Arch
		}
		return []factSet{{NodeConfig: NodeConfig{Name: name, Arch: im.Arch}}}
	}
	has := map[string]bool{}
	for _, x := range m.Images {
		has[x.Arch] = true
	}
	var out []factSet
	for _, s := range sets {
		if s.Arch == im.Arch || (!has[s.Arch] && im.Arch == m.Images[0].Arch) {
			out = append(out, s)
		}
	}
	return out
}

// packagesSeen says how many packages of which format a base has.
func packagesSeen(ps *manifest.Packages) string {
	if ps == nil {
		return "no package database"
	}
	return fmt.Sprintf("its %d %s packages", ps.Count, ps.Format)
}

// certnameRE is what Puppet takes as a certname: lower-case letters,
// digits, '.', '-' and '_', not starting with '-' (Puppet would read one
// as an option).
var certnameRE = regexp.MustCompile(`^[a-z0-9_][a-z0-9._-]{0,252}$`)

// checkNode refuses a --node (or [compile] node) Puppet would not take as
// a certname.
func checkNode(node string) error {
	if node == "" || certnameRE.MatchString(node) {
		return nil
	}
	return fmt.Errorf("%w: compile gate: node %q is not a Puppet certname (lower-case letters, digits, '.', '-' and '_', not starting with '-'); give another with --node or [compile] node", failure.ErrUsage, node)
}

// canRun says whether this machine runs programs built for arch.
func canRun(arch string) bool {
	if arch == runtime.GOARCH {
		return true
	}
	qemu, ok := map[string]string{"arm64": "aarch64", "amd64": "x86_64", "arm": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "386": "i386"}[arch]
	if !ok {
		return false
	}
	_, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-" + qemu)
	return err == nil
}

var factNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// readFacts reads a facts file: a mapping of fact names to scalar values.
func readFacts(name string) (map[string]string, error) {
	if name == "" {
		return nil, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("facts file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: facts file %s is not a YAML or JSON mapping: %v", failure.ErrUsage, name, err)
	}
	out := map[string]string{}
	for k, v := range raw {
		// each fact becomes FACTER_NAME=value in Puppet's environment
		if !factNameRE.MatchString(k) {
			return nil, fmt.Errorf("%w: facts file %s: %q is not a fact name (letters, digits and _)", failure.ErrUsage, name, k)
		}
		switch v.(type) {
		case string, int, float64, bool:
			out[k] = fmt.Sprint(v)
		default:
			return nil, fmt.Errorf("%w: facts file %s: fact %q is not a string, number or boolean (structured facts are the image's own)", failure.ErrUsage, name, k)
		}
	}
	return out, nil
}

// compileImage lays out im's root file system and has the base's Puppet
// compile each node's catalog there, in a sandbox (internal/sandbox:
// bubblewrap, unprivileged, no network, no host /proc, limits): Puppet
// runs modules' Ruby while it compiles, and that code is treated as
// hostile. The base's layers are unpacked once per base into the cache
// (compile/KEY/root, its tree digest checked before each use), with the
// base's facts (Facter run once per base); the release's own layers
// (environment, agents) go to a scratch directory. The sandbox sees their
// union read-only, with private tmpfs mounts where Puppet writes. A
// rootfs release is one flattened layer, unpacked whole.
func compileImage(ctx context.Context, m *manifest.Manifest, im *manifest.Image, dir string, p *staged, nodes []factSet, overrides map[string]string, o Options) ([]manifest.NodeCatalog, error) {
	scratch, err := gateScratch(dir)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	t0 := time.Now()
	lay, err := lowerDirs(ctx, m, im, dir, scratch, p, o)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("compile gate: unpacking %s: %w", im.Name, err)
	}
	if lay.release != nil {
		defer lay.release()
	}
	o.logf("compile gate: %s laid out in %s\n", im.Name, time.Since(t0).Round(10*time.Millisecond))
	var base map[string]any
	for _, n := range nodes {
		if n.facts == nil && base == nil {
			t1 := time.Now()
			if base, err = gate.BaseFacts(ctx, im, lay.base, lay.factsCache); err != nil {
				return nil, fmt.Errorf("compile gate: the facts of %s: %w", im.Name, err)
			}
			if d := time.Since(t1); d > 100*time.Millisecond {
				o.logf("compile gate: the base's facts read by Facter in %s (once per base)\n", d.Round(10*time.Millisecond))
			}
		}
	}
	// the nodes' facts, where Puppet's yaml facts terminus reads them
	gateFS := filepath.Join(scratch, "gate")
	yamlDir := filepath.Join(gateFS, filepath.FromSlash(strings.TrimPrefix(gate.YAMLDir, "/")))
	for _, n := range nodes {
		if err := gate.WriteFactsYAML(yamlDir, n.Name, gate.NodeFacts(n.Name, n.facts, base, overrides)); err != nil {
			return nil, err
		}
	}
	lower := append([]string{gateFS}, lay.all...)
	var out []manifest.NodeCatalog
	var errs []error
	for _, n := range nodes {
		c, err := gate.Compile(ctx, gate.Run{Program: im.Puppet.Program(), Node: n.Name, Environment: m.Environment, Lower: lower,
			Timeout: o.Compile.Timeout, What: fmt.Sprintf("%s on %s %s", im.Name, im.Puppet.Package, im.Puppet.PackageVersion), Log: o.logf})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		nc, err := keepCatalog(dir, c, n)
		if err != nil {
			return nil, err
		}
		out = append(out, nc)
	}
	return out, errors.Join(errs...)
}

// keepCatalog writes c, normalised, into the release directory dir as
// catalog-NODE.json and says what the manifest records of it.
func keepCatalog(dir string, c *compiled.Catalog, n factSet) (manifest.NodeCatalog, error) {
	b, err := c.Marshal()
	if err != nil {
		return manifest.NodeCatalog{}, err
	}
	name := compiled.FileName(n.Name)
	if err := atomicfile.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		return manifest.NodeCatalog{}, err
	}
	sum := sha256.Sum256(b)
	nc := manifest.NodeCatalog{Node: n.Name, Facts: n.Facts, FactsSHA256: n.sha256, File: name, SHA256: "sha256:" + hex.EncodeToString(sum[:]), Resources: len(c.Resources)}
	return nc, nil
}

// gateScratch makes the scratch directory of one gate run in dir, or in
// the system's temporary directory when the sandbox's user could not reach
// dir (imagebake running as root in a home directory).
func gateScratch(dir string) (string, error) {
	if os.Geteuid() == 0 && sandbox.Reachable(dir) != nil {
		dir = ""
	}
	scratch, err := os.MkdirTemp(dir, ".imagebake-compile-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(scratch, 0o755); err != nil {
		os.RemoveAll(scratch)
		return "", err
	}
	return scratch, nil
}

// gateLayout is an image's file system as the sandbox sees it.
type gateLayout struct {
	// all are the sandbox's directories, top first.
	all []string
	// base are the base's alone (Facter runs there).
	base []string
	// factsCache is where the base's facts are kept ("": not kept).
	factsCache string
	// release lets the cached base go (nil: nothing to let go).
	release func()
}

// lowerDirs unpacks the image's file system as the sandbox's directories:
// the release's own layers in scratch, the base's from the cache
// (unpacked there on the first use, while the payload is, and checked on
// every use).
func lowerDirs(ctx context.Context, m *manifest.Manifest, im *manifest.Image, dir, scratch string, p *staged, o Options) (gateLayout, error) {
	opts := tarball.ExtractOptions{Plain: true, RootFS: true, SkipDevices: true, NoSetID: true, MaxBytes: 64 << 30, MaxEntries: 10_000_000, Ctx: ctx}
	if m.Builder == "rootfs" {
		root := filepath.Join(scratch, "image")
		gz := opts
		gz.Plain = false
		return gateLayout{all: []string{root}, base: []string{root}}, tarball.ExtractFile(filepath.Join(dir, im.Artifact), root, gz)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return gateLayout{}, err
	}
	h, err := v1.NewHash(im.Digest)
	if err != nil {
		return gateLayout{}, err
	}
	img, err := idx.Image(h)
	if err != nil {
		return gateLayout{}, err
	}
	ls, err := img.Layers()
	if err != nil {
		return gateLayout{}, err
	}
	nBase := 0
	key := sha256.New()
	for _, l := range im.Layers {
		if l.Role == "base" {
			nBase++
			fmt.Fprintln(key, l.DiffID)
		}
	}
	if nBase > len(ls) {
		return gateLayout{}, fmt.Errorf("image %s has %d layers, its manifest %d base layers", im.Name, len(ls), nBase)
	}
	payload := filepath.Join(scratch, "payload")
	if nBase == 0 {
		return gateLayout{all: []string{payload}, base: []string{payload}}, gate.ExtractLayers(ls, payload, opts)
	}
	cache, err := gate.CacheDir(o.Cache)
	if err != nil {
		return gateLayout{}, err
	}
	return layOut(ctx, im, ls, nBase, hex.EncodeToString(key.Sum(nil))[:32], cache, payload, p, m.Environment, opts, o)
}

// layOut lays an OCI image out for the gate: the release's own files in
// payload while the base is made ready in the cache (under key), side by
// side.
func layOut(ctx context.Context, im *manifest.Image, ls []v1.Layer, nBase int, k, cache, payload string, p *staged, env string, opts tarball.ExtractOptions, o Options) (gateLayout, error) {
	var g errgroup.Group
	var tPayload, tBase time.Duration
	g.Go(func() error {
		defer failure.Crash()
		t0 := time.Now()
		defer func() { tPayload = time.Since(t0) }()
		if p != nil && linkPayload(p, im.Arch, env, payload) == nil {
			return nil
		}
		os.RemoveAll(payload)
		return gate.ExtractLayers(ls[nBase:], payload, opts)
	})
	var base string
	var held *os.File
	g.Go(func() (err error) {
		defer failure.Crash()
		t0 := time.Now()
		defer func() { tBase = time.Since(t0) }()
		base, held, err = gate.CachedBase(ctx, cache, k, im.Name, o.logf, func(dst string) error {
			return gate.ExtractBase(ls[:nBase], dst, opts)
		})
		return err
	})
	err := g.Wait()
	o.logf("compile gate: %s: its own layers unpacked in %s, the base ready in %s\n", im.Name, tPayload.Round(10*time.Millisecond), tBase.Round(10*time.Millisecond))
	if held != nil && err != nil {
		held.Close()
	}
	if err != nil {
		return gateLayout{}, err
	}
	return gateLayout{all: []string{payload, base}, base: []string{base}, factsCache: filepath.Dir(base), release: func() {
		held.Close()
		// the cache stays under its cap: least recently used bases go
		max := o.Compile.CacheMax
		if max == 0 {
			max = gate.DefaultCacheMax
		}
		if max > 0 {
			if gone, err := gate.PruneDir(ctx, cache, max, 0, k); err != nil {
				o.logf("note: compile gate: pruning its cache: %v\n", err)
			} else if len(gone) > 0 {
				o.logf("compile gate: %d unpacked bases removed from its cache (cap %d MiB; imagebake cache prune)\n", len(gone), max>>20)
			}
		}
	}}, nil
}

// linkPayload lays the staged payload the release's own layers were made
// from out in dst as they are in the image (the environment at env, the
// agents tree at the root), as hard links: no file is copied or unpacked,
// and the sandbox sees them read-only. It fails where links cannot be
// made (another file system), and the layers are unpacked instead.
func linkPayload(p *staged, arch, env, dst string) error {
	agents, ok := p.Arches[arch]
	if !ok {
		return fmt.Errorf("no staged payload of %s", arch)
	}
	if err := linkTree(agents, dst); err != nil {
		return err
	}
	return linkTree(p.Env, filepath.Join(dst, filepath.FromSlash(strings.TrimPrefix(env, "/"))))
}

// linkTree makes dst a tree of hard links to src's files (directories
// made, symlinks copied).
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		t := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(t, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(l, t)
		case d.Type().IsRegular():
			return os.Link(path, t)
		}
		return fmt.Errorf("%s: not a file, directory or symlink", path)
	})
}

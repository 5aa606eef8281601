package bake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/klauspost/pgzip"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/internal/sandbox"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/puppet/compiled"
	"github.com/imagebake/imagebake/tarball"
)

// ErrCompile marks a release whose Puppet code does not compile on the
// image's own Puppet.
var ErrCompile = fmt.Errorf("the catalog does not compile: %w", failure.ErrVerify)

// DefaultCompileTimeout bounds one run of the compile gate.
const DefaultCompileTimeout = 5 * time.Minute

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
	// cache (0: DefaultCompileCacheMax; negative: no cap).
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
func compileGate(ctx context.Context, m *manifest.Manifest, dir string, p *staged, o Options) error {
	if m.Builder != "oci" && m.Builder != "rootfs" {
		o.logf("note: the compile gate runs on oci and rootfs releases; %s: skipped\n", m.Builder)
		return nil
	}
	if err := checkNode(o.Compile.Node); err != nil {
		return err
	}
	overrides, err := readFacts(o.Compile.Facts)
	if err != nil {
		return err
	}
	sets, err := o.factSets()
	if err != nil {
		return err
	}
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
		im.Catalogs = cats
		names := make([]string, len(cats))
		for i, c := range cats {
			names[i] = c.Node
		}
		im.Compiled = fmt.Sprintf("catalogs compiled by %s %s (puppet catalog compile), nodes %s", im.Puppet.Package, im.Puppet.PackageVersion, strings.Join(names, ", "))
		o.logf("compile gate: %s compiles on %s %s for %s (%s)\n", im.Name, im.Puppet.Package, im.Puppet.PackageVersion, strings.Join(names, ", "), time.Since(start).Round(10*time.Millisecond))
	}
	return errors.Join(errs...)
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
		f, sum, err := readFactSet(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("[compile] node %s: %w", n.Name, err))
			continue
		}
		if n.Arch == "" {
			n.Arch = factArch(f)
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
			if base, err = baseFacts(ctx, im, lay.base, lay.factsCache); err != nil {
				return nil, fmt.Errorf("compile gate: the facts of %s: %w", im.Name, err)
			}
			if d := time.Since(t1); d > 100*time.Millisecond {
				o.logf("compile gate: the base's facts read by Facter in %s (once per base)\n", d.Round(10*time.Millisecond))
			}
		}
	}
	// the nodes' facts, where Puppet's yaml facts terminus reads them
	gateFS := filepath.Join(scratch, "gate")
	yamlDir := filepath.Join(gateFS, filepath.FromSlash(strings.TrimPrefix(gateYAMLDir, "/")))
	for _, n := range nodes {
		if err := writeFactsYAML(yamlDir, n.Name, nodeFacts(n.Name, n.facts, base, overrides)); err != nil {
			return nil, err
		}
	}
	lower := append([]string{gateFS}, lay.all...)
	var out []manifest.NodeCatalog
	var errs []error
	for _, n := range nodes {
		c, err := compileNode(ctx, m, im, lower, n, o)
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

// gateYAMLDir is where the sandbox sees the nodes' facts.
const gateYAMLDir = "/var/lib/imagebake-gate/yaml"

// compileNode has Puppet compile node n's catalog in the sandbox whose
// root is the union of lower.
func compileNode(ctx context.Context, m *manifest.Manifest, im *manifest.Image, lower []string, n factSet, o Options) (*compiled.Catalog, error) {
	// Puppet's own state goes to the private /tmp: the rest is read-only.
	// A catalog is compiled, and no resource evaluated: no provider runs.
	args := []string{im.Puppet.Program(), "catalog", "compile", n.Name, "--color=false", "--certname", n.Name, "--node_terminus", "plain",
		"--vardir", "/tmp/puppet/var", "--logdir", "/tmp/puppet/log", "--rundir", "/tmp/puppet/run", "--ssldir", "/tmp/puppet/ssl",
		"--facts_terminus", "yaml", "--yamldir", gateYAMLDir,
		"--environmentpath", path.Dir(m.Environment), "--environment", path.Base(m.Environment)}
	timeout := o.Compile.Timeout
	if timeout <= 0 {
		timeout = DefaultCompileTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stdout := &capped{max: compiled.MaxSize}
	res, err := sandbox.Run(cctx, sandbox.Spec{
		Lower:    lower,
		Writable: []string{"/tmp", "/run", "/var/tmp"},
		Args:     args,
		Env:      []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"},
		Limits:   sandbox.Limits{CPU: timeout},
		Stdout:   stdout,
	})
	out := string(res.Output)
	what := fmt.Sprintf("%s on %s %s (node %s", im.Name, im.Puppet.Package, im.Puppet.PackageVersion, n.Name)
	switch {
	case cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil:
		return nil, fmt.Errorf("%w: %s): Puppet stopped after %s (the compile timeout: --compile-timeout or [compile] timeout)", ErrCompile, what, timeout)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, sandbox.ErrLimit):
		return nil, fmt.Errorf("%w: %s): %v; its last lines of output:\n  %s\nand of errors:\n  %s", ErrCompile, what, err, lastLines(stdout.buf.String(), 6), lastLines(out, 6))
	case errors.Is(err, sandbox.ErrUnavailable):
		return nil, fmt.Errorf("%w: compile gate for %s: %v", failure.ErrUsage, im.Name, err)
	}
	var ee *sandbox.ExitError
	if errors.As(err, &ee) {
		return nil, fmt.Errorf("%w: %s, exit %d):\n  %s", ErrCompile, what, ee.Code, puppetErrors(out+"\n"+stdout.buf.String(), m.Environment))
	}
	if err != nil {
		return nil, fmt.Errorf("compile gate for %s: %w", im.Name, err)
	}
	c, err := compiled.FromPuppet(stdout.buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: %s): Puppet printed no catalog: %v; its last lines:\n  %s", ErrCompile, what, err, lastLines(out, 10))
	}
	if c.Node != n.Name {
		return nil, fmt.Errorf("%w: %s): Puppet printed the catalog of node %q", ErrCompile, what, c.Node)
	}
	if sec := compiledInRE.FindSubmatch(stdout.buf.Bytes()); sec != nil {
		o.logf("compile gate: node %s: %d resources, compiled by Puppet in %s s (the rest of its run is Puppet starting)\n", n.Name, len(c.Resources), sec[1])
	}
	return c, nil
}

// compiledInRE is Puppet's own note of its compile time.
var compiledInRE = regexp.MustCompile(`Compiled catalog for \S+ in environment \S+ in ([0-9.]+) seconds`)

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

// lastLines is the last n lines of out, each cut at 200 bytes.
func lastLines(out string, n int) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 200 {
			lines[i] = l[:200] + "…"
		}
	}
	return strings.Join(lines, "\n  ")
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
		return gateLayout{all: []string{payload}, base: []string{payload}}, extractLayers(ls, payload, opts)
	}
	cache, err := gateCache(o)
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
		return extractLayers(ls[nBase:], payload, opts)
	})
	var base string
	var held *os.File
	g.Go(func() (err error) {
		defer failure.Crash()
		t0 := time.Now()
		defer func() { tBase = time.Since(t0) }()
		base, held, err = cachedBase(ctx, cache, k, im.Name, o, func(dst string) error {
			return extractBase(ls[:nBase], dst, opts)
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
			max = DefaultCompileCacheMax
		}
		if max > 0 {
			if gone, err := pruneCompileDir(ctx, cache, max, 0, k); err != nil {
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

// gateCache is the directory the gate's unpacked bases are kept in:
// CACHE/compile, or, when imagebake runs as root and the sandbox's user
// could not reach CACHE, /var/cache/imagebake/compile.
func gateCache(o Options) (string, error) {
	c := filepath.Join(o.Cache, "compile")
	if os.Geteuid() == 0 {
		if err := os.MkdirAll(o.Cache, 0o755); err != nil {
			return "", err
		}
		if sandbox.Reachable(o.Cache) != nil {
			c = "/var/cache/imagebake/compile"
		}
	}
	if err := os.MkdirAll(c, 0o755); err != nil {
		return "", err
	}
	return c, os.Chmod(c, 0o755)
}

// treeFile holds the digest of an unpacked base's tree, next to it.
const treeFile = "tree.sha256"

// cachedBase returns cache/key/root, unpacking it with fill first when it
// is missing, and again when its tree no longer has the digest recorded
// when it was unpacked (with a note). It is unpacked into a temporary
// directory and renamed into place, so a bake stopped half-way leaves no
// half tree to be used; the gate's sandbox sees it read-only. The base's
// lock is returned held shared: close it once the base is no longer used
// (a prune leaves a base alone while someone holds it).
func cachedBase(ctx context.Context, cache, key, image string, o Options, fill func(dst string) error) (root string, held *os.File, err error) {
	final := filepath.Join(cache, key)
	// the common case, a base unpacked and whole: several bakes use it
	// side by side
	sf, err := flock.Shared(final + ".lock")
	if err != nil {
		return "", nil, err
	}
	if intact(ctx, final) {
		markUsed(final)
		return filepath.Join(final, "root"), sf, nil
	}
	sf.Close()
	if ctx.Err() != nil {
		return "", nil, ctx.Err()
	}
	lf, err := flock.LockContext(ctx, final+".lock")
	if err != nil {
		return "", nil, err
	}
	defer func() {
		if err == nil {
			markUsed(final)
			err = flock.Downgrade(lf)
		}
		if err != nil {
			lf.Close()
			return
		}
		held = lf
	}()
	root, err = unpackedBase(ctx, cache, key, image, o, fill)
	return root, nil, err
}

// statFile holds the TreeStat of an unpacked base whose content was last
// found whole, next to it.
const statFile = "tree.stat"

// intact says whether the base unpacked at final has the tree digest
// recorded when it was unpacked. What the file system says of every entry
// (filehash.TreeStat: sizes, inodes, change times) is compared first, a
// walk; only when that changed are the files read and hashed again.
func intact(ctx context.Context, final string) bool {
	want, err := os.ReadFile(filepath.Join(final, treeFile))
	if err != nil {
		return false
	}
	root := filepath.Join(final, "root")
	st, err := filehash.TreeStat(ctx, root)
	if err != nil {
		return false
	}
	if was, err := os.ReadFile(filepath.Join(final, statFile)); err == nil && strings.TrimSpace(string(was)) == st {
		return true
	}
	got, err := filehash.Tree(ctx, root)
	if err != nil || got != strings.TrimSpace(string(want)) {
		return false
	}
	atomicfile.WriteFile(filepath.Join(final, statFile), []byte(st+"\n"), 0o644)
	return true
}

// unpackedBase is cachedBase's work, its lock held.
func unpackedBase(ctx context.Context, cache, key, image string, o Options, fill func(dst string) error) (string, error) {
	final := filepath.Join(cache, key)
	// what a stopped unpack of this key left
	old, _ := filepath.Glob(filepath.Join(cache, "."+key+".tmp-*"))
	for _, d := range old {
		os.RemoveAll(d)
	}
	root := filepath.Join(final, "root")
	if want, err := os.ReadFile(filepath.Join(final, treeFile)); err == nil {
		got, err := filehash.Tree(ctx, root)
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if err == nil && got == strings.TrimSpace(string(want)) {
			return root, nil
		}
		o.logf("note: compile gate: the unpacked base %s changed since it was unpacked (tree %s, recorded %s): unpacking it again\n", final, orNone(got, err), strings.TrimSpace(string(want)))
	} else if _, serr := os.Stat(final); serr == nil {
		o.logf("note: compile gate: the unpacked base %s has no tree digest (%s): unpacking it again\n", final, treeFile)
	}
	if _, err := os.Stat(final); err == nil {
		stale := filepath.Join(cache, "."+key+".tmp-stale")
		os.RemoveAll(stale)
		if err := os.Rename(final, stale); err != nil {
			return "", err
		}
		os.RemoveAll(stale)
	}
	o.logf("compile gate: unpacking the base of %s into %s (once per base)\n", image, final)
	tmp, err := os.MkdirTemp(cache, "."+key+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	t0 := time.Now()
	if err := fill(filepath.Join(tmp, "root")); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", err
	}
	t1 := time.Now()
	sum, err := filehash.Tree(ctx, filepath.Join(tmp, "root"))
	if err != nil {
		return "", err
	}
	st, err := filehash.TreeStat(ctx, filepath.Join(tmp, "root"))
	if err != nil {
		return "", err
	}
	o.logf("compile gate: base unpacked in %s, its tree digest taken in %s\n", t1.Sub(t0).Round(10*time.Millisecond), time.Since(t1).Round(10*time.Millisecond))
	if err := atomicfile.WriteFile(filepath.Join(tmp, treeFile), []byte(sum+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, statFile), []byte(st+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return root, nil
}

func orNone(s string, err error) string {
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return s
}

// extractBase unpacks a base's layers into dst. One gzip layer (the
// common base) is read straight from its blob and decompressed on every
// CPU, its whiteout markers (which hide nothing below a first layer) left
// out; several are applied in order by extractLayers.
func extractBase(ls []v1.Layer, dst string, opts tarball.ExtractOptions) error {
	if len(ls) != 1 {
		return extractLayers(ls, dst, opts)
	}
	mt, err := ls[0].MediaType()
	if err != nil || !strings.HasSuffix(string(mt), "gzip") {
		return extractLayers(ls, dst, opts)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	zr, err := pgzip.NewReader(rc)
	if err != nil {
		return fmt.Errorf("base layer: %w", err)
	}
	defer zr.Close()
	opts.Skip = func(name string) bool { return strings.HasPrefix(path.Base(name), ".wh.") }
	return tarball.Extract(zr, dst, opts)
}

// extractLayers unpacks layers (whiteouts applied) into dst.
func extractLayers(ls []v1.Layer, dst string, opts tarball.ExtractOptions) error {
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		return err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	err = tarball.Extract(rc, dst, opts)
	io.Copy(io.Discard, rc)
	return err
}

// fileLineRE is where Puppet says an error is: (file: F, line: L, column: C).
var fileLineRE = regexp.MustCompile(`\(file: ([^,)]+), line: ([0-9]+)(?:, column: [0-9]+)?\)`)

// puppetErrors keeps Puppet's error lines, with each file inside the
// environment shown as the control repo's path and line
// (manifests/site.pp:3).
func puppetErrors(out, env string) string {
	var keep, main []string
	seen := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		// Facter's complaints about what a chroot lacks (/sys) are noise
		if !strings.HasPrefix(l, "Error:") || strings.HasPrefix(l, "Error: Facter:") || seen[l] {
			continue
		}
		seen[l] = true
		l = fileLineRE.ReplaceAllStringFunc(l, func(s string) string {
			sub := fileLineRE.FindStringSubmatch(s)
			f := sub[1]
			if rel, ok := strings.CutPrefix(f, env+"/"); ok {
				f = rel
			}
			return "(" + f + ":" + sub[2] + ")"
		})
		keep = append(keep, l)
		if strings.Contains(l, "Evaluation Error") || strings.Contains(l, "Could not") || strings.Contains(l, "Syntax error") || strings.Contains(l, "Language validation") {
			main = append(main, l)
		}
	}
	if len(main) > 0 {
		keep = main
	}
	if len(keep) == 0 {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		keep = lines
	}
	return strings.Join(keep, "\n  ")
}

package bake

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/internal/gitcache"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/puppet/forge"
)

// SourceReader reads a blob of a release's sources ("sha256:HEX") from
// where the release is kept: its directory, or its store's pool.
type SourceReader func(ctx context.Context, blob string) (io.ReadCloser, error)

// Stored is a release's sources, where a rebuild takes its inputs first.
type Stored struct {
	Sources *manifest.Sources
	Read    SourceReader
	// Where names them for people: "the store /srv/releases".
	Where string
	// bases are base tarballs made again from the release's layers, by
	// sha256: a rebuild takes them when the base file is gone.
	bases map[string]string
}

// writeSources keeps in the release directory dir what a rebuild needs
// when every upstream is gone (sources.toml and the blobs it names, in
// blobs/sha256): the control repo's commit and each git module's as git
// packs of their trees (no history), each Forge tarball and each arch's
// agent archive; a base given as a rootfs tarball is a layer of the
// release already, and is listed. Unchanged sources make the same blobs,
// so a store keeps them once.
// agentFiles are the agent archives staged, by arch (nil: fetched here).
func writeSources(ctx context.Context, m *manifest.Manifest, in *Inputs, dir string, agentFiles map[string]string, o Options) error {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	for _, d := range []string{filepath.Dir(blobs), blobs} {
		if err := os.Chmod(d, 0o755); err != nil { // whatever the umask: a release is readable
			return err
		}
	}
	s := &manifest.Sources{Version: 1}
	gc, err := o.gitCache()
	if err != nil {
		return err
	}
	git := func(kind, name, url, commit string) error {
		mir, err := gc.Mirror(ctx, url)
		if err != nil {
			return err
		}
		defer mir.Close()
		// a bake has it; a migration of an old release fetches it
		if err := mir.Ensure(ctx, commit, ""); err != nil {
			return fmt.Errorf("keeping the source of %s: %w", name, err)
		}
		var tree string
		blob, size, err := writeBlob(blobs, func(w io.Writer) (err error) {
			tree, err = mir.PackTree(ctx, commit, w)
			return err
		})
		if err != nil {
			return fmt.Errorf("keeping the source of %s: %w", name, err)
		}
		s.Source = append(s.Source, manifest.Source{Kind: kind, Name: name, URL: url, Commit: commit, Tree: tree, Blob: blob, Size: size})
		return nil
	}
	if err := git(manifest.SourceControl, "control repo", m.Repo.URL, m.Repo.Commit); err != nil {
		return err
	}
	for _, mod := range m.Puppetfile.Modules {
		switch mod.Kind {
		case "git":
			if err := git(manifest.SourceGit, mod.Name, mod.Source, mod.Commit); err != nil {
				return err
			}
		case "forge":
			if err := keepForge(ctx, s, mod, filepath.Join(o.Cache, "forge"), blobs, o); err != nil {
				return err
			}
		}
	}
	for _, im := range m.Images {
		kept, err := keepAgent(ctx, s, in, im, agentFiles, blobs, o)
		if err != nil {
			return err
		}
		if !kept {
			continue
		}
		if b := baseSource(in.Config, im); b != nil {
			s.Source = append(s.Source, *b)
		}
	}
	return s.Write(filepath.Join(dir, manifest.SourcesFileName))
}

// baseSource is the source of im's base when it is a rootfs tarball kept
// as a layer of the release (the OCI builder): its gzip layer is the
// tarball (a .tar.gz base as it is, a plain tar compressed).
func baseSource(cfg *Config, im manifest.Image) *manifest.Source {
	if cfg == nil {
		return nil
	}
	b, err := cfg.BaseFor(im.Arch)
	if err != nil || b.Rootfs == "" || b.SHA256 == "" {
		return nil
	}
	for _, l := range im.Layers {
		if l.Role == "base" && (l.Digest == "sha256:"+b.SHA256 || l.DiffID == "sha256:"+b.SHA256) {
			return &manifest.Source{Kind: manifest.SourceBase, Name: im.Arch, SHA256: b.SHA256, Blob: l.Digest, Size: l.Size}
		}
	}
	return nil
}

// keepForge keeps the tarball of a Forge module (checked against its
// pinned sha256): the cached one, else downloaded from its pinned URL.
func keepForge(ctx context.Context, s *manifest.Sources, mod lockfile.Module, cache, blobs string, o Options) error {
	name, version, sum := mod.Name, mod.Version, mod.SHA256
	found, _ := filepath.Glob(filepath.Join(cache, "*-"+version+".tar.gz"))
	if len(found) == 0 && mod.URL != "" {
		slug := strings.ReplaceAll(name, "/", "-")
		var fo []forge.Option
		if o.HTTP != nil {
			fo = append(fo, forge.WithHTTPClient(o.HTTP))
		}
		p, err := forge.New("", fo...).Fetch(ctx, forge.Release{Slug: slug, Version: version, URL: mod.URL, SHA256: sum}, cache)
		if err != nil {
			return fmt.Errorf("keeping the source of module %s %s: not in the cache %s, and %w", name, version, cache, err)
		}
		found = []string{p}
	}
	for _, p := range found {
		if got, err := filehash.SHA256(p); err == nil && got == sum {
			blob, size, err := copyBlob(blobs, p)
			if err != nil {
				return err
			}
			s.Source = append(s.Source, manifest.Source{Kind: manifest.SourceForge, Name: name, SHA256: sum, File: filepath.Base(p), Blob: blob, Size: size})
			return nil
		}
	}
	return fmt.Errorf("%w: keeping the source of module %s %s: no tarball of sha256 %s in %s", failure.ErrNotFound, name, version, sum, cache)
}

func copyBlob(blobs, p string) (string, int64, error) {
	return writeBlob(blobs, func(w io.Writer) error {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
}

// writeBlob writes what fill writes as a blob of blobs, named by its
// sha256 (whole or not at all).
func writeBlob(blobs string, fill func(io.Writer) error) (string, int64, error) {
	f, err := atomicfile.CreateTemp(blobs, ".source-*")
	if err != nil {
		return "", 0, err
	}
	defer f.Cleanup()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	if err := fill(cw); err != nil {
		return "", 0, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	return "sha256:" + sum, cw.n, f.Commit(filepath.Join(blobs, sum), 0o644)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// KeepSources adds to the release directory dir, baked before releases
// kept their sources, what writeSources keeps, taken from its upstreams
// (the control repo, module remotes, the Forge, the agent store) by the
// pins its manifest holds. A release that keeps them already is left.
func KeepSources(ctx context.Context, dir string, o Options) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, manifest.SourcesFileName)); err == nil {
		return false, nil
	}
	m, err := manifest.Read(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return false, err
	}
	if m.Builder == BuilderPacker {
		return false, fmt.Errorf("%w: %s-%s was built by Packer: its sources are not kept", failure.ErrUsage, m.Family, m.Release)
	}
	in, err := ResolveManifest(ctx, m, nil, o)
	if err != nil {
		return false, err
	}
	return true, writeSources(ctx, m, in, dir, nil, o)
}

// restore puts the release's sources where a rebuild reads its inputs,
// before it reads any upstream: git packs into the cache's mirrors (each
// checked to hold the pinned commit with the recorded tree), Forge
// tarballs and agent archives into the cache (checked against their
// pinned sha256), base tarballs made again from their layers. What the
// cache holds already is left. Each input restored is said.
func (st *Stored) restore(ctx context.Context, want *manifest.Manifest, o Options) error {
	gc, err := o.gitCache()
	if err != nil {
		return err
	}
	st.bases = map[string]string{}
	var errs []error
	for _, x := range st.Sources.Source {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := st.restoreOne(ctx, gc, x, o); err != nil {
			errs = append(errs, fmt.Errorf("%s of %s-%s from %s: %w", sourceLabel(x), want.Family, want.Release, st.Where, err))
		}
	}
	return errors.Join(errs...)
}

func (st *Stored) restoreOne(ctx context.Context, gc *gitcache.Cache, x manifest.Source, o Options) error {
	switch x.Kind {
	case manifest.SourceControl, manifest.SourceGit:
		mir, err := gc.Mirror(ctx, x.URL)
		if err != nil {
			return err
		}
		defer mir.Close()
		if mir.HasCommit(x.Commit) {
			return nil
		}
		rc, err := st.blob(ctx, x.Blob)
		if err != nil {
			return err
		}
		defer rc.Close()
		if err := mir.AddPack(ctx, rc, x.Commit, x.Tree); err != nil {
			return err
		}
		o.logf("%s: commit %s from %s (its upstream %s is not asked)\n", sourceLabel(x), x.Commit[:12], st.Where, x.URL)
	case manifest.SourceForge:
		return st.restoreFile(ctx, x, filepath.Join(o.Cache, "forge", x.File), false, o)
	case manifest.SourceAgent:
		return st.restoreFile(ctx, x, filepath.Join(o.Cache, "agents", x.SHA256+".tar.gz"), false, o)
	case manifest.SourceBase:
		dst := filepath.Join(o.Cache, "sources", "base-"+x.SHA256)
		if err := st.restoreFile(ctx, x, dst, true, o); err != nil {
			return err
		}
		st.bases[x.SHA256] = dst
	}
	return nil
}

// restoreFile writes blob x.Blob to dst, checked against x.SHA256 (after
// decompressing it when gunzip and its bytes are not that); a dst that
// has it already is left.
func (st *Stored) restoreFile(ctx context.Context, x manifest.Source, dst string, gunzip bool, o Options) error {
	if got, err := filehash.SHA256(dst); err == nil && got == x.SHA256 {
		return nil
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, decompress := range []bool{false, true} {
		if decompress && !gunzip {
			break
		}
		// written beside dst under its own sha256, then named dst if that
		// is the pinned one
		got, _, err := writeBlob(dir, func(w io.Writer) error { return st.copyBlob(ctx, x.Blob, decompress, w) })
		if err != nil {
			return err
		}
		p := filepath.Join(dir, strings.TrimPrefix(got, "sha256:"))
		if got == "sha256:"+x.SHA256 {
			o.logf("%s: sha256 %s from %s\n", sourceLabel(x), x.SHA256[:12], st.Where)
			return os.Rename(p, dst)
		}
		os.Remove(p)
	}
	return fmt.Errorf("%w: its blob %s does not hold sha256 %s", failure.ErrVerify, x.Blob, x.SHA256)
}

// copyBlob copies blob b (checked against its name as it is read) to w,
// gunzipped when decompress.
func (st *Stored) copyBlob(ctx context.Context, b string, decompress bool, w io.Writer) error {
	rc, err := st.blob(ctx, b)
	if err != nil {
		return err
	}
	defer rc.Close()
	var r io.Reader = rc
	if decompress {
		zr, err := gzip.NewReader(rc)
		if err != nil {
			return err
		}
		r = zr
	}
	_, err = io.Copy(w, r)
	return err
}

// blob opens blob b, checked to be the bytes its name says as it is read.
func (st *Stored) blob(ctx context.Context, b string) (io.ReadCloser, error) {
	rc, err := st.Read(ctx, b)
	if err != nil {
		return nil, err
	}
	return &checkedBlob{rc: rc, h: sha256.New(), want: strings.TrimPrefix(b, "sha256:")}, nil
}

// checkedBlob fails its last read when the bytes were not its sha256.
type checkedBlob struct {
	rc   io.ReadCloser
	h    hash.Hash
	want string
}

func (c *checkedBlob) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(c.h.Sum(nil)); got != c.want {
			return n, fmt.Errorf("%w: blob sha256:%s holds bytes of sha256 %s", failure.ErrVerify, c.want, got)
		}
	}
	return n, err
}

func (c *checkedBlob) Close() error { return c.rc.Close() }

// sourceLabel names a source for people.
func sourceLabel(x manifest.Source) string {
	switch x.Kind {
	case manifest.SourceControl:
		return "control repo"
	case manifest.SourceGit, manifest.SourceForge:
		return "module " + x.Name
	case manifest.SourceAgent:
		return "agent binaries of " + x.Name
	}
	return "base of " + x.Name
}

// base is the base tarball of sha256 sum made again from the sources.
func (st *Stored) base(sum string) (string, bool) {
	if st == nil || sum == "" {
		return "", false
	}
	p, ok := st.bases[sum]
	return p, ok
}

// keepAgent adds the agent archive of im (staged, in agentFiles, or
// fetched) to s as a blob of blobs; false when this bake has no agent
// binaries for im's arch. An image without agent binaries keeps none.
func keepAgent(ctx context.Context, s *manifest.Sources, in *Inputs, im manifest.Image, agentFiles map[string]string, blobs string, o Options) (bool, error) {
	if im.Agent.None() {
		return true, nil
	}
	p, ok := agentFiles[im.Arch]
	if !ok {
		sel, ok := in.Agents[im.Arch]
		if !ok {
			return false, nil
		}
		var err error
		if p, err = agents.Fetch(ctx, sel, o.Cache); err != nil {
			return false, err
		}
	}
	blob, size, err := copyBlob(blobs, p)
	if err != nil {
		return false, err
	}
	s.Source = append(s.Source, manifest.Source{Kind: manifest.SourceAgent, Name: im.Arch, SHA256: im.Agent.SHA256, Blob: blob, Size: size})
	return true, nil
}

// agent is the selection of im's agent archive when the sources restored
// it into the cache: the manifest's entry, read from the cache.
func (st *Stored) agent(cache string, im *manifest.Image) (agents.Selection, bool) {
	if st == nil {
		return agents.Selection{}, false
	}
	p := filepath.Join(cache, "agents", im.Agent.SHA256+".tar.gz")
	if got, err := filehash.SHA256(p); err != nil || got != im.Agent.SHA256 {
		return agents.Selection{}, false
	}
	a := im.Agent
	return agents.Selection{
		Entry:  agents.Entry{Name: a.Name, Version: a.Version, OS: a.OS, Arch: a.Arch, Size: a.Size, SHA256: a.SHA256, Path: a.Path},
		Store:  restoredAgent{file: p, where: st.Where},
		Source: a.Source,
		URL:    strings.TrimSuffix(a.Source, "/") + "/" + a.Path,
	}, true
}

// restoredAgent is an agent archive the sources restored, as a store
// that holds just it.
type restoredAgent struct{ file, where string }

func (r restoredAgent) Location() string { return r.where }

func (r restoredAgent) Index(context.Context) (*agents.Index, error) {
	return nil, fmt.Errorf("%w: the sources of a release hold its agent archives, not an index", failure.ErrNotFound)
}

func (r restoredAgent) Open(_ context.Context, _ string, offset int64) (io.ReadCloser, error) {
	f, err := os.Open(r.file)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (r restoredAgent) LocalPath(string) string { return r.file }

// LocalSources are the sources kept beside a release's manifest (a
// release directory, or one of a directory store): nil when there are
// none (a release made before imagebake kept them).
func LocalSources(manifestPath string) (*Stored, error) {
	dir := filepath.Dir(manifestPath)
	s, err := manifest.ReadSources(filepath.Join(dir, manifest.SourcesFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Stored{Sources: s, Where: dir, Read: func(_ context.Context, blob string) (io.ReadCloser, error) {
		p := filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(blob, "sha256:"))
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s is missing", failure.ErrNotFound, p)
		}
		return f, err
	}}, nil
}

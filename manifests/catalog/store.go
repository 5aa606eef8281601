package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

// FileName is the catalog document inside the catalog directory.
const FileName = "catalog.toml"

// Store is a directory store's catalog side.
type Store struct {
	Root string
	Keys *signing.Keyring
	// Guard remembers the serials seen (nil: none).
	Guard *Guard
}

// Path is where readers find the catalog: ROOT/catalog/catalog.toml.
func (s *Store) Path() string { return filepath.Join(s.Root, "catalog", FileName) }

// Read loads the catalog, verifies its signature and checks its serial
// with the store's Guard. A store without a catalog yields an empty one.
func (s *Store) Read() (*Catalog, error) {
	// the catalog and its signature are read from one generation: the
	// link may be moved to the next one meanwhile
	dir := filepath.Join(s.Root, "catalog")
	if gen, err := os.Readlink(dir); err == nil && !filepath.IsAbs(gen) {
		dir = filepath.Join(s.Root, gen)
	}
	c, err := readSigned(filepath.Join(dir, FileName), s.Path(), s.Keys, s.Guard)
	if errors.Is(err, os.ErrNotExist) {
		return &Catalog{Format: Format}, nil
	}
	return c, err
}

// readSigned reads the catalog file p and p.minisig, verifies them with
// keys, parses the catalog and checks its serial with g; name is what
// messages call it.
func readSigned(p, name string, keys *signing.Keyring, g *Guard) (*Catalog, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	sig, err := os.ReadFile(p + ".minisig")
	if errors.Is(err, os.ErrNotExist) {
		sig, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := keys.Verify(name, data, sig); err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, g.Serial(location(name), signing.KeyIDOf(sig), c)
}

// location is the name a catalog's serials are remembered under: an
// absolute path or the URL.
func location(name string) string {
	if strings.Contains(name, "://") {
		return name
	}
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return name
}

// ReadFile loads a catalog file (catalog.toml beside its .minisig),
// verifies it and checks its serial with g: for readers outside a store.
func ReadFile(name string, keys *signing.Keyring, g *Guard) (*Catalog, error) {
	return readSigned(name, name, keys, g)
}

// Update runs change on the catalog under the store's lock and writes the
// result, signed, as a new generation.
func (s *Store) Update(ctx context.Context, signer *signing.Signer, change func(*Catalog) error) (*Catalog, error) {
	lf, err := flock.Lock(filepath.Join(s.Root, ".catalog.lock"))
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	c, err := s.Read()
	if err != nil {
		return nil, err
	}
	if write, err := apply(c, change); !write || err != nil {
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	if err := s.write(c, signer); err != nil {
		return nil, err
	}
	return c, s.Guard.Serial(location(s.Path()), signer.KeyID(), c)
}

// write makes a new generation directory with the catalog and its
// signature, then points the catalog symlink at it.
func (s *Store) write(c *Catalog, signer *signing.Signer) error {
	data, err := c.Encode()
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	gen := ".catalog-" + hex.EncodeToString(sum[:8])
	dir := filepath.Join(s.Root, gen)
	tmp, err := os.MkdirTemp(s.Root, ".catalog-tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := writeSync(filepath.Join(tmp, FileName), data); err != nil {
		return err
	}
	if err := writeSync(filepath.Join(tmp, FileName+".minisig"), signer.Sign(data, FileName, "")); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	os.RemoveAll(dir) // the same content written before (and left by a killed run)
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	link := filepath.Join(s.Root, ".catalog-link-tmp")
	os.Remove(link)
	if err := os.Symlink(gen, link); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(s.Root, "catalog"))
	if err := os.Rename(link, filepath.Join(s.Root, "catalog")); err != nil {
		return err
	}
	syncDir(s.Root)
	// keep the previous generation for readers that opened it; drop older ones
	ents, _ := os.ReadDir(s.Root)
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".catalog-") && n != gen && n != old && !strings.HasPrefix(n, ".catalog-tmp-") && n != ".catalog-link-tmp" {
			os.RemoveAll(filepath.Join(s.Root, n))
		}
	}
	return nil
}

func writeSync(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) { _ = atomicfile.SyncDir(dir) }

// pending is a release about to be published: its manifest, as bytes and
// parsed, and the catalog entry it gets.
type pending struct {
	m      *manifest.Manifest
	mbytes []byte
	name   string // FAMILY-X.Y.Z
	rel    Release
	// check, when set, judges the catalog the release is added to, under
	// the store's lock (or inside the S3 compare-and-swap)
	check func(*Catalog) error
}

// readPending reads the release directory's manifest and makes its
// catalog entry.
func readPending(releaseDir string, opts []PublishOption) (*pending, error) {
	mpath := filepath.Join(releaseDir, manifest.FileName)
	mbytes, err := os.ReadFile(mpath)
	if err != nil {
		return nil, fmt.Errorf("publishing %s: %w", releaseDir, err)
	}
	m, err := manifest.Parse(mbytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mpath, err)
	}
	v, err := parseVersion(m.Release)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mpath, err)
	}
	sum := sha256.Sum256(mbytes)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	name := m.Family + "-" + m.Release
	loc := "images/" + name
	rel := Release{Version: m.Release, Date: time.Unix(m.Epoch, 0).UTC(), State: Active, ManifestDigest: digest, IndexDigest: m.IndexDigest, Security: v.Patch() > 0, Advisories: m.Advisories, Fixes: m.Fixes, v: v}
	for _, im := range m.Images {
		rel.Images = append(rel.Images, Image{Arch: im.Arch, Name: im.Name, Digest: im.Digest, Location: loc})
	}
	var po publishOptions
	for _, o := range opts {
		o(&po)
	}
	if len(rel.Fixes) == 0 && len(po.fixes) > 0 {
		if err := manifest.CheckFixes(m.Advisories, po.fixes); err != nil {
			return nil, fmt.Errorf("%s: %w", mpath, err)
		}
		rel.Fixes = po.fixes
	}
	return &pending{m: m, mbytes: mbytes, name: name, rel: rel, check: po.check}, nil
}

// PublishOption adds to what Publish records.
type PublishOption func(*publishOptions)

type publishOptions struct {
	fixes []manifest.Fix
	check func(*Catalog) error
}

// WithCheck has Publish run check on the catalog the release is added to,
// as it is under the store's lock (in an S3 store, inside the
// compare-and-swap of the catalog, again on each retry): a release number
// checked against the catalog read before is checked again against the
// one it goes into, so two publishers cannot both pass on what the other
// changes. An error refuses the release, nothing listed.
func WithCheck(check func(*Catalog) error) PublishOption {
	return func(o *publishOptions) { o.check = check }
}

// WithFixes records fixes in the catalog entry of a release whose manifest
// has none (a security release baked without its number checked: publish
// derives them from the release before it).
func WithFixes(fixes []manifest.Fix) PublishOption {
	return func(o *publishOptions) { o.fixes = fixes }
}

// signature is the manifest's signature, vouching for its family and release.
func (p *pending) signature(signer *signing.Signer) []byte {
	return signer.Sign(p.mbytes, manifest.FileName, ManifestSubject(p.m.Family, p.m.Release))
}

// present says whether c holds the release already (the same manifest),
// and refuses another manifest under the same version.
func (p *pending) present(c *Catalog, where string) (bool, error) {
	f := c.Family(p.m.Family, false)
	if f == nil {
		return false, nil
	}
	old := f.Release(p.m.Release)
	switch {
	case old == nil:
		return false, nil
	case old.ManifestDigest == p.rel.ManifestDigest:
		return true, nil
	}
	return false, fmt.Errorf("%w: %s is in %s with manifest %s; this one is %s. Releases are immutable: bake a new version",
		ErrExists, p.name, where, old.ManifestDigest, p.rel.ManifestDigest)
}

// add puts the release into c unless it is there; it says whether it was
// added. The check runs first, on c as it is now.
func (p *pending) add(c *Catalog, where string) (bool, error) {
	if ok, err := p.present(c, where); ok || err != nil {
		return false, err
	}
	if p.check != nil {
		if err := p.check(c); err != nil {
			return false, err
		}
	}
	f := c.Family(p.m.Family, true)
	f.Releases = append(f.Releases, p.rel)
	return true, nil
}

// Publish copies the release directory into the store (images/NAME/, with
// the manifest signed) and adds it to the catalog. Publishing identical
// content again is a no-op; the same version with other content is
// refused. It returns whether anything was added.
func (s *Store) Publish(ctx context.Context, releaseDir string, signer *signing.Signer, opts ...PublishOption) (*Release, bool, error) {
	p, err := readPending(releaseDir, opts)
	if err != nil {
		return nil, false, err
	}
	s.clearTemps()
	done, err := s.sharePool()
	if err != nil {
		return nil, false, err
	}
	defer done()
	added := false
	_, err = s.Update(ctx, signer, func(c *Catalog) error {
		if ok, err := p.present(c, s.Path()); ok || err != nil {
			return err
		}
		if p.check != nil {
			if err := p.check(c); err != nil {
				return err
			}
		}
		dst := filepath.Join(s.Root, "images", p.name)
		// a directory without a catalog entry was left by a killed publish
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := s.copyRelease(releaseDir, dst, p.signature(signer)); err != nil {
			return err
		}
		added, err = p.add(c, s.Path())
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return &p.rel, added, nil
}

// copyRelease copies src into dst through a temporary directory, adding
// the manifest's signature; its layout blobs are links to the pool's.
func (s *Store) copyRelease(src, dst string, manifestSig []byte) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".publish-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	err = filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(tmp, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(t, 0o755)
		case fi.Mode().IsRegular():
			if hex, ok := isPoolBlob(rel); ok {
				return s.linkFromPool(p, t, hex) // the store's own copy, kept once
			}
			return atomicfile.Copy(p, t, 0o644) // never a link to src: the store owns its bytes
		}
		return fmt.Errorf("%s: only files and directories are published", p)
	})
	if err != nil {
		return err
	}
	if err := writeSync(filepath.Join(tmp, manifest.FileName+".minisig"), manifestSig); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// ManifestSubject is what a manifest's signature says it is.
func ManifestSubject(family, release string) string {
	return "family:" + family + " release:" + release
}

// WritePage writes page as catalog/NAME of the store, whole or not at all.
func (s *Store) WritePage(_ context.Context, name string, page []byte) error {
	return atomicfile.WriteFile(filepath.Join(filepath.Dir(s.Path()), name), page, 0o644)
}

// ReadManifest reads a published manifest from the store and checks it is
// the one the signed catalog names: its digest is the catalog's
// manifest_digest, its signature's subject and its own family and release
// are the ones asked for. A manifest copied (with its signature) into
// another release's directory is refused.
func (s *Store) ReadManifest(ctx context.Context, family, version string) (*manifest.Manifest, error) {
	c, err := s.Read()
	if err != nil {
		return nil, err
	}
	rel, err := c.mustFind(family, version, s.Path())
	if err != nil {
		return nil, err
	}
	return s.readManifest(rel, family, version)
}

// readManifest reads and checks the manifest of rel, found in the catalog.
func (s *Store) readManifest(rel *Release, family, version string) (*manifest.Manifest, error) {
	p := filepath.Join(s.Root, "images", family+"-"+version, manifest.FileName)
	data, subject, err := s.Keys.VerifyFileSubject(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s %s: no manifest at %s: %w", family, version, p, failure.ErrNotFound)
		}
		return nil, err
	}
	return published(p, data, subject, rel, s.Path(), family, version)
}

// find returns the release version of family, or nil.
func (c *Catalog) find(family, version string) *Release {
	if f := c.Family(family, false); f != nil {
		return f.Release(version)
	}
	return nil
}

// mustFind is find, with an error naming the catalog where the release is
// missing.
func (c *Catalog) mustFind(family, version, where string) (*Release, error) {
	if rel := c.find(family, version); rel != nil {
		return rel, nil
	}
	return nil, fmt.Errorf("%s %s is not in the catalog %s: %w", family, version, where, failure.ErrNotFound)
}

// published checks a verified manifest read from p is the one the catalog
// (read from where) names for family and version, and parses it.
func published(p string, data []byte, subject string, rel *Release, where, family, version string) (*manifest.Manifest, error) {
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != rel.ManifestDigest {
		return nil, fmt.Errorf("%w: %s is not the manifest the catalog %s names for %s %s (catalog %s, file %s)",
			ErrManifestMismatch, p, where, family, version, rel.ManifestDigest, got)
	}
	return checkManifest(p, data, subject, family, version)
}

// ErrManifestMismatch marks a manifest that is not the one it is read as.
var ErrManifestMismatch = fmt.Errorf("manifest does not match: %w", failure.ErrVerify)

// checkManifest parses a verified manifest and checks that its signature's
// subject and its content are the family and release wanted ("" wants
// what the manifest says, but its signature must agree).
func checkManifest(p string, data []byte, subject, family, version string) (*manifest.Manifest, error) {
	m, err := manifest.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if family == "" {
		family, version = m.Family, m.Release
	}
	want := ManifestSubject(family, version)
	switch {
	case m.Family != family || m.Release != version:
		return nil, fmt.Errorf("%w: %s holds %s %s, read as %s %s", ErrManifestMismatch, p, m.Family, m.Release, family, version)
	case subject != want:
		if subject == "" {
			subject = "nothing"
		}
		return nil, fmt.Errorf("%w: %s: its signature vouches for %s, not %s (re-publish with this imagebake to sign the release into it)", ErrManifestMismatch, p, subject, want)
	}
	return m, nil
}

// VerifyManifest checks a manifest read from name (a file, a URL, a
// registry artifact) against its signature sig with keys, and that the
// signature vouches for the family and release the manifest says.
func VerifyManifest(name string, data, sig []byte, keys *signing.Keyring) (*manifest.Manifest, error) {
	if err := keys.Verify(name, data, sig); err != nil {
		return nil, err
	}
	return checkManifest(name, data, signing.Subject(sig), "", "")
}

// ReadSignedManifest reads a manifest file and its signature, verifies it
// with keys and checks the signature vouches for the family and release
// the manifest says, and, when the file sits in a release directory
// (FAMILY-X.Y.Z/manifest.toml), for that one.
func ReadSignedManifest(p string, keys *signing.Keyring) (*manifest.Manifest, error) {
	data, subject, err := keys.VerifyFileSubject(p)
	if err != nil {
		return nil, err
	}
	m, err := checkManifest(p, data, subject, "", "")
	if err != nil {
		return nil, err
	}
	dir := filepath.Base(filepath.Dir(p))
	if releaseDirRE.MatchString(dir) && dir != m.Family+"-"+m.Release {
		return nil, fmt.Errorf("%w: %s holds %s %s, but sits in the directory of %s", ErrManifestMismatch, p, m.Family, m.Release, dir)
	}
	return m, nil
}

var releaseDirRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*-[0-9]+\.[0-9]+\.[0-9]+$`)

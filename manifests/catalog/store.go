package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imagebake/imagebake/atomicfile"
	"github.com/imagebake/imagebake/failure"
	"github.com/imagebake/imagebake/flock"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

// FileName is the catalog document inside the catalog directory.
const FileName = "catalog.toml"

// Store is a directory store's catalog side.
type Store struct {
	Root string
	Keys *signing.Keyring
}

// Path is where readers find the catalog: ROOT/catalog/catalog.toml.
func (s *Store) Path() string { return filepath.Join(s.Root, "catalog", FileName) }

// Read loads the catalog and verifies its signature. A store without a
// catalog yields an empty one.
func (s *Store) Read() (*Catalog, error) {
	data, err := s.Keys.VerifyFile(s.Path())
	if errors.Is(err, os.ErrNotExist) {
		return &Catalog{Format: Format}, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path(), err)
	}
	return c, nil
}

// ReadFile loads a catalog file (catalog.toml beside its .minisig) and
// verifies it: for readers outside a store.
func ReadFile(name string, keys *signing.Keyring) (*Catalog, error) {
	data, err := keys.VerifyFile(name)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// Update runs change on the catalog under the store's lock and writes the
// result, signed, as a new generation.
func (s *Store) Update(signer *signing.Signer, change func(*Catalog) error) (*Catalog, error) {
	lf, err := flock.Lock(filepath.Join(s.Root, ".catalog.lock"))
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	c, err := s.Read()
	if err != nil {
		return nil, err
	}
	if err := change(c); err != nil {
		return nil, err
	}
	return c, s.write(c, signer)
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
	if err := writeSync(filepath.Join(tmp, FileName+".minisig"), signer.Sign(data, FileName)); err != nil {
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

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Publish copies the release directory into the store (images/NAME/, with
// the manifest signed) and adds it to the catalog. Publishing identical
// content again is a no-op; the same version with other content is
// refused. It returns whether anything was added.
func (s *Store) Publish(releaseDir string, signer *signing.Signer) (*Release, bool, error) {
	mpath := filepath.Join(releaseDir, manifest.FileName)
	mbytes, err := os.ReadFile(mpath)
	if err != nil {
		return nil, false, fmt.Errorf("publishing %s: %w", releaseDir, err)
	}
	m, err := manifest.Parse(mbytes)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", mpath, err)
	}
	sum := sha256.Sum256(mbytes)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	name := m.Family + "-" + m.Release
	loc := filepath.ToSlash(filepath.Join("images", name))
	rel := Release{Version: m.Release, Date: time.Unix(m.Epoch, 0).UTC(), State: Active, ManifestDigest: digest, IndexDigest: m.IndexDigest}
	for _, im := range m.Images {
		rel.Images = append(rel.Images, Image{Arch: im.Arch, Name: im.Name, Digest: im.Digest, Location: loc})
	}
	added := false
	_, err = s.Update(signer, func(c *Catalog) error {
		f := c.Family(m.Family, true)
		if old := f.Release(m.Release); old != nil {
			if old.ManifestDigest == digest {
				return nil
			}
			return fmt.Errorf("%w: %s is in %s with manifest %s; this one is %s. Releases are immutable: bake a new version",
				ErrExists, name, s.Path(), old.ManifestDigest, digest)
		}
		dst := filepath.Join(s.Root, "images", name)
		// a directory without a catalog entry was left by a killed publish
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := copyRelease(releaseDir, dst, signer.Sign(mbytes, manifest.FileName)); err != nil {
			return err
		}
		v, err := parseVersion(m.Release)
		if err != nil {
			return err
		}
		rel.Security, rel.v = v.Patch() > 0, v
		f.Releases = append(f.Releases, rel)
		added = true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return &rel, added, nil
}

// copyRelease copies src into dst through a temporary directory, adding
// the manifest's signature.
func copyRelease(src, dst string, manifestSig []byte) error {
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
			return atomicfile.Copy(p, t, 0o644) // never a link: the store owns its bytes
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

// ReadManifest reads a published manifest from the store, verified.
func (s *Store) ReadManifest(family, version string) (*manifest.Manifest, error) {
	p := filepath.Join(s.Root, "images", family+"-"+version, manifest.FileName)
	data, err := s.Keys.VerifyFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s %s: no manifest at %s: %w", family, version, p, failure.ErrNotFound)
		}
		return nil, err
	}
	return manifest.Parse(data)
}

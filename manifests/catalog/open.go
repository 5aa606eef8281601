package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/s3obj"
	"github.com/imagebake/imagebake/internal/stall"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

// Opened is a catalog read and verified, with where it was read from.
type Opened struct {
	*Catalog
	// Where names the catalog for people: a path or a URL.
	Where string
	// Notice warns that the catalog expires soon ("" otherwise).
	Notice string
	// read reads the manifest of a release the catalog holds.
	read func(ctx context.Context, rel *Release, family, version string) (*manifest.Manifest, error)
	// file reads a file of a published release's directory.
	file func(ctx context.Context, family, version, name string) ([]byte, error)
	// blob reads a blob of the store's pool.
	blob func(ctx context.Context, hex string) (io.ReadCloser, error)
}

// Blob reads the store's pool blob hex (a release's layer or source),
// unchecked: the caller checks it against its name as it reads. A blob
// the pool lacks is failure.ErrNotFound.
func (o *Opened) Blob(ctx context.Context, hex string) (io.ReadCloser, error) {
	if !hexRE.MatchString(hex) {
		return nil, fmt.Errorf("%w: %q is not a blob's sha256", failure.ErrUsage, hex)
	}
	if o.blob == nil {
		return nil, fmt.Errorf("%w: %s keeps no blobs", failure.ErrNotFound, o.Where)
	}
	return o.blob(ctx, hex)
}

// MaxReleaseFile bounds what ReleaseFile reads.
const MaxReleaseFile = 256 << 20

// ReleaseFile reads the file name (catalog-NODE.json) of family's
// published release version, as it is in the store: the caller checks it
// against the digest the release's signed manifest records. A file the
// store does not have is failure.ErrNotFound.
func (o *Opened) ReleaseFile(ctx context.Context, family, version, name string) ([]byte, error) {
	if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("%w: %q is not the name of a release file", failure.ErrUsage, name)
	}
	if o.file == nil {
		return nil, fmt.Errorf("%w: %s keeps no release files", failure.ErrNotFound, o.Where)
	}
	return o.file(ctx, family, version, name)
}

// Manifest reads the signed manifest of family's release version and
// checks it is the one the catalog names. A release the catalog does not
// hold gives nil and no error: nothing was published under that number.
func (o *Opened) Manifest(ctx context.Context, family, version string) (*manifest.Manifest, error) {
	rel := o.find(family, version)
	if rel == nil {
		return nil, nil
	}
	return o.read(ctx, rel, family, version)
}

// Open reads the catalog at src, verified with keys: a store directory, a
// catalog.toml file, an s3://BUCKET/PREFIX store, or an HTTP(S) URL (of a
// store, or of a catalog.toml with its signature at URL.minisig). client
// nil means a client that stops a transfer receiving nothing for stall.Default. A catalog older than one g saw at the same
// place, or past its expiry, is refused.
func Open(ctx context.Context, src string, keys *signing.Keyring, client *http.Client, g *Guard) (*Opened, error) {
	o, err := open(ctx, src, keys, client, g)
	if err != nil {
		return nil, err
	}
	if o.Notice, err = g.Expiry(o.Where, o.Catalog); err != nil {
		return nil, err
	}
	return o, nil
}

func open(ctx context.Context, src string, keys *signing.Keyring, client *http.Client, g *Guard) (*Opened, error) {
	switch {
	case s3obj.IsURL(src):
		b, err := s3obj.Open(ctx, src)
		if err != nil {
			return nil, err
		}
		st := &S3Store{B: b, Keys: keys, Guard: g}
		data, _, err := b.Get(ctx, catalogKey)
		if errors.Is(err, failure.ErrNotFound) {
			return nil, fmt.Errorf("no catalog in store %s (looked for %s): %w", src, st.Path(), failure.ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		c, err := st.verified(ctx, data)
		if err != nil {
			return nil, err
		}
		return &Opened{Catalog: c, Where: st.Path(), read: st.readManifest, blob: func(ctx context.Context, hex string) (io.ReadCloser, error) {
			data, _, err := b.Get(ctx, PoolDir+"/"+hex)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.URL(PoolDir+"/"+hex), err)
			}
			return io.NopCloser(bytes.NewReader(data)), nil
		}, file: func(ctx context.Context, family, version, name string) ([]byte, error) {
			key := "images/" + family + "-" + version + "/" + name
			data, _, err := b.Get(ctx, key)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.URL(key), err)
			}
			return data, nil
		}}, nil
	case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
		return openHTTP(ctx, src, keys, client, g)
	}
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		st := &Store{Root: src, Keys: keys, Guard: g}
		if _, err := os.Stat(st.Path()); err != nil {
			return nil, fmt.Errorf("no catalog in store %s (looked for %s): %w", src, st.Path(), failure.ErrNotFound)
		}
		c, err := st.Read()
		if err != nil {
			return nil, err
		}
		return st.opened(c), nil
	}
	c, err := ReadFile(src, keys, g)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no catalog at %s (looked for a store directory holding catalog/%s, or a catalog file): %w", src, FileName, failure.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	// a catalog file sits in a store: ROOT/catalog/catalog.toml
	return (&Store{Root: filepath.Dir(filepath.Dir(src)), Keys: keys}).openedAt(c, src), nil
}

func (s *Store) opened(c *Catalog) *Opened { return s.openedAt(c, s.Path()) }

func (s *Store) openedAt(c *Catalog, where string) *Opened {
	return &Opened{Catalog: c, Where: where, read: func(_ context.Context, rel *Release, family, version string) (*manifest.Manifest, error) {
		return s.readManifest(rel, family, version)
	}, blob: func(_ context.Context, hex string) (io.ReadCloser, error) {
		p := filepath.Join(s.Root, filepath.FromSlash(PoolDir), hex)
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", p, failure.ErrNotFound)
		}
		return f, err
	}, file: func(_ context.Context, family, version, name string) ([]byte, error) {
		p := filepath.Join(s.Root, "images", family+"-"+version, name)
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", p, failure.ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, MaxReleaseFile+1))
		if err == nil && len(b) > MaxReleaseFile {
			err = fmt.Errorf("%s: more than %d MiB", p, MaxReleaseFile>>20)
		}
		return b, err
	}}
}

func openHTTP(ctx context.Context, src string, keys *signing.Keyring, client *http.Client, g *Guard) (*Opened, error) {
	if !strings.HasSuffix(src, ".toml") { // a store's root URL
		src = strings.TrimSuffix(src, "/") + "/" + catalogKey
	}
	if client == nil {
		client = stall.Client(0)
	}
	data, err := get(ctx, client, src)
	if err != nil {
		return nil, err
	}
	sig, err := get(ctx, client, src+".minisig")
	if err != nil && !errors.Is(err, failure.ErrNotFound) {
		return nil, err
	}
	if verr := keys.Verify(src, data, sig); verr != nil {
		// an S3 store keeps each catalog's signature under its sha256:
		// catalog.toml.minisig may be mid-replacement
		alt := strings.TrimSuffix(src, FileName) + "signatures/" + s3obj.Sum(data) + ".minisig"
		sig2, err := get(ctx, client, alt)
		if err != nil || keys.Verify(src, data, sig2) != nil {
			return nil, verr
		}
		sig = sig2
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if err := g.Serial(src, signing.KeyIDOf(sig), c); err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(src, catalogKey)
	return &Opened{Catalog: c, Where: src, read: func(ctx context.Context, rel *Release, family, version string) (*manifest.Manifest, error) {
		u := base + "images/" + family + "-" + version + "/" + manifest.FileName
		fetch := func(u string) ([]byte, error) { return get(ctx, client, u) }
		return readPublished(fetch, u, keys, rel, src, family, version)
	}, file: func(ctx context.Context, family, version, name string) ([]byte, error) {
		return get(ctx, client, base+"images/"+family+"-"+version+"/"+name)
	}, blob: func(ctx context.Context, hex string) (io.ReadCloser, error) {
		b, err := get(ctx, client, base+PoolDir+"/"+hex)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}}, nil
}

// readPublished reads the manifest at u and its signature (u.minisig)
// with fetch, verifies it with keys and checks it is the one the catalog
// (read from where) names for family's release version.
func readPublished(fetch func(string) ([]byte, error), u string, keys *signing.Keyring, rel *Release, where, family, version string) (*manifest.Manifest, error) {
	data, err := fetch(u)
	if err != nil {
		return nil, fmt.Errorf("%s %s is in the catalog %s, but its manifest is not: %w", family, version, where, err)
	}
	sig, err := fetch(u + ".minisig")
	if err != nil && !errors.Is(err, failure.ErrNotFound) {
		return nil, err
	}
	if err := keys.Verify(u, data, sig); err != nil {
		return nil, err
	}
	return published(u, data, signing.Subject(sig), rel, where, family, version)
}

// MaxDocument bounds what is read of a catalog or signature over HTTP.
const MaxDocument = 64 << 20

func get(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: catalog URL %s: %v", failure.ErrUsage, u, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("GET %s: %s: %w", u, resp.Status, failure.ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxDocument+1))
	if err == nil && len(b) > MaxDocument {
		err = fmt.Errorf("GET %s: more than %d MiB", u, MaxDocument>>20)
	}
	return b, err
}

// PublishedManifest reads the signed manifest of family's release version
// from the store or catalog at src (as Open takes it) and checks it is the
// one the catalog names. A release the catalog does not hold gives nil and
// no error: nothing was published under that number yet.
func PublishedManifest(ctx context.Context, src, family, version string, keys *signing.Keyring, client *http.Client, g *Guard) (*manifest.Manifest, error) {
	o, err := Open(ctx, src, keys, client, g)
	if err != nil {
		return nil, err
	}
	return o.Manifest(ctx, family, version)
}

// Writer is a store whose catalog this process changes: a directory or
// an S3 prefix.
type Writer interface {
	// Path names the catalog for people.
	Path() string
	// Update changes the catalog and writes it, signed.
	Update(ctx context.Context, signer *signing.Signer, change func(*Catalog) error) (*Catalog, error)
	// Publish adds a baked release to the store and its catalog.
	Publish(ctx context.Context, releaseDir string, signer *signing.Signer, opts ...PublishOption) (*Release, bool, error)
	// ReadManifest reads a published release's manifest.
	ReadManifest(ctx context.Context, family, version string) (*manifest.Manifest, error)
	// WritePage puts an HTML page for people beside the catalog
	// (catalog/NAME): readers never trust it, the signed catalog is
	// what they check.
	WritePage(ctx context.Context, name string, page []byte) error
}

// OpenWriter returns the store at dest: a directory or s3://BUCKET/PREFIX.
// mustExist refuses a store without a catalog.
func OpenWriter(ctx context.Context, dest string, keys *signing.Keyring, mustExist bool, g *Guard) (Writer, error) {
	if s3obj.IsURL(dest) {
		b, err := s3obj.Open(ctx, dest)
		if err != nil {
			return nil, err
		}
		st := &S3Store{B: b, Keys: keys, Guard: g}
		if mustExist {
			if _, err := b.Head(ctx, catalogKey); errors.Is(err, failure.ErrNotFound) {
				return nil, fmt.Errorf("no catalog in store %s (looked for %s); publish a release there first: %w", dest, st.Path(), failure.ErrNotFound)
			} else if err != nil {
				return nil, err
			}
		}
		return st, nil
	}
	if strings.Contains(dest, "://") {
		return nil, fmt.Errorf("%w: store %s: a store to write is a directory or s3://BUCKET/PREFIX (HTTP stores are read-only)", failure.ErrUsage, dest)
	}
	st := &Store{Root: dest, Keys: keys, Guard: g}
	if mustExist {
		if _, err := os.Stat(st.Path()); err != nil {
			return nil, fmt.Errorf("no catalog in store %s (looked for %s); publish a release there first: %w", dest, st.Path(), failure.ErrNotFound)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "images")); err == nil {
		st.clearTemps() // what a killed publish or migrate left
	}
	return st, nil
}

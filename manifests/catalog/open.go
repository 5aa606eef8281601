package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

// Open reads the catalog at src, verified with keys: an HTTP(S) URL of a
// catalog.toml (its signature at URL.minisig), a store directory, or a
// catalog.toml file. It returns the catalog, where it was read from, and
// the store when src is one (nil otherwise). client nil means
// http.DefaultClient.
func Open(ctx context.Context, src string, keys *signing.Keyring, client *http.Client) (*Catalog, string, *Store, error) {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		if !strings.HasSuffix(src, ".toml") { // a store's root URL
			src = strings.TrimSuffix(src, "/") + "/" + "catalog/" + FileName
		}
		if client == nil {
			client = http.DefaultClient
		}
		data, err := get(ctx, client, src)
		if err != nil {
			return nil, "", nil, err
		}
		sig, err := get(ctx, client, src+".minisig")
		if err != nil && !errors.Is(err, failure.ErrNotFound) {
			return nil, "", nil, err
		}
		if err := keys.Verify(src, data, sig); err != nil {
			return nil, "", nil, err
		}
		c, err := Parse(data)
		if err != nil {
			return nil, "", nil, fmt.Errorf("%s: %w", src, err)
		}
		return c, src, nil, nil
	}
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		st := &Store{Root: src, Keys: keys}
		if _, err := os.Stat(st.Path()); err != nil {
			return nil, "", nil, fmt.Errorf("no catalog in store %s (looked for %s): %w", src, st.Path(), failure.ErrNotFound)
		}
		c, err := st.Read()
		return c, st.Path(), st, err
	}
	c, err := ReadFile(src, keys)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil, fmt.Errorf("no catalog at %s (looked for a store directory holding catalog/%s, or a catalog file): %w", src, FileName, failure.ErrNotFound)
	}
	return c, src, nil, err
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
func PublishedManifest(ctx context.Context, src, family, version string, keys *signing.Keyring, client *http.Client) (*manifest.Manifest, error) {
	c, where, st, err := Open(ctx, src, keys, client)
	if err != nil {
		return nil, err
	}
	return ReadPublished(ctx, c, where, st, family, version, keys, client)
}

// ReadPublished is PublishedManifest for a catalog already opened: c,
// where and st as Open returned them.
func ReadPublished(ctx context.Context, c *Catalog, where string, st *Store, family, version string, keys *signing.Keyring, client *http.Client) (*manifest.Manifest, error) {
	var rel *Release
	if f := c.Family(family, false); f != nil {
		rel = f.Release(version)
	}
	switch {
	case rel == nil:
		return nil, nil
	case st != nil:
		return st.ReadManifest(family, version)
	case !strings.HasPrefix(where, "http://") && !strings.HasPrefix(where, "https://"):
		return (&Store{Root: filepath.Dir(filepath.Dir(where)), Keys: keys}).ReadManifest(family, version)
	}
	u := strings.TrimSuffix(where, "catalog/"+FileName) + "images/" + family + "-" + version + "/" + manifest.FileName
	if client == nil {
		client = http.DefaultClient
	}
	data, err := get(ctx, client, u)
	if err != nil {
		return nil, fmt.Errorf("%s %s is in the catalog %s, but its manifest is not: %w", family, version, where, err)
	}
	sig, err := get(ctx, client, u+".minisig")
	if err != nil && !errors.Is(err, failure.ErrNotFound) {
		return nil, err
	}
	if err := keys.Verify(u, data, sig); err != nil {
		return nil, err
	}
	return published(u, data, signing.Subject(sig), rel, where, family, version)
}

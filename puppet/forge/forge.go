// Package forge is a client of the Puppet Forge v3 API: it resolves module
// versions to releases and downloads their tarballs, checking each one's
// sha256 before it is used.
//
// Downloads land in a cache directory under their final name only after
// the checksum matched, so a killed or tampered download is never used.
package forge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/nearest"
	"github.com/imagebake/imagebake/internal/stall"
)

// DefaultURL is the public Forge API.
const DefaultURL = "https://forgeapi.puppet.com"

// ErrChecksum marks a tarball whose sha256 is not the one the Forge (or a lock) gave.
var ErrChecksum = fmt.Errorf("checksum mismatch: %w", failure.ErrVerify)

// Release is one published version of a module.
type Release struct {
	Slug    string // "puppetlabs-stdlib"
	Version string
	URL     string // download URL of the tarball
	SHA256  string
	Size    int64
}

// Client talks to one Forge.
type Client struct {
	base string
	http *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (timeouts, proxies, test servers).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// New returns a client of the Forge API at base.
func New(base string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(base, "/"), http: stall.Client(0)}
	for _, o := range opts {
		o(c)
	}
	return c
}

type apiRelease struct {
	Version    string `json:"version"`
	FileURI    string `json:"file_uri"`
	FileSHA256 string `json:"file_sha256"`
	FileSize   int64  `json:"file_size"`
	Module     struct {
		Slug string `json:"slug"`
	} `json:"module"`
}

type apiModule struct {
	Slug           string       `json:"slug"`
	CurrentRelease *apiRelease  `json:"current_release"`
	Releases       []apiRelease `json:"releases"`
}

func (c *Client) get(ctx context.Context, path string, v any) (int, error) {
	u := c.base + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "imagebake")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: decoding answer: %w", u, err)
	}
	return resp.StatusCode, nil
}

// Latest returns the newest release of slug (the Forge's current release).
func (c *Client) Latest(ctx context.Context, slug string) (Release, error) {
	var m apiModule
	code, err := c.get(ctx, "/v3/modules/"+url.PathEscape(slug), &m)
	if code == http.StatusNotFound {
		return Release{}, fmt.Errorf("module %s: not on the Forge at %s: %w", slug, c.base, failure.ErrNotFound)
	}
	if err != nil {
		return Release{}, fmt.Errorf("module %s: %w", slug, err)
	}
	if m.CurrentRelease == nil {
		return Release{}, fmt.Errorf("module %s: the Forge at %s lists no current release: %w", slug, c.base, failure.ErrNotFound)
	}
	return c.release(slug, *m.CurrentRelease)
}

// Release returns release version of slug. When it does not exist, the
// error lists the nearest versions the Forge has.
func (c *Client) Release(ctx context.Context, slug, version string) (Release, error) {
	var r apiRelease
	code, err := c.get(ctx, "/v3/releases/"+url.PathEscape(slug+"-"+version), &r)
	if code == http.StatusNotFound {
		return Release{}, fmt.Errorf("module %s version %s: not on the Forge at %s%s: %w", slug, version, c.base, c.nearest(ctx, slug, version), failure.ErrNotFound)
	}
	if err != nil {
		return Release{}, fmt.Errorf("module %s version %s: %w", slug, version, err)
	}
	return c.release(slug, r)
}

func (c *Client) release(slug string, r apiRelease) (Release, error) {
	if r.FileURI == "" || len(r.FileSHA256) != 64 {
		return Release{}, fmt.Errorf("module %s version %s: the Forge at %s gives no file_uri or file_sha256", slug, r.Version, c.base)
	}
	u := r.FileURI
	if !strings.Contains(u, "://") {
		u = c.base + u
	}
	return Release{Slug: slug, Version: r.Version, URL: u, SHA256: strings.ToLower(r.FileSHA256), Size: r.FileSize}, nil
}

// nearest lists the closest versions the Forge has, for error messages.
func (c *Client) nearest(ctx context.Context, slug, want string) string {
	var m apiModule
	if _, err := c.get(ctx, "/v3/modules/"+url.PathEscape(slug), &m); err != nil || len(m.Releases) == 0 {
		return " (the module has no releases there)"
	}
	var vs []string
	for _, r := range m.Releases {
		vs = append(vs, r.Version)
	}
	names := nearest.Versions(want, vs, 3)
	return "; nearest: " + strings.Join(names, ", ")
}

// Fetch returns the path of rel's tarball under cacheDir, downloading it if
// it is not there. The sha256 is checked on download and again on every use.
func (c *Client) Fetch(ctx context.Context, rel Release, cacheDir string) (string, error) {
	dst := filepath.Join(cacheDir, rel.Slug+"-"+rel.Version+".tar.gz")
	if err := checkFile(dst, rel); err == nil {
		return dst, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		os.Remove(dst) // a cached file that no longer matches is fetched again
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rel.URL, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", "imagebake")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("module %s version %s: downloading %s: %w", rel.Slug, rel.Version, rel.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("module %s version %s: downloading %s: %s", rel.Slug, rel.Version, rel.URL, resp.Status)
	}
	tmp, err := atomicfile.CreateTemp(cacheDir, ".download-*")
	if err != nil {
		return "", err
	}
	defer tmp.Cleanup()
	h := sha256.New()
	if _, err = io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		return "", fmt.Errorf("module %s version %s: downloading %s: %w", rel.Slug, rel.Version, rel.URL, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != rel.SHA256 {
		return "", fmt.Errorf("module %s version %s: %s has sha256 %s, expected %s: %w", rel.Slug, rel.Version, rel.URL, got, rel.SHA256, ErrChecksum)
	}
	if err := tmp.Commit(dst, 0o644); err != nil {
		return "", err
	}
	return dst, nil
}

func checkFile(name string, rel Release) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != rel.SHA256 {
		return fmt.Errorf("cached %s has sha256 %s, expected %s: %w", name, got, rel.SHA256, ErrChecksum)
	}
	return nil
}

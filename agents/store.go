package agents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/s3obj"
	"github.com/imagebake/imagebake/internal/stall"
)

// ErrNoIndex marks a store without a tools/index.json. It is a different
// condition from "nothing matched" and is reported as such.
var ErrNoIndex = fmt.Errorf("no agent index at that store: %w", failure.ErrNotFound)

// Store is where agent binaries live.
type Store interface {
	// Location names the store's tools/ folder for people: a file:// or http(s):// URL.
	Location() string
	// Index reads tools/index.json.
	Index(ctx context.Context) (*Index, error)
	// Open reads the file at path (relative to tools/), from offset on.
	Open(ctx context.Context, path string, offset int64) (io.ReadCloser, error)
}

// NewStore returns the store at s: an http(s):// URL, an s3://BUCKET/PREFIX
// URL, a file:// URL or a directory path.
func NewStore(s string, client *http.Client) (Store, error) {
	switch {
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: store %q: %v", failure.ErrUsage, s, err)
		}
		if client == nil {
			client = stall.Client(0)
		}
		return &HTTPStore{base: strings.TrimRight(u.String(), "/"), client: client}, nil
	case strings.HasPrefix(s, "file://"):
		return NewDirStore(strings.TrimPrefix(s, "file://"))
	case s3obj.IsURL(s):
		// no request is made here: the context only loads the AWS configuration
		return NewS3Store(context.Background(), s)
	case strings.Contains(s, "://"):
		return nil, fmt.Errorf("%w: store %q: only directories, file://, http(s):// and s3:// stores are supported", failure.ErrUsage, s)
	}
	return NewDirStore(s)
}

// DirStore is a store in a local directory.
type DirStore struct {
	root string
}

// NewDirStore returns the store rooted at dir (the folder holding tools/).
func NewDirStore(dir string) (*DirStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &DirStore{root: abs}, nil
}

// Root is the store's directory.
func (d *DirStore) Root() string { return d.root }

// Tools is the store's tools/ directory.
func (d *DirStore) Tools() string { return filepath.Join(d.root, "tools") }

// LocalPath is the file at p (relative to tools/) on disk.
func (d *DirStore) LocalPath(p string) string { return filepath.Join(d.Tools(), filepath.FromSlash(p)) }

// Location implements Store.
func (d *DirStore) Location() string { return "file://" + d.Tools() }

// Index implements Store.
func (d *DirStore) Index(ctx context.Context) (*Index, error) {
	p := filepath.Join(d.Tools(), IndexName)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (run `imagebake agents index %s`)", p, ErrNoIndex, d.root)
	}
	if err != nil {
		return nil, err
	}
	ix, err := ParseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return ix, nil
}

// Open implements Store.
func (d *DirStore) Open(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(d.Tools(), filepath.FromSlash(p)))
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// HTTPStore is a read-only store behind an HTTP(S) URL.
type HTTPStore struct {
	base   string
	client *http.Client
}

// Location implements Store.
func (h *HTTPStore) Location() string { return h.base + "/tools" }

func (h *HTTPStore) get(ctx context.Context, p string, offset int64) (*http.Response, error) {
	u := h.base + "/tools/" + path.Clean(p)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "imagebake")
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK && offset == 0, resp.StatusCode == http.StatusPartialContent && offset > 0:
		return resp, nil
	case resp.StatusCode == http.StatusOK && offset > 0:
		resp.Body.Close()
		return nil, errNoRange
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %w", u, resp.Status, os.ErrNotExist)
	}
	resp.Body.Close()
	return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
}

var errNoRange = errors.New("server ignored the Range request")

// Index implements Store.
func (h *HTTPStore) Index(ctx context.Context) (*Index, error) {
	resp, err := h.get(ctx, IndexName, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s/%s: %w", h.Location(), IndexName, ErrNoIndex)
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s/%s: %w", h.Location(), IndexName, err)
	}
	ix, err := ParseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", h.Location(), IndexName, err)
	}
	return ix, nil
}

// Open implements Store.
func (h *HTTPStore) Open(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	resp, err := h.get(ctx, p, offset)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

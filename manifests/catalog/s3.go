package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/s3obj"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

// S3Store is a store under s3://BUCKET/PREFIX, laid out as a directory
// store is (catalog/catalog.toml with its .minisig, images/NAME-X.Y.Z/),
// so the bucket can also be served over HTTP to readers.
//
// Many publishers share it without a lock server. A release's files are
// created with If-None-Match: * (the manifest first: it claims the
// version), and only when all are there is the catalog replaced with
// If-Match on the ETag it was read with; a publisher that lost the race
// reads the catalog again and retries. A catalog is signed before it is
// written, and the signature is also stored under the catalog's own
// sha256 (catalog/signatures/SHA256.minisig), so a reader always finds
// the signature of the catalog it read, even while catalog.toml.minisig,
// the copy plain HTTP readers take, is being replaced.
type S3Store struct {
	B    *s3obj.Bucket
	Keys *signing.Keyring
	// Guard remembers the serials seen (nil: none).
	Guard *Guard
	// Retries counts the lost compare-and-swap races of this store's
	// writes.
	Retries atomic.Int64
	// Reused counts the pool blobs a publish found there and did not send.
	Reused atomic.Int64
	// afterUpload, in tests, runs when a publish has written its files,
	// before the catalog lists the release.
	afterUpload func()
	// gcHolding, in tests, runs when a gc holds its lease.
	gcHolding func()
}

const catalogKey = "catalog/" + FileName

func signatureKey(sum string) string { return "catalog/signatures/" + sum + ".minisig" }

// Path names the catalog for people.
func (s *S3Store) Path() string { return s.B.URL(catalogKey) }

// verified checks the catalog data read from the store (nil: none yet,
// an empty catalog) against its signature and parses it.
func (s *S3Store) verified(ctx context.Context, data []byte) (*Catalog, error) {
	if data == nil {
		return &Catalog{Format: Format}, nil
	}
	sig, _, err := s.B.Get(ctx, signatureKey(s3obj.Sum(data)))
	if errors.Is(err, failure.ErrNotFound) { // written by something else than an S3 publisher
		sig, _, err = s.B.Get(ctx, catalogKey+".minisig")
	}
	if err != nil && !errors.Is(err, failure.ErrNotFound) {
		return nil, err
	}
	if err := s.Keys.Verify(s.Path(), data, sig); err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path(), err)
	}
	return c, s.Guard.Serial(s.Path(), signing.KeyIDOf(sig), c)
}

// Read loads the catalog and verifies its signature.
func (s *S3Store) Read(ctx context.Context) (*Catalog, error) {
	data, _, err := s.B.Get(ctx, catalogKey)
	if errors.Is(err, failure.ErrNotFound) {
		data, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.verified(ctx, data)
}

// Update runs change on the catalog and writes the result, signed, if
// nobody wrote the catalog meanwhile; otherwise it reads the new catalog
// and runs change again. change must start from the catalog it is given.
func (s *S3Store) Update(ctx context.Context, signer *signing.Signer, change func(*Catalog) error) (*Catalog, error) {
	var c *Catalog
	var sig []byte
	lost, err := s.B.Swap(ctx, catalogKey, func(old []byte) ([]byte, error) {
		var err error
		if c, err = s.verified(ctx, old); err != nil {
			return nil, err
		}
		if write, err := apply(c, change); err != nil {
			return nil, err
		} else if !write && old != nil {
			return old, nil // unchanged: nothing is written
		}
		data, err := c.Encode()
		if err != nil {
			return nil, err
		}
		// the signature goes first, under the catalog's sha256: a reader
		// of the new catalog always finds it
		sig = signer.Sign(data, FileName, "")
		if err := s.B.CreateBytes(ctx, signatureKey(s3obj.Sum(data)), sig); err != nil && !errors.Is(err, s3obj.ErrExists) {
			return nil, err
		}
		return data, nil
	})
	s.Retries.Add(int64(lost))
	if err != nil {
		return nil, err
	}
	if sig != nil {
		// the copy plain HTTP readers take; one that finds it stale falls
		// back to signatures/SHA256.minisig
		if err := s.B.Put(ctx, catalogKey+".minisig", sig); err != nil {
			return nil, err
		}
		if err := s.Guard.Serial(s.Path(), signer.KeyID(), c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ErrClaimed marks a version whose files another publisher wrote with
// other content, while the catalog does not list it (yet).
var ErrClaimed = fmt.Errorf("release claimed by another publisher: %w", failure.ErrVerify)

// Publish uploads the release directory (images/NAME/, with the manifest
// signed) and then adds it to the catalog. Publishing identical content
// again is a no-op; the same version with other content is refused, also
// when two publishers race for it: the first manifest written claims the
// version.
func (s *S3Store) Publish(ctx context.Context, releaseDir string, signer *signing.Signer, opts ...PublishOption) (*Release, bool, error) {
	p, err := readPending(releaseDir, opts)
	if err != nil {
		return nil, false, err
	}
	if err := s.B.CheckConditional(ctx); err != nil {
		return nil, false, err
	}
	c, err := s.Read(ctx)
	if err != nil {
		return nil, false, err
	}
	if ok, err := p.present(c, s.Path()); ok || err != nil {
		return &p.rel, false, err
	}
	// a shared lease: no gc runs from before the pool blobs are looked at
	// (and some reused) until the catalog lists the release
	l, err := s.takeLease(ctx, false, "publish "+p.name)
	if err != nil {
		return nil, false, err
	}
	defer l.release(ctx)
	if err := s.upload(ctx, releaseDir, p, signer); err != nil {
		return nil, false, err
	}
	if s.afterUpload != nil {
		s.afterUpload()
	}
	added := false
	_, err = s.Update(ctx, signer, func(c *Catalog) error {
		added, err = p.add(c, s.Path())
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return &p.rel, added, nil
}

// upload writes the release's layout blobs into the pool (those the
// store lacks: a conditional create each), then its own files, the
// manifest first (it claims the version). A publish killed before the
// manifest leaves only pool blobs no release names, which gc removes.
func (s *S3Store) upload(ctx context.Context, dir string, p *pending, signer *signing.Signer) error {
	prefix := "images/" + p.name + "/"
	mkey := prefix + manifest.FileName
	blobs, files, err := releaseFiles(dir)
	if err != nil {
		return err
	}
	if err := s.uploadFiles(ctx, dir, "", blobs); err != nil { // the pool: blobs/sha256/HEX
		return err
	}
	var other *s3obj.OtherContentError
	if _, err := s.B.EnsureBytes(ctx, mkey, p.mbytes); errors.As(err, &other) {
		return fmt.Errorf("%w: %s holds another manifest (sha256 %s; this one is %s), and the catalog %s does not list %s: another publisher of this version is at work. If none is (a publish was killed), remove %s and publish again",
			ErrClaimed, s.B.URL(mkey), other.SHA256, other.WantSum, s.Path(), p.name, s.B.URL(prefix))
	} else if err != nil {
		return err
	}
	if err := s.uploadFiles(ctx, dir, prefix, files); err != nil {
		return err
	}
	skey := mkey + ".minisig"
	if err := s.B.CreateBytes(ctx, skey, p.signature(signer)); errors.Is(err, s3obj.ErrExists) {
		sig, _, err := s.B.Get(ctx, skey)
		if err != nil {
			return err
		}
		if _, err := VerifyManifest(s.B.URL(mkey), p.mbytes, sig, s.Keys); err != nil {
			return fmt.Errorf("%s was there already and does not vouch for the manifest: %w", s.B.URL(skey), err)
		}
	} else if err != nil {
		return err
	}
	return nil
}

// releaseFiles lists a release directory's files, slash-separated: its
// layout blobs (for the pool) and the rest but the manifest and its
// signature (written apart).
func releaseFiles(dir string) (blobs, files []string, err error) {
	err = filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		switch {
		case err != nil:
			return err
		case fi.IsDir():
			return nil
		case !fi.Mode().IsRegular():
			return fmt.Errorf("%s: only files and directories are published", path)
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == manifest.FileName || rel == manifest.FileName+".minisig":
		case func() bool { _, ok := isPoolBlob(rel); return ok }():
			blobs = append(blobs, rel)
		default:
			files = append(files, rel)
		}
		return nil
	})
	sort.Strings(blobs)
	sort.Strings(files)
	return blobs, files, err
}

// uploadFiles creates each file under prefix, a few at a time. A file
// that is there already must have the same sha256 (a resumed or a
// concurrent identical publish).
func (s *S3Store) uploadFiles(ctx context.Context, dir, prefix string, files []string) error {
	errs := make([]error, len(files))
	g, gctx := errgroup.WithContext(ctx) // the first failure stops the rest
	g.SetLimit(4)
	for i := range files {
		g.Go(func() error {
			defer failure.Crash()
			errs[i] = s.uploadFile(gctx, filepath.Join(dir, filepath.FromSlash(files[i])), prefix+files[i])
			return errs[i]
		})
	}
	g.Wait() // every error is in errs
	var out []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			out = append(out, err)
		}
	}
	if len(out) == 0 { // cancelled from outside
		return errors.Join(errs...)
	}
	return errors.Join(out...)
}

func (s *S3Store) uploadFile(ctx context.Context, path, key string) error {
	if hex, ok := isPoolBlob(key); ok {
		// the pool has it (another release's base): not sent again
		if info, err := s.B.Head(ctx, key); err == nil && info.SHA256 == hex {
			s.Reused.Add(1)
			return nil
		}
		_, err := s.B.EnsureFile(ctx, key, path)
		var other *s3obj.OtherContentError
		if errors.As(err, &other) {
			return fmt.Errorf("%w: %v", ErrPoolBlob, err)
		}
		return err
	}
	_, err := s.B.EnsureFile(ctx, key, path)
	var other *s3obj.OtherContentError
	if errors.As(err, &other) {
		return fmt.Errorf("%w: %v (from %s): another publisher of this version is at work, or a publish was killed; remove the release's folder and publish again", ErrClaimed, err, path)
	}
	return err
}

// WritePage puts page at catalog/NAME of the store, as text/html.
func (s *S3Store) WritePage(ctx context.Context, name string, page []byte) error {
	return s.B.PutAs(ctx, "catalog/"+name, page, "text/html; charset=utf-8")
}

// ReadManifest reads a published manifest and checks it is the one the
// signed catalog names.
func (s *S3Store) ReadManifest(ctx context.Context, family, version string) (*manifest.Manifest, error) {
	c, err := s.Read(ctx)
	if err != nil {
		return nil, err
	}
	rel, err := c.mustFind(family, version, s.Path())
	if err != nil {
		return nil, err
	}
	return s.readManifest(ctx, rel, family, version)
}

func (s *S3Store) readManifest(ctx context.Context, rel *Release, family, version string) (*manifest.Manifest, error) {
	prefix := s.B.URL("")
	fetch := func(u string) ([]byte, error) {
		data, _, err := s.B.Get(ctx, strings.TrimPrefix(u, prefix))
		return data, err
	}
	return readPublished(fetch, s.B.URL("images/"+family+"-"+version+"/"+manifest.FileName), s.Keys, rel, s.Path(), family, version)
}

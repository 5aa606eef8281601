// Package gitcache keeps bare repositories of module remotes and reads
// pins and trees out of them.
//
// Each remote URL gets one bare repository under the cache directory. A
// remote on this machine (file:// or a path) is mirrored whole, by copying
// its objects. A network remote is fetched only as deep as the pins need:
// one ref advertisement (ls-remote) resolves tags and branches, and each
// pinned commit is fetched one commit deep by its SHA (protocol v2), by its
// tag or branch where the server refuses SHAs, and with the whole history
// only when nothing else finds it (a short SHA, a commit no ref names).
// Tags and commits already in the cache need no network.
//
// A repository is used under an exclusive flock on a file beside it, so
// several imagebake processes can share one cache: they take turns per
// repository and all succeed. A new repository is made in a temporary
// directory and renamed into place; git writes packs to temporary files
// and renames them, so a killed fetch leaves a cache the next run uses.
package gitcache

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
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/internal/gitarg"
)

// ErrRefNotFound marks a tag, branch or commit that the repository does not have.
var ErrRefNotFound = fmt.Errorf("ref %w", failure.ErrNotFound)

// Cache is a directory of bare repositories.
type Cache struct {
	dir    string
	stall  time.Duration
	remaps []Remap
}

// Open returns the cache rooted at dir, creating it. A git command that
// shows no progress for stall is stopped (0: DefaultStall).
func Open(dir string, stall ...time.Duration) (*Cache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "git"), 0o755); err != nil {
		return nil, fmt.Errorf("creating git cache in %s (--cache, IMAGEBAKE_CACHE): %w", dir, err)
	}
	c := &Cache{dir: dir, stall: DefaultStall}
	if len(stall) > 0 && stall[0] > 0 {
		c.stall = stall[0]
	}
	return c, nil
}

var unsafeRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// key names the repository of url (its shown form: no credential in a
// directory name): readable, and unique through a hash.
func key(url string) string {
	sum := sha256.Sum256([]byte(url))
	base := unsafeRE.ReplaceAllString(strings.TrimSuffix(filepath.Base(strings.TrimRight(url, "/")), ".git"), "_")
	if len(base) > 40 {
		base = base[:40]
	}
	return base + "-" + hex.EncodeToString(sum[:6]) + ".git"
}

// Mirror is one locked repository. Close releases it.
type Mirror struct {
	URL     string // as shown: no credential
	remote  remote
	local   string // the git dir of a remote on this machine, or ""
	path    string
	root    string // where the repository is now: path, or a temporary dir while it is made
	lock    *os.File
	repo    *git.Repository
	st      *filesystem.Storage // repo's storage: it keeps its pack files open
	stall   time.Duration
	movedTo string            // where a remapped remote is fetched from ("": not remapped)
	fetched bool              // every branch and tag was fetched
	refs    map[string]string // the remote's advertisement, once listed
	seen    map[string]string // refs fetched by name: where the remote has them now
}

// Mirror opens (creating if need be) and locks the repository of url. The
// repository of a remote on this machine is filled at once; that of a
// network remote starts empty.
func (c *Cache) Mirror(ctx context.Context, url string) (*Mirror, error) {
	if err := gitarg.Remote(url); err != nil {
		return nil, fmt.Errorf("git remote %q %v: %w", Redact(url), err, failure.ErrUsage)
	}
	rem := splitRemote(url)
	p := filepath.Join(c.dir, "git", key(rem.shown))
	from, movedTo := url, c.remapped(url)
	if movedTo != "" {
		if err := gitarg.Remote(movedTo); err != nil {
			return nil, fmt.Errorf("git remote %q (--remap of %s) %v: %w", Redact(movedTo), Redact(url), err, failure.ErrUsage)
		}
		from = movedTo
	}
	lf, err := flock.LockContext(ctx, p+".lock")
	if err != nil {
		return nil, fmt.Errorf("locking cache of %s at %s: %w", rem.shown, p, err)
	}
	m := &Mirror{URL: rem.shown, remote: splitRemote(from), local: localRepo(from), path: p, root: p, lock: lf, stall: c.stall}
	if movedTo != "" {
		m.movedTo = splitRemote(movedTo).shown
	}
	if _, err := os.Stat(filepath.Join(p, "objects")); err == nil {
		if err := clearStale(p); err != nil {
			m.Close()
			return nil, fmt.Errorf("cleaning cache of %s at %s: %w", m.URL, p, err)
		}
		if err := m.open(); err != nil {
			m.Close()
			return nil, fmt.Errorf("opening cache of %s at %s: %w (remove it to fetch afresh)", m.URL, p, err)
		}
		return m, nil
	}
	if err := m.create(ctx); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// clearStale removes what a killed git (or copy) left in the repository
// at p: its lock files (shallow.lock, packed-refs.lock, refs/**.lock) and
// temporary packs. The caller holds the repository's flock, so no git works in it.
func clearStale(p string) error {
	for _, f := range []string{"shallow.lock", "packed-refs.lock", "config.lock", "HEAD.lock", "FETCH_HEAD.lock"} {
		if err := os.Remove(filepath.Join(p, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	tmp, _ := filepath.Glob(filepath.Join(p, "objects", "pack", "tmp_*"))
	copies, _ := filepath.Glob(filepath.Join(p, "objects", "pack", ".pack-*.tmp-*")) // atomicfile.Copy's
	for _, f := range append(tmp, copies...) {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	return filepath.WalkDir(filepath.Join(p, "refs"), func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(q, ".lock") {
			return os.Remove(q)
		}
		return nil
	})
}

// open (re)reads the repository at root. go-git lists pack files once per
// repository value, so it is reopened after git adds some. Objects are
// cached in a small LRU and large blobs are streamed, never held whole.
// Pack files stay open until the next open or Close: without that, go-git
// opens the pack again for every object read (a tenth of a fresh install).
func (m *Mirror) open() error {
	if err := m.release(); err != nil {
		return err
	}
	st := filesystem.NewStorageWithOptions(osfs.New(m.root), cache.NewObjectLRU(8*cache.MiByte),
		filesystem.Options{LargeObjectThreshold: 1 << 20, KeepDescriptors: true})
	repo, err := git.Open(st, nil)
	if err != nil {
		return errors.Join(err, st.Close())
	}
	m.repo, m.st = repo, st
	return nil
}

// release closes the pack files the repository keeps open.
func (m *Mirror) release() error {
	if m.st == nil {
		return nil
	}
	err := m.st.Close()
	m.repo, m.st = nil, nil
	return err
}

func (m *Mirror) create(ctx context.Context) error {
	tmp, err := os.MkdirTemp(filepath.Dir(m.path), filepath.Base(m.path)+".tmp-")
	if err != nil {
		return fmt.Errorf("creating cache of %s: %w", m.URL, err)
	}
	if _, err := git.PlainInit(tmp, true); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("creating cache of %s: %w", m.URL, err)
	}
	m.root = tmp
	if err := m.open(); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("creating cache of %s: %w", m.URL, err)
	}
	if m.local != "" {
		if err := m.Fetch(ctx); err != nil {
			os.RemoveAll(tmp)
			return err
		}
	}
	m.root = m.path
	if err := m.release(); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("creating cache of %s: %w", m.URL, err)
	}
	if err := os.Rename(tmp, m.path); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("creating cache of %s: %w", m.URL, err)
	}
	if err := m.open(); err != nil { // go-git keeps file handles by path
		return fmt.Errorf("opening cache of %s: %w", m.URL, err)
	}
	return nil
}

// Close releases the mirror's open pack files and its lock.
func (m *Mirror) Close() error {
	err := m.release()
	if m.lock == nil {
		return err
	}
	err = errors.Join(err, m.lock.Close()) // closing drops the flock
	m.lock = nil
	return err
}

// Fetched says whether this Mirror fetched every branch and tag.
func (m *Mirror) Fetched() bool { return m.fetched }

// Fetch brings every branch and tag of the remote, with their history,
// into the repository. Branches and tags deleted upstream are pruned; their
// commits stay, so a lock that names them can still be built.
func (m *Mirror) Fetch(ctx context.Context) error {
	var err error
	if m.local != "" {
		err = m.localFetch(m.local, m.root)
	} else if err = m.fetchAll(ctx); err == nil {
		err = m.open()
	}
	if err != nil {
		return err
	}
	m.fetched = true
	return nil
}

// Pin resolves a ref of refType ("tag", "branch", "commit" or "ref": tag,
// then branch, then commit) against the remote, with one ref
// advertisement, and makes sure its commit is in the repository. It does
// not look in the repository first: callers that take tags and commits from
// the cache (as r10k does) try Resolve before.
func (m *Mirror) Pin(ctx context.Context, refType, ref string) (string, error) {
	if m.local != "" {
		if !m.fetched {
			if err := m.Fetch(ctx); err != nil {
				return "", err
			}
		}
		return m.Resolve(refType, ref)
	}
	if err := gitarg.Ref(ref); err != nil {
		return "", fmt.Errorf("%s %q for %s %v: %w", refType, ref, m.URL, err, failure.ErrUsage)
	}
	switch refType {
	case "tag", "branch":
		// one command: the advertisement and the commit, one deep
		name := "refs/tags/" + ref
		if refType == "branch" {
			name = "refs/heads/" + ref
		}
		sha, err := m.FetchRef(ctx, name)
		if errors.Is(err, ErrRefNotFound) {
			_, _ = m.RemoteRefs(ctx) // for the nearest names in the message
			return "", fmt.Errorf("%w: no %s %q in %s", ErrRefNotFound, refType, ref, m.URL)
		}
		return sha, err
	case "ref", "commit":
	default:
		return "", fmt.Errorf("unknown ref type %q", refType)
	}
	if refType == "ref" {
		refs, err := m.RemoteRefs(ctx)
		if err != nil {
			return "", err
		}
		for _, n := range []string{"refs/tags/" + ref, "refs/heads/" + ref} {
			if sha, ok := refs[n]; ok {
				if err := m.Ensure(ctx, sha, n); err != nil {
					return "", err
				}
				return sha, m.setRef(n, sha)
			}
		}
	}
	if !hexRE.MatchString(ref) {
		return "", fmt.Errorf("%w: no tag, branch or commit %q in %s", ErrRefNotFound, ref, m.URL)
	}
	if len(ref) == 40 {
		if err := m.Ensure(ctx, ref, ""); err != nil {
			return "", err
		}
		return ref, nil
	}
	// a short SHA: only the whole history can say what it names
	if !m.fetched {
		if err := m.Fetch(ctx); err != nil {
			return "", err
		}
	}
	return m.commit(ref)
}

// Ensure makes sure commit sha is in the repository: fetched one commit
// deep by its SHA, else by fallback (a tag or branch that named it, when
// the server refuses SHAs; "" for none), else with every branch and tag.
// Where the remote has fallback now is then known to Advertised.
func (m *Mirror) Ensure(ctx context.Context, sha, fallback string) error {
	if m.HasCommit(sha) {
		return nil
	}
	if m.local != "" {
		if !m.fetched {
			if err := m.Fetch(ctx); err != nil {
				return err
			}
		}
	} else {
		err := m.fetchShallow(ctx, "+"+sha+":refs/imagebake/pins/"+sha)
		if errors.Is(err, errWantRefused) && fallback != "" {
			_, err = m.FetchRef(ctx, fallback)
			if errors.Is(err, ErrRefNotFound) {
				err = errWantRefused
			}
		}
		if err != nil && !errors.Is(err, errWantRefused) {
			return err
		}
		if oerr := m.open(); oerr != nil {
			return oerr
		}
		if !m.HasCommit(sha) && !m.fetched {
			if err := m.Fetch(ctx); err != nil {
				return err
			}
		}
	}
	if !m.HasCommit(sha) {
		if m.movedTo != "" {
			return fmt.Errorf("%w: %s, where --remap moves %s, has no commit %s (the pin): not the same repository", failure.ErrVerify, m.movedTo, m.URL, sha)
		}
		return fmt.Errorf("%w: no commit %s in %s", ErrRefNotFound, sha, m.URL)
	}
	return nil
}

// FetchRef fetches the branch or tag name ("refs/tags/v1") one commit deep
// into the same name in the repository, and returns its commit.
func (m *Mirror) FetchRef(ctx context.Context, name string) (string, error) {
	if err := gitarg.Ref(name); err != nil {
		return "", fmt.Errorf("ref %q for %s %v: %w", name, m.URL, err, failure.ErrUsage)
	}
	if !strings.HasPrefix(name, "refs/") {
		return "", fmt.Errorf("ref %q for %s is not a full ref name (refs/...): %w", name, m.URL, failure.ErrUsage)
	}
	if m.local != "" {
		if !m.fetched {
			if err := m.Fetch(ctx); err != nil {
				return "", err
			}
		}
	} else {
		if err := m.fetchShallow(ctx, "+"+name+":"+name); err != nil {
			return "", err
		}
		if err := m.open(); err != nil {
			return "", err
		}
	}
	r, err := m.repo.Reference(plumbing.ReferenceName(name), true)
	if err != nil {
		return "", fmt.Errorf("%w: no %s in %s", ErrRefNotFound, name, m.URL)
	}
	sha := m.peeled(r.Hash())
	if m.seen == nil {
		m.seen = map[string]string{}
	}
	m.seen[name] = sha
	return sha, nil
}

func (m *Mirror) setRef(name, sha string) error {
	if name == "" {
		return nil
	}
	r, err := m.repo.Reference(plumbing.ReferenceName(name), true)
	if err == nil && (r.Hash().String() == sha || m.peeled(r.Hash()) == sha) {
		return nil
	}
	return m.repo.Storer.SetReference(plumbing.NewHashReference(plumbing.ReferenceName(name), plumbing.NewHash(sha)))
}

// peeled follows tag objects from h to what they tag.
func (m *Mirror) peeled(h plumbing.Hash) string {
	for range 10 {
		tag, err := m.repo.TagObject(h)
		if err != nil {
			break
		}
		h = tag.Target
	}
	return h.String()
}

// Advertised resolves ref of refType where the remote has it now, once
// RemoteRefs has listed it, or FetchRef or Ensure has fetched it by name.
func (m *Mirror) Advertised(refType, ref string) (string, bool) {
	for _, n := range map[string][]string{"tag": {"refs/tags/" + ref}, "branch": {"refs/heads/" + ref}, "ref": {"refs/tags/" + ref, "refs/heads/" + ref}}[refType] {
		if sha, ok := m.seen[n]; ok {
			return sha, true
		}
		if sha, ok := m.refs[n]; ok {
			return sha, true
		}
	}
	return "", false
}

// RemoteRefs lists the remote's branches and tags (ls-remote), with tags
// peeled to their commits: "refs/heads/main" -> sha, "refs/tags/v1" -> sha.
// The list is read once per Mirror.
func (m *Mirror) RemoteRefs(ctx context.Context) (map[string]string, error) {
	if m.refs != nil {
		return m.refs, nil
	}
	var err error
	if m.local != "" {
		m.refs, err = m.localRemoteRefs(m.local)
	} else {
		m.refs, err = m.lsRemote(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", m.URL, err)
	}
	return m.refs, nil
}

// HasCommit says whether the mirror holds commit sha.
func (m *Mirror) HasCommit(sha string) bool {
	_, err := m.repo.CommitObject(plumbing.NewHash(sha))
	return err == nil
}

// Resolve finds, in the mirror only, the commit that a ref of refType names.
// refType is "tag", "branch", "commit" or "ref" (tag, then branch, then
// commit, as git rev-parse tries them). Tags are peeled through any number
// of annotated tag objects.
func (m *Mirror) Resolve(refType, ref string) (string, error) {
	switch refType {
	case "tag":
		return m.peel(plumbing.NewTagReferenceName(ref), "tag", ref)
	case "branch":
		return m.peel(plumbing.NewBranchReferenceName(ref), "branch", ref)
	case "commit":
		return m.commit(ref)
	case "ref":
		if sha, err := m.peel(plumbing.NewTagReferenceName(ref), "tag", ref); err == nil {
			return sha, nil
		}
		if sha, err := m.peel(plumbing.NewBranchReferenceName(ref), "branch", ref); err == nil {
			return sha, nil
		}
		if sha, err := m.commit(ref); err == nil {
			return sha, nil
		}
		return "", fmt.Errorf("%w: no tag, branch or commit %q in %s", ErrRefNotFound, ref, m.URL)
	}
	return "", fmt.Errorf("unknown ref type %q", refType)
}

func (m *Mirror) peel(name plumbing.ReferenceName, what, ref string) (string, error) {
	r, err := m.repo.Reference(name, true)
	if err != nil {
		return "", fmt.Errorf("%w: no %s %q in %s", ErrRefNotFound, what, ref, m.URL)
	}
	h := plumbing.NewHash(m.peeled(r.Hash()))
	if _, err := m.repo.CommitObject(h); err != nil {
		return "", fmt.Errorf("%s %q in %s does not point at a commit (%s)", what, ref, m.URL, h)
	}
	return h.String(), nil
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{4,40}$`)

func (m *Mirror) commit(ref string) (string, error) {
	if !hexRE.MatchString(ref) {
		return "", fmt.Errorf("%w: %q is not a commit SHA", ErrRefNotFound, ref)
	}
	if len(ref) == 40 {
		if m.HasCommit(ref) {
			return ref, nil
		}
		return "", fmt.Errorf("%w: no commit %s in %s", ErrRefNotFound, ref, m.URL)
	}
	h, err := m.repo.ResolveRevision(plumbing.Revision(ref))
	if err != nil {
		return "", fmt.Errorf("%w: no commit %s in %s", ErrRefNotFound, ref, m.URL)
	}
	if _, err := m.repo.CommitObject(*h); err != nil {
		return "", fmt.Errorf("%w: %s in %s is not a commit", ErrRefNotFound, ref, m.URL)
	}
	return h.String(), nil
}

// Tags lists the tag names, sorted, for "nearest" hints: the remote's
// when they were listed, else the repository's.
func (m *Mirror) Tags() []string { return m.names("refs/tags/", m.repo.Tags) }

// Branches lists the branch names, sorted, for "nearest" hints.
func (m *Mirror) Branches() []string { return m.names("refs/heads/", m.repo.Branches) }

func (m *Mirror) names(prefix string, local func() (storer.ReferenceIter, error)) []string {
	if m.refs == nil {
		return shortNames(local())
	}
	var out []string
	for n := range m.refs {
		if s, ok := strings.CutPrefix(n, prefix); ok {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func shortNames(it storer.ReferenceIter, err error) []string {
	if err != nil {
		return nil
	}
	var out []string
	_ = it.ForEach(func(r *plumbing.Reference) error {
		out = append(out, r.Name().Short())
		return nil
	})
	sort.Strings(out)
	return out
}

// CommitTime is the committer time of commit sha.
func (m *Mirror) CommitTime(sha string) (time.Time, error) {
	c, err := m.repo.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		return time.Time{}, fmt.Errorf("reading commit %s of %s: %w", sha, m.URL, err)
	}
	return c.Committer.When, nil
}

// Tree returns the root tree of commit sha.
func (m *Mirror) Tree(sha string) (*object.Tree, error) {
	c, err := m.repo.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		return nil, fmt.Errorf("reading commit %s of %s: %w", sha, m.URL, err)
	}
	// the object go-git read under this id must hash to it (go-git names
	// an object read through a pack index by its content's hash)
	if err := VerifyObject(m.repo.Storer, plumbing.NewHash(sha)); err != nil {
		return nil, fmt.Errorf("reading commit %s of %s: %w", sha, m.URL, err)
	}
	if err := VerifyObject(m.repo.Storer, c.TreeHash); err != nil {
		return nil, fmt.Errorf("reading the tree of commit %s of %s: %w", sha, m.URL, err)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("reading tree of %s in %s: %w", sha, m.URL, err)
	}
	return t, nil
}

// MaxReadFile bounds a file ReadFile returns (imagebake.toml, a
// Puppetfile, a lock, a module's metadata.json: all small).
const MaxReadFile = 64 << 20

// ReadFile returns the content of file name (a slash path) at commit sha;
// ok is false when the commit has no such file.
func (m *Mirror) ReadFile(sha, name string) ([]byte, bool, error) {
	t, err := m.Tree(sha)
	if err != nil {
		return nil, false, err
	}
	f, err := t.File(name)
	if errors.Is(err, object.ErrFileNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s at %s in %s: %w", name, sha, m.URL, err)
	}
	if f.Size > MaxReadFile {
		return nil, false, fmt.Errorf("%s at %s in %s is %d MiB, more than the %d MiB a file read from a commit may have", name, sha, m.URL, f.Size>>20, MaxReadFile>>20)
	}
	s, err := f.Contents()
	if err != nil {
		return nil, false, fmt.Errorf("reading %s at %s in %s: %w", name, sha, m.URL, err)
	}
	return []byte(s), true, nil
}

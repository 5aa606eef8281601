// Package gitcache keeps bare mirrors of module repositories and reads pins
// and trees out of them.
//
// Each remote URL gets one bare repository under the cache directory,
// fetched with go-git (all branches and tags, forced, pruned). A mirror is
// used under an exclusive flock on a file beside it, so several imagebake
// processes can share one cache: they take turns per repository and all
// succeed. A new mirror is fetched into a temporary directory and renamed
// into place, so a killed fetch never leaves a half-made mirror behind.
package gitcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
)

// ErrRefNotFound marks a tag, branch or commit that the repository does not have.
var ErrRefNotFound = fmt.Errorf("ref %w", failure.ErrNotFound)

// Cache is a directory of bare mirrors.
type Cache struct {
	dir string
}

// Open returns the cache rooted at dir, creating it.
func Open(dir string) (*Cache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "git"), 0o755); err != nil {
		return nil, fmt.Errorf("creating git cache: %w", err)
	}
	return &Cache{dir: dir}, nil
}

var unsafeRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// key names the mirror of url: readable, and unique through a hash.
func key(url string) string {
	sum := sha256.Sum256([]byte(url))
	base := unsafeRE.ReplaceAllString(strings.TrimSuffix(filepath.Base(strings.TrimRight(url, "/")), ".git"), "_")
	if len(base) > 40 {
		base = base[:40]
	}
	return base + "-" + hex.EncodeToString(sum[:6]) + ".git"
}

// Mirror is one locked mirror. Close releases it.
type Mirror struct {
	URL     string
	path    string
	root    string // where the repository is now: path, or a temporary dir while it is made
	lock    *os.File
	repo    *git.Repository
	fetched bool
}

// Mirror opens (creating if need be) and locks the mirror of url. A new
// mirror is fetched at once.
func (c *Cache) Mirror(ctx context.Context, url string) (*Mirror, error) {
	p := filepath.Join(c.dir, "git", key(url))
	lf, err := flock.LockContext(ctx, p+".lock")
	if err != nil {
		return nil, fmt.Errorf("locking mirror of %s at %s: %w", url, p, err)
	}
	m := &Mirror{URL: url, path: p, root: p, lock: lf}
	repo, err := git.PlainOpen(p)
	switch {
	case err == nil:
		m.repo = repo
		return m, nil
	case errors.Is(err, git.ErrRepositoryNotExists):
		if err := m.create(ctx); err != nil {
			m.Close()
			return nil, err
		}
		return m, nil
	default:
		m.Close()
		return nil, fmt.Errorf("opening mirror of %s at %s: %w (remove it to fetch afresh)", url, p, err)
	}
}

func (m *Mirror) create(ctx context.Context) error {
	tmp, err := os.MkdirTemp(filepath.Dir(m.path), filepath.Base(m.path)+".tmp-")
	if err != nil {
		return fmt.Errorf("creating mirror of %s: %w", m.URL, err)
	}
	repo, err := git.PlainInit(tmp, true)
	if err == nil {
		_, err = repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{m.URL}})
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("creating mirror of %s: %w", m.URL, err)
	}
	m.repo, m.root = repo, tmp
	if err := m.Fetch(ctx); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	m.root = m.path
	if err := os.Rename(tmp, m.path); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("creating mirror of %s: %w", m.URL, err)
	}
	// go-git keeps file handles by path; reopen at the final place.
	if m.repo, err = git.PlainOpen(m.path); err != nil {
		return fmt.Errorf("opening mirror of %s: %w", m.URL, err)
	}
	return nil
}

// Close releases the mirror's lock.
func (m *Mirror) Close() error {
	if m.lock == nil {
		return nil
	}
	err := m.lock.Close() // closing drops the flock
	m.lock = nil
	return err
}

// Fetched says whether this Mirror fetched from the remote.
func (m *Mirror) Fetched() bool { return m.fetched }

var refSpecs = []config.RefSpec{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}

// Fetch brings every branch and tag of the remote into the mirror. Branches
// and tags deleted upstream are pruned; their commits stay in the mirror, so
// a lock that names them can still be built.
func (m *Mirror) Fetch(ctx context.Context) error {
	if src := localRepo(m.URL); src != "" {
		if err := m.localFetch(src, m.root); err != nil {
			return err
		}
		m.fetched = true
		return nil
	}
	err := m.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   refSpecs,
		Tags:       git.NoTags,
		Force:      true,
		Prune:      true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		if errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return fmt.Errorf("fetching %s: the repository is empty: %w", m.URL, failure.ErrNotFound)
		}
		if errors.Is(err, transport.ErrRepositoryNotFound) {
			return fmt.Errorf("fetching %s: no repository there: %w", m.URL, failure.ErrNotFound)
		}
		return fmt.Errorf("fetching %s: %w", m.URL, err)
	}
	m.fetched = true
	return nil
}

// RemoteRefs lists the remote's branches and tags (ls-remote), with tags
// peeled to their commits: "refs/heads/main" -> sha, "refs/tags/v1" -> sha.
func (m *Mirror) RemoteRefs(ctx context.Context) (map[string]string, error) {
	if src := localRepo(m.URL); src != "" {
		return m.localRemoteRefs(src)
	}
	rem, err := m.repo.Remote("origin")
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", m.URL, err)
	}
	refs, err := rem.ListContext(ctx, &git.ListOptions{PeelingOption: git.AppendPeeled})
	if err != nil {
		if errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return map[string]string{}, nil
		}
		return nil, fmt.Errorf("listing %s: %w", m.URL, err)
	}
	out := map[string]string{}
	for _, r := range refs {
		name := r.Name().String()
		if r.Type() != plumbing.HashReference {
			continue
		}
		if base, ok := strings.CutSuffix(name, "^{}"); ok {
			out[base] = r.Hash().String() // the peeled commit wins over the tag object
			continue
		}
		if _, ok := out[name]; !ok {
			out[name] = r.Hash().String()
		}
	}
	return out, nil
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
	h := r.Hash()
	for range 10 {
		tag, err := m.repo.TagObject(h)
		if err != nil {
			break // not a tag object: a commit (or something else, checked below)
		}
		h = tag.Target
	}
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

// Tags lists the mirror's tag names, sorted, for "nearest" hints.
func (m *Mirror) Tags() []string { return shortNames(m.repo.Tags()) }

// Branches lists the mirror's branch names, sorted, for "nearest" hints.
func (m *Mirror) Branches() []string { return shortNames(m.repo.Branches()) }

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
	t, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("reading tree of %s in %s: %w", sha, m.URL, err)
	}
	return t, nil
}

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
	s, err := f.Contents()
	if err != nil {
		return nil, false, fmt.Errorf("reading %s at %s in %s: %w", name, sha, m.URL, err)
	}
	return []byte(s), true, nil
}

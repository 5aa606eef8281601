package puppet

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/imagebake/imagebake/internal/nearest"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/gitcache"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/puppet/forge"
	"github.com/imagebake/imagebake/puppet/metadata"
	"github.com/imagebake/imagebake/puppet/puppetfile"
)

// resolver resolves Puppetfile modules to pins.
type resolver struct {
	c        *config
	pf       *puppetfile.Puppetfile
	cache    *gitcache.Cache
	forge    *forge.Client
	forgeURL string
}

func newResolver(c *config, pf *puppetfile.Puppetfile) (*resolver, error) {
	if c.cacheDir == "" {
		return nil, errors.New("no cache directory configured")
	}
	gc, err := gitcache.Open(c.cacheDir, c.stall)
	if err == nil {
		gc.SetRemaps(c.remaps)
	}
	if err != nil {
		return nil, err
	}
	u := c.forge(pf)
	return &resolver{c: c, pf: pf, cache: gc, forge: forge.New(u, forge.WithHTTPClient(c.http)), forgeURL: u}, nil
}

func (r *resolver) forgeCache() string { return filepath.Join(r.c.cacheDir, "forge") }

// resolve pins one module. With refresh, git remotes are always fetched;
// without, tags and commits already in the mirror are taken from it (as
// r10k does) and only branches are fetched.
func (r *resolver) resolve(ctx context.Context, m puppetfile.Module, refresh bool) (lockfile.Module, error) {
	e, _, _, err := r.resolveMeta(ctx, m, refresh, false)
	return e, err
}

// resolveMeta is resolve that, with meta, also reads a git module's
// metadata.json at the pinned commit from the mirror it has open (a note
// instead when there is none or it does not parse).
func (r *resolver) resolveMeta(ctx context.Context, m puppetfile.Module, refresh, meta bool) (lockfile.Module, *metadata.Metadata, string, error) {
	e := entry(r.pf, m, r.forgeURL)
	switch m.Kind {
	case puppetfile.Local:
		return e, nil, "", nil
	case puppetfile.Forge:
		var rel forge.Release
		var err error
		if m.Version == "" {
			rel, err = r.forge.Latest(ctx, m.ForgeSlug())
		} else {
			rel, err = r.forge.Release(ctx, m.ForgeSlug(), m.Version)
		}
		if err != nil {
			return e, nil, "", fmt.Errorf("%s: %w", m.Pos, err)
		}
		e.Version, e.URL, e.SHA256 = rel.Version, rel.URL, rel.SHA256
		return e, nil, "", nil
	}
	mir, err := r.cache.Mirror(ctx, m.Source)
	if err != nil {
		return e, nil, "", fmt.Errorf("%s: module %q: %w", m.Pos, m.Name, err)
	}
	defer mir.Close()
	sha, err := r.resolveGit(ctx, mir, m, refresh)
	if err != nil {
		return e, nil, "", err
	}
	e.Commit = sha
	if !meta {
		return e, nil, "", nil
	}
	md, note := gitMetadata(mir, m, sha)
	if md != nil {
		e.ModuleName, e.ModuleVersion = metadata.Slug(md.Name), md.Version
	}
	return e, md, note, nil
}

// gitMetadata reads metadata.json of module m at commit sha from its
// mirror; a module without one (or with one that does not parse) gets a
// note instead.
func gitMetadata(mir *gitcache.Mirror, m puppetfile.Module, sha string) (*metadata.Metadata, string) {
	b, ok, err := mir.ReadFile(sha, metadata.FileName)
	switch {
	case err != nil:
		return nil, fmt.Sprintf("%s: module %q: reading %s at %s: %v", m.Pos, m.Name, metadata.FileName, sha[:12], err)
	case !ok:
		return nil, fmt.Sprintf("%s: module %q has no %s: its version and dependencies are not known", m.Pos, m.Name, metadata.FileName)
	}
	md, err := metadata.Parse(fmt.Sprintf("%s@%s:%s", mir.URL, sha[:12], metadata.FileName), b)
	if err != nil {
		return nil, fmt.Sprintf("%s: module %q: %v", m.Pos, m.Name, err)
	}
	return md, ""
}

func (r *resolver) refOf(m puppetfile.Module) (string, error) {
	if m.Ref != puppetfile.ControlBranch {
		return m.Ref, nil
	}
	switch {
	case r.c.controlBranch != "":
		r.c.logf("module %q: :control_branch is branch %q (the control branch)\n", m.Name, r.c.controlBranch)
		return r.c.controlBranch, nil
	case m.DefaultBranch != "":
		r.c.logf("module %q: :control_branch is branch %q (no control branch is known: its :default_branch)\n", m.Name, m.DefaultBranch)
		return m.DefaultBranch, nil
	}
	return "", fmt.Errorf("%s: module %q: :branch => :control_branch, but no control branch is known and :default_branch is not set: %w", m.Pos, m.Name, failure.ErrUsage)
}

func (r *resolver) resolveGit(ctx context.Context, mir *gitcache.Mirror, m puppetfile.Module, refresh bool) (string, error) {
	ref, err := r.refOf(m)
	if err != nil {
		return "", err
	}
	rt := string(m.RefType)
	// r10k takes tags and full commits from its cache without asking the
	// remote; branches (and anything with refresh) are asked for
	if !refresh && m.RefType != puppetfile.Branch && r.immutableLocally(mir, ref) {
		if sha, err := mir.Resolve(rt, ref); err == nil {
			return sha, nil
		}
	}
	sha, err := mir.Pin(ctx, rt, ref)
	if err != nil && errors.Is(err, gitcache.ErrRefNotFound) && m.DefaultBranch != "" && m.RefType == puppetfile.Branch {
		// r10k falls back to :default_branch when the branch does not exist
		if s, derr := mir.Pin(ctx, "branch", m.DefaultBranch); derr == nil {
			r.c.logf("module %q: branch %q not in %s, using default_branch %q\n", m.Name, ref, mir.URL, m.DefaultBranch)
			return s, nil
		}
	}
	if err != nil {
		hint := ""
		if errors.Is(err, gitcache.ErrRefNotFound) && (m.RefType == puppetfile.Tag || m.RefType == puppetfile.Ref) {
			if near := nearest.Names(ref, mir.Tags(), 5); len(near) > 0 {
				hint = "; nearest tags: " + strings.Join(near, ", ")
			} else {
				hint = "; the repository has no tags"
			}
		}
		return "", fmt.Errorf("%s: module %q: %s %q: %w%s", m.Pos, m.Name, m.RefType, ref, err, hint)
	}
	return sha, nil
}

// immutableLocally says whether ref resolves in the mirror as a tag or a
// full commit SHA, which r10k treats as fixed and never refetches.
func (r *resolver) immutableLocally(mir *gitcache.Mirror, ref string) bool {
	if _, err := mir.Resolve("tag", ref); err == nil {
		return true
	}
	return len(ref) == 40 && mir.HasCommit(ref) // HasCommit is false for what is not hex
}

package bake

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/gitcache"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/puppet"
	"github.com/imagebake/imagebake/puppet/metadata"
)

// staged is a release's staged payload, laid out as it is inside the
// images: the environment (the control repo with its modules) shared by
// every arch, and per arch a tree holding opt/NAME/tools and
// etc/imagebake/release.toml.
type staged struct {
	Env    string            // goes to Config.Environment
	Arches map[string]string // arch -> root of its agent tree
	// AgentFiles are the agent archives staged, by arch: fetched and
	// checked once, then read by the layers and the sources
	AgentFiles map[string]string
	// Metadata is each module's metadata.json, by module name: what the
	// modules say they are, for the manifest and the base's Puppet
	Metadata map[string]*metadata.Metadata
	// GoBuild is each arch's agent's Go build information (nil: not Go)
	GoBuild map[string]*manifest.GoBuild
}

// stagePayload writes the payload of every image of in under dir (made if
// missing): dir/env and dir/arch-ARCH.
func stagePayload(ctx context.Context, in *Inputs, dir string, o Options) (*staged, error) {
	p := &staged{Env: filepath.Join(dir, "env"), Arches: map[string]string{}, AgentFiles: map[string]string{}, GoBuild: map[string]*manifest.GoBuild{}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var err error
	if p.Metadata, err = stageEnvironment(ctx, in, p.Env, o); err != nil {
		return nil, err
	}
	for _, im := range in.Manifest.Images {
		d := filepath.Join(dir, "arch-"+im.Arch)
		a, err := stageAgents(ctx, in, im.Arch, d, o)
		if err != nil {
			return nil, err
		}
		p.Arches[im.Arch] = d
		if a.File != "" {
			p.AgentFiles[im.Arch] = a.File
			p.GoBuild[im.Arch] = goBuildOf(a.Binary)
		}
	}
	return p, nil
}

// stageEnvironment writes the control repo tree at the release commit into
// env (which must not exist), with the modules materialised from the pins.
func stageEnvironment(ctx context.Context, in *Inputs, env string, o Options) (map[string]*metadata.Metadata, error) {
	gc, err := o.gitCache()
	if err != nil {
		return nil, err
	}
	mir, err := gc.Mirror(ctx, in.Manifest.Repo.URL)
	if err != nil {
		return nil, fmt.Errorf("control repo: %w", err)
	}
	var skip func(string, bool) bool
	if ex := in.Manifest.PayloadExclude; len(ex) > 0 {
		if err := keepsWhatPuppetReads(mir, in.Manifest.Repo.Commit, ex); err != nil {
			mir.Close()
			return nil, err
		}
		skip = func(p string, isDir bool) bool { return manifest.Excluded(ex, p, isDir) }
	}
	err = mir.WriteTree(ctx, in.Manifest.Repo.Commit, env, in.Epoch, skip)
	mir.Close() // before the modules: one of them may be this very repo
	if err != nil || in.Puppetfile == nil {
		return nil, err
	}
	moddir := filepath.Join(env, filepath.FromSlash(in.Lock.Moduledir))
	popts := append(puppetOptions(o, in.Epoch, in.forge), puppet.WithLockChecked())
	if in.Manifest.Puppetfile.IgnoreDependencies {
		popts = append(popts, puppet.WithoutDependencyCheck())
	}
	rep, err := puppet.Install(ctx, in.Puppetfile, in.Lock, env, moddir, popts...)
	if err != nil {
		return nil, err
	}
	return rep.Metadata, nil
}

// withModuleMetadata is mods with what each module's metadata.json says
// it is (its name and version), for the manifest and release levels: a
// new slice, mods unchanged.
func withModuleMetadata(mods []lockfile.Module, metas map[string]*metadata.Metadata) []lockfile.Module {
	out := append([]lockfile.Module(nil), mods...)
	for i := range out {
		if md := metas[out[i].Name]; md != nil {
			out[i].ModuleName, out[i].ModuleVersion = metadata.Slug(md.Name), md.Version
		}
	}
	return out
}

// keepsWhatPuppetReads refuses exclude patterns that leave out what
// Puppet reads from an environment: environment.conf and hiera.yaml when
// the control repo has them, and the manifests directory (or every file
// in it).
func keepsWhatPuppetReads(mir *gitcache.Mirror, commit string, globs []string) error {
	t, err := mir.Tree(commit)
	if err != nil {
		return err
	}
	var problems []string
	for _, f := range []string{"environment.conf", "hiera.yaml"} {
		if _, err := t.File(f); err == nil {
			if g := manifest.ExcludedBy(globs, f, false); g != "" {
				problems = append(problems, fmt.Sprintf("%q leaves out %s", g, f))
			}
		}
	}
	if mt, err := t.Tree("manifests"); err == nil {
		if g := manifest.ExcludedBy(globs, "manifests", true); g != "" {
			problems = append(problems, fmt.Sprintf("%q leaves out manifests/", g))
		} else {
			var kept bool
			var by string
			mt.Files().ForEach(func(f *object.File) error {
				if g := manifest.ExcludedBy(globs, "manifests/"+f.Name, false); g == "" {
					kept = true
				} else if by == "" {
					by = g
				}
				return nil
			})
			if !kept && by != "" {
				problems = append(problems, fmt.Sprintf("%q leaves out every file of manifests/", by))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: imagebake.toml [payload] exclude: %s, which Puppet reads from the environment; narrow the patterns (\"docs/*\", \"/README.md\")",
		failure.ErrUsage, strings.Join(problems, "; "))
}

// releaseFile is /etc/imagebake/release.toml inside an image.
type releaseFile struct {
	Family       string `toml:"family"`
	Release      string `toml:"release"`
	Arch         string `toml:"arch"`
	Name         string `toml:"name"`
	Tag          string `toml:"tag"`
	Commit       string `toml:"commit"`
	Agent        string `toml:"agent"`
	AgentVersion string `toml:"agent_version"`
	// ContentDigest is the image's content_digest in manifest.toml: what
	// it was made of, the same wherever the inputs were fetched from.
	ContentDigest string `toml:"content_digest"`
}

// stagedAgent is where one arch's agent binaries came from and are.
type stagedAgent struct {
	File   string // the archive, checked against its pin ("": none)
	Binary string // the agent's program, through the current link
}

// stageAgents lays out one arch's agent binaries (with the current link)
// and release.toml under dir, as they appear in the image. An image
// without agent binaries gets release.toml only (a zero stagedAgent).
func stageAgents(ctx context.Context, in *Inputs, arch, dir string, o Options) (stagedAgent, error) {
	s, ok := in.Agents[arch]
	if !ok {
		if !in.imageOf(arch).Agent.None() {
			return stagedAgent{}, fmt.Errorf("%s has no agent binaries selected for %s", in.Name(), arch)
		}
		return stagedAgent{}, writeReleaseFile(in, arch, dir, agents.Selection{})
	}
	file, err := agents.Fetch(ctx, s, o.Cache)
	if err != nil {
		return stagedAgent{}, err
	}
	tools := filepath.Join(dir, "opt", s.Name, "tools")
	if err := os.MkdirAll(tools, 0o755); err != nil {
		return stagedAgent{}, err
	}
	vdir := s.Version + "-" + arch
	if err := agents.Unpack(file, filepath.Join(tools, vdir), 0); err != nil {
		return stagedAgent{}, fmt.Errorf("agent binaries %s %s for %s: %w", s.Name, s.Version, s.Platform(), err)
	}
	if err := agents.CheckMachine(filepath.Join(tools, vdir), s.Name, arch); err != nil {
		return stagedAgent{}, fmt.Errorf("agent binaries %s %s for %s (%s in %s): %w", s.Name, s.Version, s.Platform(), s.Path, s.Source, err)
	}
	if err := os.Symlink(vdir, filepath.Join(tools, "current")); err != nil {
		return stagedAgent{}, err
	}
	return stagedAgent{File: file, Binary: filepath.Join(tools, "current", "bin", s.Name)}, writeReleaseFile(in, arch, dir, s)
}

// imageOf is in's image of arch (zero when it has none).
func (in *Inputs) imageOf(arch string) manifest.Image {
	for _, im := range in.Manifest.Images {
		if im.Arch == arch {
			return im
		}
	}
	return manifest.Image{}
}

// writeReleaseFile writes dir/etc/imagebake/release.toml: what the image
// of arch is, and its agent binaries s (none: empty names).
func writeReleaseFile(in *Inputs, arch, dir string, s agents.Selection) error {
	m := in.Manifest
	content := in.imageOf(arch).ContentDigest
	var buf bytes.Buffer
	buf.WriteString("# written by imagebake; see manifest.toml of the release\n")
	rf := releaseFile{Family: m.Family, Release: m.Release, Arch: arch, Name: in.Name() + "-" + arch, Tag: m.Repo.Tag,
		Commit: m.Repo.Commit, Agent: s.Name, AgentVersion: s.Version, ContentDigest: content}
	if err := toml.NewEncoder(&buf).Encode(rf); err != nil {
		return err
	}
	p := filepath.Join(dir, "etc", "imagebake", "release.toml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, buf.Bytes(), 0o644)
}

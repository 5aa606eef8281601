package bake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// ErrReleaseChanged marks a bake whose inputs differ from those of the
// same release already in --out: a release number names one content.
var ErrReleaseChanged = fmt.Errorf("release already baked from other inputs: %w", failure.ErrVerify)

// against compares the release being baked (in) with the one already in
// dir (old). It returns the arches of old that this bake does not build
// and that must be kept, and an error naming every changed input when the
// release would change (unless force).
//
// Every input the content digest covers is named when it changed; the
// agent binaries with the rule that chose them (agentRule, "" when the
// manifest gave them). A content change no named input explains is still
// a change, named by its digests: a release is never replaced unsaid.
func against(old, now *manifest.Manifest, agentRule string, force bool, logf func(string, ...any)) (keep []string, err error) {
	shared := sharedChanges(old, now)
	changes := append([]string(nil), shared...)
	byArch := map[string]manifest.Image{}
	for _, im := range old.Images {
		byArch[im.Arch] = im
	}
	baking := map[string]bool{}
	for _, im := range now.Images {
		baking[im.Arch] = true
		if o, ok := byArch[im.Arch]; ok && o.ContentDigest != im.ContentDigest {
			named := imageChanges(o, im, agentRule)
			if len(named) == 0 && len(shared) == 0 {
				named = []string{fmt.Sprintf("content of %s: %s -> %s (an input of another imagebake version)", im.Arch, o.ContentDigest, im.ContentDigest)}
			}
			changes = append(changes, named...)
		}
	}
	for _, im := range old.Images {
		if !baking[im.Arch] {
			keep = append(keep, im.Arch)
		}
	}
	if len(changes) == 0 {
		return keep, nil
	}
	if !force {
		return nil, fmt.Errorf("%w: %s %s was baked from other inputs; a release number names one content:\n  %s\nbake a new release number, or pass --force to replace it",
			ErrReleaseChanged, now.Family, now.Release, strings.Join(changes, "\n  "))
	}
	logf("replacing %s-%s (--force):\n  %s\n", now.Family, now.Release, strings.Join(changes, "\n  "))
	if len(shared) > 0 && len(keep) > 0 {
		logf("dropping %s: baked from other inputs\n", strings.Join(keep, ", "))
		keep = nil
	}
	return keep, nil
}

// sharedChanges lists what differs in the inputs every arch shares.
func sharedChanges(old, now *manifest.Manifest) []string {
	var out []string
	diff := func(what, a, b string) {
		if a != b {
			out = append(out, fmt.Sprintf("%s: %s -> %s", what, a, b))
		}
	}
	diff("control repo commit", old.Repo.Commit, now.Repo.Commit)
	diff("tag", old.Repo.Tag, now.Repo.Tag)
	diff("epoch", fmt.Sprint(old.Epoch), fmt.Sprint(now.Epoch))
	diff("builder", old.Builder, now.Builder)
	diff("environment", old.Environment, now.Environment)
	diff("payload exclude", "["+strings.Join(old.PayloadExclude, ", ")+"]", "["+strings.Join(now.PayloadExclude, ", ")+"]")
	diff("Puppetfile sha256", old.Puppetfile.SHA256, now.Puppetfile.SHA256)
	diff("module dir", old.Puppetfile.Moduledir, now.Puppetfile.Moduledir)
	diff("imagebake defaults", fmt.Sprint(old.Imagebake.Defaults), fmt.Sprint(now.Imagebake.Defaults))
	om, nm := map[string]string{}, map[string]string{}
	pin := func(m *manifest.Manifest, to map[string]string) {
		for _, x := range m.Puppetfile.Modules {
			p := x.Commit
			if p == "" {
				p = strings.TrimSpace(x.Version + " sha256:" + x.SHA256)
			}
			if x.Kind == "local" {
				p = "local"
			}
			if x.Path != "" {
				p += " into " + x.Path
			}
			if x.ExcludeSpec {
				p += " without spec/"
			}
			to[x.Name] = p
		}
	}
	pin(old, om)
	pin(now, nm)
	names := map[string]bool{}
	for n := range om {
		names[n] = true
	}
	for n := range nm {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		a, inOld := om[n]
		b, inNow := nm[n]
		switch {
		case !inOld:
			out = append(out, "module "+n+": added ("+b+")")
		case !inNow:
			out = append(out, "module "+n+": removed (was "+a+")")
		default:
			diff("module "+n, a, b)
		}
	}
	return out
}

// imageChanges lists what differs in one arch's own inputs.
func imageChanges(old, now manifest.Image, agentRule string) []string {
	var out []string
	if a, b := manifest.BaseIdentity(old.Base.Ref), manifest.BaseIdentity(now.Base.Ref); a != b {
		out = append(out, fmt.Sprintf("base of %s: %s -> %s", now.Arch, a, b))
	}
	if old.OS != now.OS {
		out = append(out, fmt.Sprintf("os of %s: %s -> %s", now.Arch, old.OS, now.OS))
	}
	if old.Name != now.Name {
		out = append(out, fmt.Sprintf("image name of %s: %s -> %s", now.Arch, old.Name, now.Name))
	}
	oa, na := old.Agent, now.Agent
	oa.Source, oa.Path, na.Source, na.Path = "", "", "", "" // where they came from is not content
	if oa != na {
		line := fmt.Sprintf("agent binaries of %s: %s %s %s/%s (sha256 %s) -> %s %s %s/%s (sha256 %s)", now.Arch,
			oa.Name, oa.Version, oa.OS, oa.Arch, short(oa.SHA256), na.Name, na.Version, na.OS, na.Arch, short(na.SHA256))
		if agentRule != "" {
			line += ", chosen by " + agentRule
		}
		out = append(out, line)
	}
	return out
}

// agentRule says which rule of imagebake.toml chose the agent binaries.
func agentRule(c *AgentsConfig) string {
	switch {
	case c == nil:
		return ""
	case c.Version != "":
		return fmt.Sprintf("[agents] name = %q, version = %q", c.Name, c.Version)
	default:
		return fmt.Sprintf("[agents] name = %q, major = %q (the largest match in the stores)", c.Name, c.Major)
	}
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// keepArches adds to in the arches of old that this bake keeps, pinned
// exactly as old records them: their images come out the same bytes.
func (in *Inputs) keepArches(ctx context.Context, o Options, old *manifest.Manifest, arches []string) error {
	sels, err := selectAgents(ctx, o, in.Config, arches, old)
	if err != nil {
		return fmt.Errorf("keeping %s of %s-%s already in %s: %w", strings.Join(arches, ", "), old.Family, old.Release, o.Out, err)
	}
	for _, a := range arches {
		for _, im := range old.Images {
			if im.Arch != a {
				continue
			}
			im.Digest, im.Artifact, im.Layers, im.Base.Digest = "", "", nil, ""
			in.Manifest.Images = append(in.Manifest.Images, im)
		}
		in.Agents[a] = sels[a]
	}
	in.setPartial()
	if err := in.Manifest.SetContentDigests(); err != nil {
		return err
	}
	for _, im := range in.Manifest.Images {
		for _, o := range old.Images {
			if o.Arch == im.Arch && o.ContentDigest != "" && o.ContentDigest != im.ContentDigest {
				return fmt.Errorf("%w: %s of %s-%s would not come out the same (content %s, recorded %s)", ErrReleaseChanged, im.Arch, old.Family, old.Release, im.ContentDigest, o.ContentDigest)
			}
		}
	}
	return nil
}

// upToDate says whether the release in dir holds exactly now's images,
// from the same inputs, with their artifacts in place: the index, each
// image and each layer (the files are not hashed here; verify does that).
func upToDate(old, now *manifest.Manifest, dir string) bool {
	if old.InputsDigest != now.InputsDigest || len(old.Images) != len(now.Images) || !slices.Equal(old.Advisories, now.Advisories) ||
		fmt.Sprint(old.AdvisoryFixes) != fmt.Sprint(now.AdvisoryFixes) {
		return false
	}
	b, err := builders.Lookup(old.Builder)
	if err != nil {
		return false
	}
	if old.IndexDigest != "" && !exists(b.LayerFile(dir, "", old.IndexDigest)) {
		return false
	}
	for _, im := range old.Images {
		if !exists(b.LayerFile(dir, im.Artifact, im.Digest)) {
			return false
		}
		for _, l := range im.Layers {
			if !exists(b.LayerFile(dir, im.Artifact, l.Digest)) {
				return false
			}
		}
	}
	return true
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// The out-dir sequence every builder shares: lockOut (one bake, merge or
// Packer run into Out at a time; leftovers of killed ones removed),
// oldRelease (the release already there, if any), against (a release
// number names one content), then, for builders that make the release in
// one go, intoOut (a staging directory beside it, swapped into place).

// oldRelease reads the manifest of the release already at dir: nil when
// there is none. A manifest that does not parse is a release whose inputs
// cannot be compared: refused (ErrReleaseChanged, exit 4) unless force. One
// that cannot be read (EACCES, EIO) is an I/O error and stays one, wrapped
// as it came, whatever force says: replacing what cannot be read is not
// safe.
func oldRelease(dir string, force bool) (*manifest.Manifest, error) {
	name := filepath.Join(dir, manifest.FileName)
	old, err := manifest.Read(name)
	switch {
	case err == nil:
		return old, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case !errors.Is(err, manifest.ErrInvalid):
		return nil, fmt.Errorf("the release already in %s: %w", dir, err)
	case force:
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: %s holds a release whose manifest cannot be parsed (%w); pass --force to replace it", ErrReleaseChanged, dir, err)
	}
}

// intoOut makes the release in a staging directory beside final (build
// writes it) and swaps it into place; a failed or cancelled build leaves
// final as it was.
func (o *Options) intoOut(final string, build func(stage string) (*manifest.Manifest, error)) (*manifest.Manifest, error) {
	stage, err := os.MkdirTemp(o.Out, "."+filepath.Base(final)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("out dir %s is not writable: %w", o.Out, err)
	}
	defer os.RemoveAll(stage) // after the swap: the old release, or nothing
	m, err := build(stage)
	if err != nil {
		return nil, err
	}
	return m, replaceDir(stage, final)
}

package bake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/builders/oci"
	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/attest"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// ErrPartsDisagree marks per-arch bakes that are not parts of one release.
var ErrPartsDisagree = fmt.Errorf("the per-arch bakes are not of one release: %w", failure.ErrVerify)

// Merge joins per-arch bakes of one release (release directories, each
// NAME-X.Y.Z with some of its arches) into Out/NAME-X.Y.Z: the images of
// every part, the manifest and the image index over all of them, byte for
// byte what a bake of all the arches on one machine writes. Parts that
// disagree on any shared input (control repo commit, tag, Puppetfile and
// module pins, epoch, builder, environment, imagebake version, agent
// major) are refused, naming the input and both values; so are two parts
// with different images of one arch. An Out that holds the release from
// other inputs is refused unless o.Force, as for Bake.
func Merge(ctx context.Context, o Options, parts []string) (*manifest.Manifest, error) {
	return MergeNamed(ctx, o, parts, parts)
}

// MergeNamed is Merge of the release directories dirs, named in messages
// as names says (where each came from: a directory, a registry
// reference).
func MergeNamed(ctx context.Context, o Options, dirs, names []string) (*manifest.Manifest, error) {
	o.started = time.Now()
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%w: merge needs the per-arch release directories", failure.ErrUsage)
	}
	ms, err := readParts(dirs, names)
	if err != nil {
		return nil, err
	}
	m, byArch, err := joinParts(names, ms)
	if err != nil {
		return nil, err
	}
	lf, err := o.lockOut(ctx)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	name := m.Family + "-" + m.Release
	final := filepath.Join(o.Out, name)
	old, err := oldRelease(final, o.Force)
	if err != nil {
		return nil, err
	}
	if old != nil {
		if _, err := against(old, m, "", o.Force, o.logf); err != nil {
			return nil, err
		}
	}
	return o.intoOut(final, func(stage string) (*manifest.Manifest, error) {
		return writeMerged(ctx, stage, m, byArch, dirs, names, ms, o)
	})
}

// writeMerged writes the merged release m into stage: the OCI layout of
// every part's image, the manifest and the SBOM.
func writeMerged(ctx context.Context, stage string, m *manifest.Manifest, byArch map[string]int, dirs, names []string, ms []*manifest.Manifest, o Options) (*manifest.Manifest, error) {
	var err error
	req := &builders.Request{Dir: stage, Family: m.Family, Release: m.Release, Revision: m.Repo.Commit, Epoch: time.Unix(m.Epoch, 0).UTC()}
	var ps []oci.Part
	for _, im := range m.Images {
		i := byArch[im.Arch]
		ps = append(ps, oci.Part{Dir: dirs[i], From: names[i], Arch: im.Arch, Name: im.Name, Digest: im.Digest,
			Check: partCheck(ctx, names[i], ms[i], partImage(ms[i], im.Arch))})
	}
	if m.IndexDigest, err = oci.Merge(req, ps); err != nil {
		return nil, err
	}
	if err := mergeExtras(stage, m, byArch, dirs); err != nil {
		return nil, err
	}
	if err := m.Write(filepath.Join(stage, manifest.FileName)); err != nil {
		return nil, err
	}
	if err := attest.WriteSBOM(m, filepath.Join(stage, SBOMName)); err != nil {
		return nil, err
	}
	if err := attest.WriteProvenance(m, stage, o.started, time.Now(), o.BuilderID); err != nil {
		return nil, err
	}
	if err := publicModes(stage); err != nil {
		return nil, err
	}
	if missing := missingArches(m); len(missing) > 0 {
		o.logf("%s-%s still lacks %s of its arches %s: merge a bake of %s in too\n", m.Family, m.Release, strings.Join(missing, ", "), strings.Join(m.PartialOf, ", "), strings.Join(missing, ", "))
	}
	return m, nil
}

// mergeExtras carries into the merged release what each part keeps
// beside its images: the compiled catalogs of its images, and its sources
// (sources.toml and their blobs), each source once.
func mergeExtras(stage string, m *manifest.Manifest, byArch map[string]int, dirs []string) error {
	for _, im := range m.Images {
		for _, c := range im.Catalogs {
			if err := linkOrCopy(filepath.Join(dirs[byArch[im.Arch]], c.File), filepath.Join(stage, c.File)); err != nil {
				return fmt.Errorf("the catalog of node %s: %w", c.Node, err)
			}
		}
	}
	// the order one bake of every arch writes: the control repo and the
	// modules (as every part lists them), then each image's agents and base
	byKey := map[string]manifest.Source{}
	from := map[string]string{}
	var shared []string
	for _, d := range dirs {
		s, err := manifest.ReadSources(filepath.Join(d, manifest.SourcesFileName))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, x := range s.Source {
			k := x.Kind + "\x00" + x.Name
			if _, ok := byKey[k]; ok {
				continue
			}
			byKey[k], from[k] = x, d
			if x.Kind != manifest.SourceAgent && x.Kind != manifest.SourceBase {
				shared = append(shared, k)
			}
		}
	}
	if len(byKey) == 0 {
		return nil
	}
	order := shared
	for _, im := range m.Images {
		order = append(order, manifest.SourceAgent+"\x00"+im.Arch, manifest.SourceBase+"\x00"+im.Arch)
	}
	merged := &manifest.Sources{Version: 1}
	for _, k := range order {
		x, ok := byKey[k]
		if !ok {
			continue
		}
		hex := strings.TrimPrefix(x.Blob, "sha256:")
		if err := linkOrCopy(filepath.Join(from[k], "blobs", "sha256", hex), filepath.Join(stage, "blobs", "sha256", hex)); err != nil {
			return fmt.Errorf("the source of %s: %w", sourceLabel(x), err)
		}
		merged.Source = append(merged.Source, x)
	}
	return merged.Write(filepath.Join(stage, manifest.SourcesFileName))
}

// linkOrCopy makes dst the file src (a hard link where it can), leaving a
// dst that is there.
func linkOrCopy(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return atomicfile.Copy(src, dst, 0o644)
}

// readParts reads each part's manifest; every problem is reported.
func readParts(dirs, names []string) ([]*manifest.Manifest, error) {
	var ms []*manifest.Manifest
	var errs []error
	for i, p := range names {
		m, err := manifest.Read(filepath.Join(dirs[i], manifest.FileName))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			errs = append(errs, fmt.Errorf("%s is not a release directory (no %s): %w", p, manifest.FileName, failure.ErrNotFound))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
		case m.Builder != "oci":
			errs = append(errs, fmt.Errorf("%w: %s was baked with builder %s; merge joins OCI layouts (builder oci)", failure.ErrUsage, p, m.Builder))
		}
		ms = append(ms, m)
	}
	return ms, errors.Join(errs...)
}

// joinParts checks the parts are of one release and returns its merged
// manifest and, per arch, the index of the part holding its image.
func joinParts(parts []string, ms []*manifest.Manifest) (*manifest.Manifest, map[string]int, error) {
	first := ms[0]
	var problems []string
	from := map[string]int{}
	byArch := map[string]manifest.Image{}
	for i, m := range ms {
		if m.Family != first.Family || m.Release != first.Release {
			problems = append(problems, fmt.Sprintf("%s holds %s-%s, %s holds %s-%s", parts[0], first.Family, first.Release, parts[i], m.Family, m.Release))
			continue
		}
		for _, c := range sharedChanges(first, m) {
			problems = append(problems, fmt.Sprintf("%s (%s -> %s)", c, parts[0], parts[i]))
		}
		if a, b := first.Imagebake.Version, m.Imagebake.Version; a != b {
			problems = append(problems, fmt.Sprintf("imagebake version: %s in %s, %s in %s", a, parts[0], b, parts[i]))
		}
		if a, b := strings.Join(first.Advisories, ", "), strings.Join(m.Advisories, ", "); a != b {
			problems = append(problems, fmt.Sprintf("advisories: [%s] in %s, [%s] in %s", a, parts[0], b, parts[i]))
		}
		if a, b := fmt.Sprint(first.AdvisoryFixes), fmt.Sprint(m.AdvisoryFixes); a != b {
			problems = append(problems, fmt.Sprintf("what the advisories fix: %s in %s, %s in %s", a, parts[0], b, parts[i]))
		}
		if a, b := strings.Join(first.PartialOf, ","), strings.Join(m.PartialOf, ","); a != b {
			problems = append(problems, fmt.Sprintf("arches of the release: [%s] in %s, [%s] in %s", a, parts[0], b, parts[i]))
		}
		for _, im := range m.Images {
			if a, b := agentMajor(first.Images[0].Agent.Version), agentMajor(im.Agent.Version); a != b {
				problems = append(problems, fmt.Sprintf("agent major: %s %s in %s, %s %s (%s) in %s", first.Images[0].Agent.Name, first.Images[0].Agent.Version, parts[0], im.Agent.Name, im.Agent.Version, im.Arch, parts[i]))
			}
			if have, ok := byArch[im.Arch]; ok {
				if have.Digest != im.Digest {
					problems = append(problems, fmt.Sprintf("%s: %s in %s, %s in %s", im.Name, have.Digest, parts[from[im.Arch]], im.Digest, parts[i]))
				}
				continue
			}
			byArch[im.Arch], from[im.Arch] = im, i
		}
	}
	if len(problems) > 0 {
		return nil, nil, fmt.Errorf("%w:\n  %s", ErrPartsDisagree, strings.Join(problems, "\n  "))
	}
	m := *first
	m.Images = nil
	for _, im := range byArch {
		m.Images = append(m.Images, im)
	}
	sort.Slice(m.Images, func(i, j int) bool { return m.Images[i].Arch < m.Images[j].Arch })
	m.PartialOf = nil
	for _, a := range first.PartialOf {
		if _, ok := byArch[a]; !ok {
			m.PartialOf = first.PartialOf
		}
	}
	return &m, from, m.SetContentDigests()
}

// missingArches lists the arches of a partial release it has no image of.
func missingArches(m *manifest.Manifest) []string {
	have := map[string]bool{}
	for _, im := range m.Images {
		have[im.Arch] = true
	}
	var out []string
	for _, a := range m.PartialOf {
		if !have[a] {
			out = append(out, a)
		}
	}
	return out
}

// partImage is the image of arch as the part's own manifest records it.
func partImage(m *manifest.Manifest, arch string) manifest.Image {
	for _, im := range m.Images {
		if im.Arch == arch {
			return im
		}
	}
	return manifest.Image{}
}

// agentMajor is v's major version (v itself when it is not a version).
func agentMajor(v string) string {
	sv, err := semver.NewVersion(v)
	if err != nil {
		return v
	}
	return fmt.Sprint(sv.Major())
}

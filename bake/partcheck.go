package bake

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// ErrManifestEdited marks a release manifest that does not describe the
// image blobs it names: edited after the bake.
var ErrManifestEdited = fmt.Errorf("manifest.toml does not describe the images it names (edited after the bake?): %w", failure.ErrVerify)

// maxReleaseFile bounds /etc/imagebake/release.toml read back from a layer.
const maxReleaseFile = 64 << 10

// partCheck returns the check merge runs on the image of im, the image of
// part (named where in messages) once its blobs match their digests. A
// partial's manifest.toml is only a file next to the blobs: anyone who can
// edit it could claim other agent binaries or another base without
// touching a blob. So what the manifest says is checked against what the
// image holds: its content digest is computed again from what it
// describes and compared with the manifest's and with the one the bake
// wrote into the image (release.toml in the agents layer); the layers it
// lists with the image's own; the base's OS and packages with those read
// again from the base layers. Every difference is named with its field.
func partCheck(ctx context.Context, where string, pm *manifest.Manifest, im manifest.Image) func(v1.Image) error {
	return func(img v1.Image) error {
		want, err := pm.ContentDigest(im)
		if err != nil {
			return err
		}
		var bad []string
		if im.ContentDigest != want {
			bad = append(bad, fmt.Sprintf("content_digest is %s, but what the manifest describes gives %s", im.ContentDigest, want))
		}
		ls, err := img.Layers()
		if err != nil {
			return fmt.Errorf("image %s in %s: %w", im.Name, where, err)
		}
		lbad, base, agents, err := checkLayers(ls, im, where)
		if err != nil {
			return err
		}
		bad = append(bad, lbad...)
		bad = append(bad, checkReleaseFile(agents, pm, im, want)...)
		bbad, err := checkBaseLayers(ctx, base, im, pm.Imagebake.Defaults, where)
		if err != nil {
			return err
		}
		if bad = append(bad, bbad...); len(bad) > 0 {
			return fmt.Errorf("%w: image %s in %s:\n    %s", ErrManifestEdited, im.Name, where, strings.Join(bad, "\n    "))
		}
		return nil
	}
}

// checkLayers compares an image's layers with those the manifest records,
// and returns the base layers and the agents layer.
func checkLayers(ls []v1.Layer, im manifest.Image, where string) (bad []string, base []v1.Layer, agents v1.Layer, err error) {
	badf := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	if len(ls) != len(im.Layers) {
		badf("layers: the manifest lists %d, the image has %d", len(im.Layers), len(ls))
	}
	for i := range min(len(ls), len(im.Layers)) {
		rec := im.Layers[i]
		d, err1 := ls[i].Digest()
		di, err2 := ls[i].DiffID()
		sz, err3 := ls[i].Size()
		mt, err4 := ls[i].MediaType()
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, nil, nil, fmt.Errorf("image %s in %s: layer %d: %w", im.Name, where, i+1, err)
		}
		switch {
		case rec.Digest != d.String():
			badf("layer %d (%s): digest is %s in the manifest, %s in the image", i+1, rec.Role, rec.Digest, d)
		case rec.DiffID != di.String():
			badf("layer %d (%s): diff_id is %s in the manifest, %s in the image", i+1, rec.Role, rec.DiffID, di)
		case rec.Size != sz:
			badf("layer %d (%s): size is %d in the manifest, %d in the image", i+1, rec.Role, rec.Size, sz)
		case rec.MediaType != string(mt):
			badf("layer %d (%s): media_type is %s in the manifest, %s in the image", i+1, rec.Role, rec.MediaType, mt)
		}
		switch rec.Role {
		case "base":
			base = append(base, ls[i])
		case "agents":
			if agents == nil {
				agents = ls[i]
			}
		case "release": // defaults 2 on: release.toml has a layer of its own
			agents = ls[i]
		}
	}
	return bad, base, agents, nil
}

// checkReleaseFile compares the image's /etc/imagebake/release.toml (in
// its release layer, or its agents layer before defaults 2) with the
// manifest.
func checkReleaseFile(agents v1.Layer, pm *manifest.Manifest, im manifest.Image, want string) []string {
	if agents == nil {
		return []string{"no release or agents layer: release.toml cannot be read"}
	}
	rf, err := readReleaseFile(agents)
	if err != nil {
		return []string{fmt.Sprintf("release.toml in the image's layers: %v", err)}
	}
	var bad []string
	for _, f := range []struct{ field, image, man string }{
		{"content_digest", rf.ContentDigest, want},
		{"family", rf.Family, pm.Family},
		{"release", rf.Release, pm.Release},
		{"arch", rf.Arch, im.Arch},
		{"name", rf.Name, im.Name},
		{"repo.tag", rf.Tag, pm.Repo.Tag},
		{"repo.commit", rf.Commit, pm.Repo.Commit},
		{"agent.name", rf.Agent, im.Agent.Name},
		{"agent.version", rf.AgentVersion, im.Agent.Version},
	} {
		if f.image != f.man {
			bad = append(bad, fmt.Sprintf("%s: %s in the manifest, %s in the image's /etc/imagebake/release.toml", f.field, f.man, f.image))
		}
	}
	return bad
}

// checkBaseLayers compares what the base layers say of themselves (OS,
// packages, Puppet) with the manifest.
func checkBaseLayers(ctx context.Context, base []v1.Layer, im manifest.Image, defaults int, where string) ([]string, error) {
	if len(base) == 0 {
		if im.Base.OS != nil || im.Base.Packages != nil {
			return []string{"base: the manifest records an OS or packages, but the image has no base layers"}, nil
		}
		return nil, nil
	}
	info, err := builders.ReadBase(ctx, base, fmt.Sprintf("base of %s in %s", im.Name, where))
	if err != nil {
		return nil, err
	}
	var bad []string
	osRec, pkgs := baseContent(info, defaults)
	if !reflect.DeepEqual(osRec, im.Base.OS) {
		bad = append(bad, fmt.Sprintf("base.os: %s in the manifest, %s in the base layers", showOS(im.Base.OS), showOS(osRec)))
	}
	if want := basePuppet(pkgs); !reflect.DeepEqual(want, im.Puppet) {
		bad = append(bad, fmt.Sprintf("puppet: %v in the manifest, %v in the base layers", showPuppet(im.Puppet), showPuppet(want)))
	}
	if !samePackages(pkgs, im.Base.Packages) {
		bad = append(bad, fmt.Sprintf("base.packages: %s in the manifest, %s in the base layers", showPackages(im.Base.Packages, pkgs), showPackages(pkgs, im.Base.Packages)))
	}
	return bad, nil
}

// readReleaseFile reads /etc/imagebake/release.toml from a layer.
func readReleaseFile(l v1.Layer) (*releaseFile, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("not found")
		}
		if err != nil {
			return nil, err
		}
		if strings.Trim(path.Clean("/"+h.Name), "/") != "etc/imagebake/release.toml" || h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > maxReleaseFile {
			return nil, fmt.Errorf("%d bytes, more than a release file holds", h.Size)
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxReleaseFile))
		if err != nil {
			return nil, err
		}
		var rf releaseFile
		if _, err := toml.Decode(string(b), &rf); err != nil {
			return nil, err
		}
		return &rf, nil
	}
}

// samePackages compares two package records, an empty list and none alike.
func samePackages(a, b *manifest.Packages) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Format != b.Format || a.Count != b.Count || a.Digest != b.Digest || len(a.List) != len(b.List) {
		return false
	}
	for i := range a.List {
		if !reflect.DeepEqual(a.List[i], b.List[i]) {
			return false
		}
	}
	return true
}

func showPuppet(p *manifest.Puppet) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("%s %s (%s)", p.Package, p.PackageVersion, p.CodeDir)
}

func showOS(o *manifest.OS) string {
	if o == nil {
		return "none"
	}
	return o.String()
}

// showPackages describes a, naming the first package where it differs from b.
func showPackages(a, b *manifest.Packages) string {
	if a == nil {
		return "none"
	}
	s := fmt.Sprintf("%d %s packages, digest %s", a.Count, a.Format, a.Digest)
	if b == nil {
		return s
	}
	for i, p := range a.List {
		if i >= len(b.List) || !reflect.DeepEqual(p, b.List[i]) {
			return s + fmt.Sprintf(" (first difference: %s %s)", p.Name, p.Version)
		}
	}
	return s
}

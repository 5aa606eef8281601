package bake

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/puppet"
	"github.com/imagebake/imagebake/puppet/metadata"
)

// ErrPuppetVersion marks modules whose requirements exclude the Puppet
// the base carries.
var ErrPuppetVersion = fmt.Errorf("modules do not run on the base's Puppet: %w", failure.ErrVerify)

// aioRevisionRE is the revision Puppet's own (AIO) packages carry: a
// distribution name after the build number (7.28.0-1bookworm, 8.4.0-1jammy).
var aioRevisionRE = regexp.MustCompile(`-[0-9]+[a-z]`)

var upstreamRE = regexp.MustCompile(`^(?:[0-9]+:)?([0-9]+\.[0-9]+\.[0-9]+)`)

// basePuppet finds the Puppet a base carries among its packages, and the
// code dir it reads: Puppet's own puppet-agent and openvox-agent packages
// read /etc/puppetlabs/code; Debian's and Ubuntu's puppet (and Debian's own
// puppet-agent, from trixie on) read /etc/puppet/code. nil: none.
func basePuppet(ps *manifest.Packages) *manifest.Puppet {
	if ps == nil {
		return nil
	}
	for _, p := range ps.List {
		up := upstreamRE.FindStringSubmatch(p.Version)
		if up == nil {
			continue
		}
		r := &manifest.Puppet{Package: p.Name, Version: up[1], PackageVersion: p.Version}
		switch {
		case p.Name == "openvox-agent", p.Name == "puppet-agent" && (ps.Format != "dpkg" || aioRevisionRE.MatchString(p.Version)):
			r.CodeDir, r.Binary = "/etc/puppetlabs/code", "/opt/puppetlabs/bin/puppet"
		case p.Name == "puppet" || p.Name == "puppet-agent":
			r.CodeDir, r.Binary = "/etc/puppet/code", "/usr/bin/puppet"
		default:
			continue
		}
		return r
	}
	return nil
}

// checkBasePuppet checks each image's Puppet (im.Puppet, basePuppet's):
// it refuses modules whose
// metadata.json requirements exclude it (unless dependencies are ignored),
// and says when the environment is not where that Puppet reads code: a
// warning, or with the compile gate on (gate) a refusal, since a tree
// Puppet does not read compiles nothing on the nodes.
func checkBasePuppet(m *manifest.Manifest, metas map[string]*metadata.Metadata, gate bool, logf func(string, ...any)) error {
	var misses, elsewhere []string
	for i := range m.Images {
		im := &m.Images[i]
		bp := im.Puppet
		if bp == nil {
			continue
		}
		if !strings.HasPrefix(m.Environment+"/", bp.CodeDir+"/") {
			if gate {
				elsewhere = append(elsewhere, fmt.Sprintf("%s: the environment goes to %s, but the base's Puppet (package %s %s) reads %s: set environment = %q in imagebake.toml",
					im.Name, m.Environment, bp.Package, bp.PackageVersion, bp.CodeDir, bp.CodeDir+"/environments/production"))
				continue
			}
			logf("warning: %s: the environment goes to %s, but the base's Puppet (package %s %s) reads %s: puppet in the image will not find it; set environment = %q in imagebake.toml\n",
				im.Name, m.Environment, bp.Package, bp.PackageVersion, bp.CodeDir, bp.CodeDir+"/environments/production")
		}
		if m.Puppetfile.IgnoreDependencies {
			continue
		}
		names := make([]string, 0, len(metas))
		for n := range metas {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			md := metas[n]
			if miss := puppetMiss(md, bp.Version); miss != "" {
				misses = append(misses, fmt.Sprintf("module %s %s needs %s; the %s base has Puppet %s (package %s %s)", n, md.Version, miss, im.Arch, bp.Version, bp.Package, bp.PackageVersion))
			}
		}
	}
	if len(elsewhere) > 0 {
		return fmt.Errorf("%w: Puppet in the image would not find the environment:\n  %s", ErrCompile, strings.Join(elsewhere, "\n  "))
	}
	if len(misses) > 0 {
		return fmt.Errorf("%w:\n  %s\npin module versions that run on it, or give the image a base with another Puppet", ErrPuppetVersion, strings.Join(misses, "\n  "))
	}
	return nil
}

// puppetMiss is md's Puppet requirements as written ("openvox >= 8.19.0
// < 9.0.0") when none allows version, else "".
func puppetMiss(md *metadata.Metadata, version string) string {
	reqs := md.Puppets()
	var names []string
	for _, r := range reqs {
		if r.Allows(version) {
			return ""
		}
		names = append(names, r.Name+" "+r.Range)
	}
	return strings.Join(names, " or ")
}

// BasePlatforms reads the Puppet each arch's base carries, for the
// Puppetfile commands to check modules' requirements against before any
// bake (puppet.WithPlatforms): the bases imagebake.toml names (cfg), read
// from their layers, nothing run. A base that cannot be read here (a
// registry out of reach) is left out, with a note.
func BasePlatforms(ctx context.Context, cfg *Config, o Options) ([]puppet.Platform, []string) {
	var out []puppet.Platform
	var notes []string
	for _, arch := range cfg.Arches {
		b, err := o.base(cfg, arch)
		if err == nil {
			var found builders.FoundBase
			if found, err = builders.Inspect(ctx, b, arch); err == nil {
				_, ps := baseContent(found.Info, manifest.CurrentDefaults)
				if bp := basePuppet(ps); bp != nil {
					out = append(out, puppet.Platform{Where: "the " + arch + " base", Version: bp.Version, Package: bp.Package + " " + bp.PackageVersion})
				} else {
					notes = append(notes, fmt.Sprintf("the %s base carries no Puppet package (puppet, puppet-agent, openvox-agent): modules' Puppet requirements are not checked against it", arch))
				}
				continue
			}
		}
		notes = append(notes, fmt.Sprintf("the %s base could not be read (%v): modules' Puppet requirements are checked at bake time", arch, err))
	}
	return out, notes
}

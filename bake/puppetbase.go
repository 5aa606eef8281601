package bake

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/manifest"
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

// checkBasePuppet records each image's Puppet, refuses modules whose
// metadata.json requirements exclude it (unless dependencies are ignored),
// and says when the environment is not where that Puppet reads code: a
// warning, or with the compile gate on (gate) a refusal, since a tree
// Puppet does not read compiles nothing on the nodes.
func checkBasePuppet(m *manifest.Manifest, metas map[string]*metadata.Metadata, gate bool, logf func(string, ...any)) error {
	var misses, elsewhere []string
	for i := range m.Images {
		im := &m.Images[i]
		im.Puppet = basePuppet(im.Base.Packages)
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
			req, ok := md.Puppet()
			if ok && !req.Allows(bp.Version) {
				misses = append(misses, fmt.Sprintf("module %s %s needs Puppet %s; the %s base has Puppet %s (package %s %s)", n, md.Version, req.Range, im.Arch, bp.Version, bp.Package, bp.PackageVersion))
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

package puppet

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/puppet/metadata"
	"github.com/imagebake/imagebake/puppet/puppetfile"
)

// ErrDependencies marks modules whose dependencies are not pinned in
// range.
var ErrDependencies = fmt.Errorf("module dependencies not met: %w", failure.ErrVerify)

// ModuleMeta is what one installed module's metadata.json says.
type ModuleMeta struct {
	Module string             `json:"module"` // as the Puppetfile names it
	Meta   *metadata.Metadata `json:"metadata"`
}

// readMetadata reads the metadata.json of every module of pf from where
// it is installed. A module without one, or with one that does not
// parse, is a note naming it and the file.
func readMetadata(pf *puppetfile.Puppetfile, t *targets) (map[string]*metadata.Metadata, []string) {
	out := map[string]*metadata.Metadata{}
	var notes []string
	for _, m := range pf.Modules {
		root, rel := t.mods, m.Short
		if m.InstallPath != "" {
			root, rel = t.env, m.Dir("")
		}
		file := path.Join(rel, metadata.FileName)
		b, err := root.ReadFile(file, metadata.MaxSize)
		if errors.Is(err, fs.ErrNotExist) {
			notes = append(notes, fmt.Sprintf("%s: module %q has no %s: its version and dependencies are not known", m.Pos, m.Name, metadata.FileName))
			continue
		}
		if err == nil {
			var md *metadata.Metadata
			if md, err = metadata.Parse(root.Path(file), b); err == nil {
				out[m.Name] = md
				if metadata.Short(md.Name) != m.Short {
					notes = append(notes, fmt.Sprintf("%s: module %q is installed as %s, and its %s names it %q: Puppet finds it as %s, so it meets no dependency on %s",
						m.Pos, m.Name, m.Short, metadata.FileName, md.Name, m.Short, metadata.Slug(md.Name)))
				}
				continue
			}
		}
		notes = append(notes, fmt.Sprintf("%s: module %q: %v", m.Pos, m.Name, err))
	}
	return out, notes
}

// ModuleVersion is the version of a pinned module: its metadata's, else
// a Forge pin's version, else a tag that is a version; "" when unknown.
func ModuleVersion(md *metadata.Metadata, pin lockfile.Module) string {
	switch {
	case md != nil:
		return md.Version
	case pin.Kind == "forge":
		return pin.Version
	case pin.RefType == "tag" || pin.RefType == "ref":
		if v, err := semver.StrictNewVersion(strings.TrimPrefix(pin.Ref, "v")); err == nil {
			return v.String()
		}
	}
	return ""
}

// CheckDependencies checks that every dependency in every module's
// metadata is a module of pf (names normalised: puppetlabs/stdlib,
// puppetlabs-stdlib and the module dir stdlib are one module) pinned at a
// version in its range. Every miss is named, with the Puppetfile lines.
func CheckDependencies(pf *puppetfile.Puppetfile, pins []lockfile.Module, metas map[string]*metadata.Metadata) error {
	bySlug, byShort := map[string]int{}, map[string]int{}
	for i, m := range pf.Modules {
		// a metadata name counts only for the directory Puppet finds it
		// in: modules/fake whose metadata says puppetlabs-stdlib is not
		// stdlib to Puppet
		if md := metas[m.Name]; md != nil && metadata.Short(md.Name) == m.Short {
			bySlug[metadata.Slug(md.Name)] = i
		}
		if m.Author != "" {
			if _, ok := bySlug[metadata.Slug(m.Name)]; !ok {
				bySlug[metadata.Slug(m.Name)] = i
			}
		}
		byShort[m.Short] = i
	}
	var misses []string
	for _, m := range pf.Modules {
		md := metas[m.Name]
		if md == nil {
			continue
		}
		for _, d := range md.Dependencies {
			j, ok := bySlug[metadata.Slug(d.Name)]
			if !ok {
				j, ok = byShort[metadata.Short(d.Name)]
			}
			needs := fmt.Sprintf("%s: module %s %s needs %s %s", m.Pos, m.Name, md.Version, metadata.Slug(d.Name), rangeText(d.Range))
			if !ok {
				misses = append(misses, needs+": no module of that name is in the Puppetfile")
				continue
			}
			dep := pf.Modules[j]
			var pin lockfile.Module
			if j < len(pins) {
				pin = pins[j]
			}
			v := ModuleVersion(metas[dep.Name], pin)
			switch {
			case v == "":
				misses = append(misses, fmt.Sprintf("%s: %s (%s) is pinned at %s, whose version is not known (no metadata.json)", needs, dep.Name, dep.Pos, pin.Pin()))
			case !d.Allows(v):
				misses = append(misses, fmt.Sprintf("%s: %s (%s) is pinned at %s", needs, dep.Name, dep.Pos, v))
			}
		}
	}
	if len(misses) == 0 {
		return nil
	}
	sort.Strings(misses)
	return fmt.Errorf("%w (%d): pin each dependency in its range; or, knowing better, set [puppetfile] ignore_dependencies = true in imagebake.toml (bake and puppetfile install also take --ignore-dependencies):\n  %s", ErrDependencies, len(misses), strings.Join(misses, "\n  "))
}

// Platform is a Puppet modules will run on: a base's.
type Platform struct {
	// Where names it for people: "the amd64 base".
	Where string
	// Version is its upstream version, X.Y.Z.
	Version string
	// Package is the package it comes from, with its version.
	Package string
}

// ErrPuppetRequirement marks modules whose metadata.json requirements
// exclude the Puppet they will run on.
var ErrPuppetRequirement = fmt.Errorf("modules do not run on the base's Puppet: %w", failure.ErrVerify)

// CheckPuppet checks every module's Puppet requirement (puppet or openvox,
// named as the module writes it) against each platform, naming each miss
// with its Puppetfile line.
func CheckPuppet(pf *puppetfile.Puppetfile, metas map[string]*metadata.Metadata, platforms []Platform) error {
	var misses []string
	for _, m := range pf.Modules {
		md := metas[m.Name]
		if md == nil {
			continue
		}
		reqs := md.Puppets()
		if len(reqs) == 0 {
			continue
		}
		for _, p := range platforms {
			ok := false
			names := make([]string, len(reqs))
			for i, r := range reqs {
				ok = ok || r.Allows(p.Version)
				names[i] = r.Name + " " + rangeText(r.Range)
			}
			if !ok {
				misses = append(misses, fmt.Sprintf("%s: module %s %s needs %s; %s has Puppet %s (package %s)", m.Pos, m.Name, md.Version, strings.Join(names, " or "), p.Where, p.Version, p.Package))
			}
		}
	}
	if len(misses) == 0 {
		return nil
	}
	return fmt.Errorf("%w (%d): pin module versions that run on it, or give the image a base with another Puppet:\n  %s", ErrPuppetRequirement, len(misses), strings.Join(misses, "\n  "))
}

func rangeText(r string) string {
	if strings.TrimSpace(r) == "" {
		return "(any version)"
	}
	return r
}

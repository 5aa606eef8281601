package release

import (
	"errors"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
)

func base() *manifest.Manifest {
	return &manifest.Manifest{Release: "1.4.2", Repo: manifest.Repo{Commit: strings.Repeat("a", 40)},
		Images: []manifest.Image{{Arch: "amd64", Base: manifest.Base{Ref: "rootfs:debian-12@sha256:1"}, Agent: manifest.Agent{Name: "moz", Version: "2.4.0"}}},
		Puppetfile: manifest.Puppetfile{Modules: []lockfile.Module{
			{Name: "puppetlabs/stdlib", Kind: "forge", Source: "f", Version: "9.6.0"},
			{Name: "apache", Kind: "git", Source: "g", RefType: "tag", Ref: "v1.2.0", Commit: strings.Repeat("1", 40)},
		}}}
}

func TestProposeAndCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(m *manifest.Manifest)
		level  Level
		next   string
		what   string
		adv    []string
	}{
		{"nothing", func(m *manifest.Manifest) {}, None, "1.4.2", "", nil},
		{"control repo commit only", func(m *manifest.Manifest) { m.Repo.Commit = strings.Repeat("b", 40) }, Security, "1.4.3", "control repo", []string{"CVE-2024-1"}},
		{"control repo commit only, no advisory", func(m *manifest.Manifest) { m.Repo.Commit = strings.Repeat("b", 40) }, Minor, "1.5.0", "control repo", nil},
		{"forge patch", func(m *manifest.Manifest) { m.Puppetfile.Modules[0].Version = "9.6.1" }, Security, "1.4.3", "module puppetlabs/stdlib", []string{"CVE-2024-1"}},
		{"forge patch, no advisory", func(m *manifest.Manifest) { m.Puppetfile.Modules[0].Version = "9.6.1" }, Minor, "1.5.0", "module puppetlabs/stdlib", nil},
		{"forge minor", func(m *manifest.Manifest) { m.Puppetfile.Modules[0].Version = "9.7.0" }, Minor, "1.5.0", "module puppetlabs/stdlib", nil},
		{"git tag major", func(m *manifest.Manifest) {
			m.Puppetfile.Modules[1].Ref, m.Puppetfile.Modules[1].Commit = "v2.0.0", strings.Repeat("2", 40)
		}, Major, "2.0.0", "module apache", nil},
		{"module added", func(m *manifest.Manifest) {
			m.Puppetfile.Modules = append(m.Puppetfile.Modules, lockfile.Module{Name: "nginx", Kind: "git", Source: "n", Commit: strings.Repeat("3", 40)})
		}, Minor, "1.5.0", "module nginx", nil},
		{"module removed", func(m *manifest.Manifest) { m.Puppetfile.Modules = m.Puppetfile.Modules[:1] }, Major, "2.0.0", "module apache", nil},
		{"base changed, contents unknown", func(m *manifest.Manifest) { m.Images[0].Base.Ref = "rootfs:debian-13@sha256:2" }, Major, "2.0.0", "base", nil},
		{"agent minor", func(m *manifest.Manifest) { m.Images[0].Agent.Version = "2.5.0" }, Minor, "1.5.0", "agent binaries moz", nil},
		{"arch added", func(m *manifest.Manifest) { m.Images = append(m.Images, manifest.Image{Arch: "arm64"}) }, Minor, "1.5.0", "arch arm64", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cand := base()
			tt.change(cand)
			p, err := Propose(base(), cand, Rules{Advisories: tt.adv})
			if err != nil {
				t.Fatal(err)
			}
			if p.Level != tt.level.String() || p.Next != tt.next {
				t.Errorf("Propose = %s %s, want %s %s (%+v)", p.Level, p.Next, tt.level, tt.next, p.Changes)
			}
			if tt.what != "" && (len(p.Changes) == 0 || p.Changes[0].What != tt.what) {
				t.Errorf("changes = %+v, want first %q", p.Changes, tt.what)
			}
			if tt.level > None {
				if err := Check(base(), cand, tt.next, Rules{Advisories: tt.adv}); err != nil {
					t.Errorf("Check(%s) = %v, want ok", tt.next, err)
				}
			}
		})
	}
}

func TestCheckRefuses(t *testing.T) {
	t.Parallel()
	cand := base()
	cand.Images[0].Base.Ref = "rootfs:debian-13@sha256:2"
	for _, number := range []string{"1.5.0", "1.4.3"} {
		err := Check(base(), cand, number, Rules{Advisories: []string{"CVE-2024-1"}})
		if !errors.Is(err, ErrNumber) || !strings.Contains(err.Error(), "base: changed from rootfs:debian-12@sha256:1 to rootfs:debian-13@sha256:2") || !strings.Contains(err.Error(), "need MAJOR (2.0.0)") {
			t.Errorf("Check(%s) after a base change = %v", number, err)
		}
	}
	added := base()
	added.Puppetfile.Modules = append(added.Puppetfile.Modules, lockfile.Module{Name: "nginx", Kind: "git"})
	if err := Check(base(), added, "1.4.3", Rules{}); !errors.Is(err, ErrNumber) || !strings.Contains(err.Error(), "module nginx: added (MINOR)") {
		t.Errorf("a SECURITY release adding a module = %v", err)
	}
	for _, number := range []string{"1.4.4", "1.4.1", "1.6.0", "3.0.0", "1.4.2"} {
		if err := Check(base(), added, number, Rules{}); !errors.Is(err, ErrNumber) || !strings.Contains(err.Error(), "does not follow 1.4.2") {
			t.Errorf("Check(%s) (skip, back or repeat) = %v", number, err)
		}
	}
	if err := Check(base(), added, "2.0.0", Rules{}); err != nil {
		t.Errorf("a larger bump than needed is allowed: %v", err)
	}
}

// A git module is judged by its metadata.json version whatever the pin:
// a :ref moving concat from 9.0.1 back to 7.4.0 is MAJOR (it was planned
// SECURITY as "commit a -> b"); the same version at another commit may be
// a security fix; a move whose version nobody knows is MAJOR, saying why.
func TestModuleLevelByMetadata(t *testing.T) {
	t.Parallel()
	concat := func(refType, ref, commit, version string) lockfile.Module {
		return lockfile.Module{Name: "concat", Kind: "git", Source: "git://h/concat.git", RefType: refType, Ref: ref,
			Commit: strings.Repeat(commit, 40), ModuleName: map[bool]string{true: "puppetlabs-concat"}[version != ""], ModuleVersion: version}
	}
	for _, c := range []struct {
		name      string
		prev, now lockfile.Module
		level     Level
		why       string
	}{
		{"downgrade behind a SHA", concat("tag", "v9.0.1", "b", "9.0.1"), concat("ref", "69811118", "6", "7.4.0"), Major, "puppetlabs-concat major version 9.0.1 -> 7.4.0 (metadata.json)"},
		{"minor by branch", concat("branch", "main", "b", "9.0.1"), concat("branch", "main", "c", "9.1.0"), Minor, "minor version 9.0.1 -> 9.1.0"},
		{"same version, other commit", concat("commit", "b", "b", "9.0.1"), concat("commit", "c", "c", "9.0.1"), Security, "puppetlabs-concat 9.0.1 unchanged (metadata.json)"},
		{"tag before, metadata now", concat("tag", "v9.0.1", "b", ""), concat("ref", "abc", "c", "7.4.0"), Major, "major version 9.0.1 -> 7.4.0 (tag -> metadata.json)"},
		{"nothing known", concat("branch", "main", "b", ""), concat("branch", "main", "c", ""), Major, "not known on either side"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, why := moduleLevel(c.prev, c.now)
			if l != c.level || !strings.Contains(why, c.why) {
				t.Errorf("moduleLevel = %s %q, want %s saying %q", l, why, c.level, c.why)
			}
		})
	}
	// and Check refuses the downgrade as a security release
	prev, cand := base(), base()
	prev.Puppetfile.Modules = append(prev.Puppetfile.Modules, concat("tag", "v9.0.1", "b", "9.0.1"))
	cand.Puppetfile.Modules = append(cand.Puppetfile.Modules, concat("ref", "69811118", "6", "7.4.0"))
	if err := Check(prev, cand, "1.4.3", Rules{Advisories: []string{"CVE-2024-1"}}); err == nil || !strings.Contains(err.Error(), "9.0.1 -> 7.4.0") {
		t.Errorf("Check(1.4.3, advisory) of a two-major downgrade = %v", err)
	}
}

// A control repo change is listed with its files whatever else changed
// (it was listed only when nothing else had).
func TestControlRepoChangeAlwaysListed(t *testing.T) {
	t.Parallel()
	cand := base()
	cand.Repo.Commit = strings.Repeat("b", 40)
	cand.Puppetfile.Modules[0].Version = "9.7.0"
	p, err := Propose(base(), cand, Rules{RepoFiles: []string{"M site-modules/profile/manifests/web.pp", "A data/common.yaml"}})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range p.Changes {
		found = found || c.What == "control repo" && strings.HasSuffix(c.Reason, ": M site-modules/profile/manifests/web.pp, A data/common.yaml")
	}
	if !found || p.Level != "MINOR" {
		t.Errorf("plan = %+v, want MINOR listing the control repo's files", p)
	}
}

// A per-arch bake (partial_of) is compared on its own arches: the others
// are the other runners', not dropped.
func TestPartialComparedOnItsArches(t *testing.T) {
	t.Parallel()
	prev := base()
	prev.Images = append(prev.Images, manifest.Image{Arch: "arm64", Base: manifest.Base{Ref: "rootfs:debian-12@sha256:1"}, Agent: manifest.Agent{Name: "moz", Version: "2.4.0"}})
	cand := base()
	cand.Repo.Commit = strings.Repeat("b", 40)
	cand.PartialOf = []string{"amd64", "arm64"}
	if err := Check(prev, cand, "1.4.3", Rules{Advisories: []string{"CVE-2026-1"}}); err != nil {
		t.Errorf("a per-arch security bake: %v", err)
	}
	cand.PartialOf = nil // a whole release without arm64 drops it
	if err := Check(prev, cand, "1.4.3", Rules{Advisories: []string{"CVE-2026-1"}}); err == nil || !strings.Contains(err.Error(), "arch arm64: dropped") {
		t.Errorf("a release without arm64: %v, want it named as dropped", err)
	}
}

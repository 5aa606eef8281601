//go:build linux

package bake

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
)

func releaseFor(t *testing.T, edit func(m *manifest.Manifest)) *manifest.Manifest {
	t.Helper()
	m := &manifest.Manifest{Family: "web", Release: "1.0.0", Epoch: 1735689600, Builder: "oci",
		Environment: "/etc/puppetlabs/code/environments/production",
		Imagebake:   manifest.Tool{Defaults: manifest.CurrentDefaults},
		Repo:        manifest.Repo{Tag: "v1.0.0", Commit: strings.Repeat("a", 40)},
		Puppetfile: manifest.Puppetfile{SHA256: strings.Repeat("b", 64), Moduledir: "modules",
			Modules: []lockfile.Module{{Name: "ntp", Kind: "git", Commit: strings.Repeat("c", 40)}}},
		Images: []manifest.Image{{Arch: "amd64", OS: "linux", Name: "web-1.0.0-amd64",
			Base:  manifest.Base{Ref: "scratch"},
			Agent: manifest.Agent{Name: "mozagent", Version: "2.4.1", OS: "linux", Arch: "amd64", Size: 10, SHA256: strings.Repeat("d", 64)}}},
	}
	if edit != nil {
		edit(m)
	}
	if err := m.SetContentDigests(); err != nil {
		t.Fatal(err)
	}
	return m
}

// The summary of a release that would change names every input that
// changed, the agent binaries with the rule that chose them, and is never
// empty when the content changed: a release is not replaced unsaid.
func TestAgainstNamesEveryChangedInput(t *testing.T) {
	t.Parallel()
	old := releaseFor(t, nil)
	rule := agentRule(&AgentsConfig{Name: "mozagent", Major: "2"})
	for _, c := range []struct {
		name string
		edit func(m *manifest.Manifest)
		want []string
	}{
		{"agent by range", func(m *manifest.Manifest) {
			m.Images[0].Agent.Version, m.Images[0].Agent.SHA256 = "2.4.2", strings.Repeat("e", 64)
		}, []string{"agent binaries of amd64: mozagent 2.4.1 linux/amd64 (sha256 dddddddddddd) -> mozagent 2.4.2", `chosen by [agents] name = "mozagent", major = "2"`}},
		{"defaults", func(m *manifest.Manifest) { m.Imagebake.Defaults = 0 }, []string{fmt.Sprintf("imagebake defaults: %d -> 0", manifest.CurrentDefaults)}},
		{"module dir", func(m *manifest.Manifest) { m.Puppetfile.Moduledir = "site" }, []string{"module dir: modules -> site"}},
		{"module without spec", func(m *manifest.Manifest) { m.Puppetfile.Modules[0].ExcludeSpec = true }, []string{"module ntp: " + strings.Repeat("c", 40) + " -> " + strings.Repeat("c", 40) + " without spec/"}},
		{"epoch and commit", func(m *manifest.Manifest) { m.Epoch++; m.Repo.Commit = strings.Repeat("f", 40) }, []string{"control repo commit: aaaa", "epoch: 1735689600 -> 1735689601"}},
		{"os", func(m *manifest.Manifest) { m.Images[0].OS = "freebsd" }, []string{"os of amd64: linux -> freebsd"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := releaseFor(t, c.edit)
			_, err := against(old, now, rule, false, t.Logf)
			if !errors.Is(err, ErrReleaseChanged) {
				t.Fatalf("against = %v, want ErrReleaseChanged", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the summary does not name %q:\n%v", w, err)
				}
			}
			var logged []string
			if _, err := against(old, now, rule, true, func(f string, a ...any) { logged = append(logged, f) }); err != nil || len(logged) == 0 {
				t.Errorf("with --force: err %v, logged %q; want the replacement said", err, logged)
			}
		})
	}
	if _, err := against(old, releaseFor(t, nil), rule, false, t.Logf); err != nil {
		t.Errorf("the same inputs: %v", err)
	}
}

// What a base lacks (no package database, no /bin/sh) is the same on every
// bake of it: said with --verbose only.
func TestBaseNotesOnlyVerbose(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	for _, verbose := range []bool{false, true} {
		var log strings.Builder
		o := opts(root, repo, filepath.Join(root, fmt.Sprintf("dist-%v", verbose)))
		o.Log, o.Verbose = &log, verbose
		if _, err := Bake(ctx, o); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(log.String(), "no package database"); got != verbose {
			t.Errorf("verbose %v: the base's notes printed: %v\n%s", verbose, got, log.String())
		}
	}
}

package bake

import (
	"strings"
	"testing"
)

func TestFamilyOf(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"/srv/control": "control", "/x/Puppet Control_Repo": "puppet-control_repo", "/x/2024-web": "web", "/x/---": ""} {
		if got := familyOf(in); got != want {
			t.Errorf("familyOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseEnvironmentConf(f *testing.F) {
	f.Add([]byte("modulepath = site:modules:$basemodulepath\nmanifest = manifests\n"))
	f.Add([]byte("[main]\n# comment\n; also\nconfig_version = 'scripts/v.sh'\n"))
	f.Add([]byte("= x\nno equals\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseEnvironmentConf("environment.conf", b)
		if err == nil && m == nil {
			t.Fatal("no settings and no error")
		}
		if err != nil && !strings.Contains(err.Error(), "environment.conf:") {
			t.Fatalf("an error does not name the file and line: %v", err)
		}
	})
}

package bake

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile("../testdata/example/control/imagebake.toml.in")
	if err != nil {
		t.Fatal(err)
	}
	good := strings.Replace(string(example), "@BASE_SHA256@", strings.Repeat("a", 64), 1)
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatalf("the annotated example does not parse: %v", err)
	}
	if c.Family != "example" || c.Builder != "oci" || c.Environment != DefaultEnvironment || c.Agents.Name != "mozagent" {
		t.Errorf("ParseConfig = %+v", c)
	}
	// an exact pin: [agents] version
	if c, err := ParseConfig([]byte(strings.Replace(good, `major = "2"`, `version = "2.4.1"`, 1))); err != nil || c.Agents.Major != "2.4.1" {
		t.Errorf("[agents] version = \"2.4.1\": %v, %+v", err, c)
	}
	tests := []struct{ from, to, want string }{
		{`family = "example"`, `family = "Ex ample"`, "family"},
		{`builder = "oci"`, `builder = "docker"`, `builder "docker"`},
		{`arches = ["amd64", "arm64"]`, `arches = []`, "arches is empty"},
		{`sha256 = "` + strings.Repeat("a", 64) + `"`, `sha256 = "short"`, "needs sha256"},
		{`major = "2"`, `major = "2"` + "\ncolour = 1", "unknown keys agents.colour"},
		{"\n[base]\n", "\n[bases.s390x]\nscratch = true\n[base]\n", "names an arch not in arches"},
		{`environment = "/etc/puppetlabs/code/environments/production"`, `environment = "relative"`, "clean absolute path"},
		{`rootfs = "base/rootfs.tar.gz"`, `rootfs = "/host/secret"`, `rootfs "/host/secret" is absolute`},
		{`rootfs = "base/rootfs.tar.gz"`, `rootfs = "base/../../host/secret"`, "leaves --context"},
		{`rootfs = "base/rootfs.tar.gz"`, `layout = "/var/lib/layout"` + "\ndigest = \"sha256:" + strings.Repeat("b", 64) + "\"", `layout "/var/lib/layout" is absolute`},
		{"rootfs = \"base/rootfs.tar.gz\"\nsha256 = \"" + strings.Repeat("a", 64) + "\"", `image = "registry.example.com/debian:bookworm"`, "is not pinned by digest: want REGISTRY/REPO@sha256:"},
		{"rootfs = \"base/rootfs.tar.gz\"\nsha256 = \"" + strings.Repeat("a", 64) + "\"", `image = "https://registry.example.com/debian@sha256:` + strings.Repeat("c", 64) + `"`, "without a scheme"},
		{`rootfs = "base/rootfs.tar.gz"`, `image = "registry.example.com/debian@sha256:` + strings.Repeat("c", 64) + `"` + "\nrootfs = \"base/rootfs.tar.gz\"", "exactly one of"},
		{`stores = ["store"]`, `stores = ["file:///srv/tools"]`, "is a URL"},
		{`stores = ["store"]`, `stores = ["../elsewhere"]`, "leaves --context"},
		{`stores = ["store"]`, `stores = ["store"]` + "\n[release]\nmajor_packages = [\"python3[\"]", `[release] major_packages entry "python3[" is not a name or glob`},
		{`major = "2"`, `major = "2"` + "\nversion = \"2.4.1\"", `[agents] gives both major "2" and version "2.4.1"`},
		{`major = "2"`, `version = "2.4"`, `[agents] version "2.4" is not an exact version X.Y.Z`},
		{`stores = ["store"]`, `stores = ["store"]` + "\n[compile]\ntimeout = \"soon\"", `[compile] timeout "soon" is not a duration`},
	}
	for _, tt := range tests {
		_, err := ParseConfig([]byte(strings.Replace(good, tt.from, tt.to, 1)))
		if !errors.Is(err, failure.ErrUsage) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConfig with %q = %v, want a usage error containing %q", tt.to, err, tt.want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	example, _ := os.ReadFile("../testdata/example/control/imagebake.toml.in")
	f.Add(example)
	f.Add([]byte("family = \"x\"\narches = [\"amd64\"]\n[base]\nscratch = true\n[agents]\nname = \"a\"\nmajor = \"1\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		for _, a := range c.Arches {
			if _, err := c.BaseFor(a); err != nil {
				t.Fatalf("accepted config has no base for %s", a)
			}
		}
	})
}

//go:build linux

package main

import (
	"archive/tar"
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/internal/s3obj"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/internal/testutil/agentstest"
)

// deriveBase copies the real Debian root file system src into dst with
// its dpkg status rewritten by r: a base for versions the mirror no
// longer serves (or does not serve yet). It returns dst's sha256.
func deriveBase(t *testing.T, src, dst string, r *strings.Replacer) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	tr, tw := tar.NewReader(in), tar.NewWriter(io.MultiWriter(out, h))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if strings.TrimPrefix(hdr.Name, "./") == "var/lib/dpkg/status" {
			body = []byte(r.Replace(string(body)))
			hdr.Size = int64(len(body))
		}
		tw.WriteHeader(hdr)
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	return hex.EncodeToString(h.Sum(nil))
}

// osvDSA is a record in osv.dev's Debian format: a DSA fixing a source
// package on Debian 12, its CVE in "upstream".
func osvDSA(id, cve, pkg, fixed string) string {
	return fmt.Sprintf(`{"schema_version": "1.6.0", "id": %q, "modified": "2026-12-01T00:00:00Z", "published": "2026-12-01T00:00:00Z",
 "upstream": [%q], "summary": "%s - security update",
 "affected": [{"package": {"ecosystem": "Debian:12", "name": %q, "purl": "pkg:deb/debian/%s?arch=source"},
  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": %q}]}]}]}`, id, cve, pkg, pkg, pkg, fixed)
}

// The security story of a release engineer on a real Debian 12 base, with
// OSV records in osv.dev's format, through the commands, on a directory
// store and on S3: 1.0.0, then 1.1.0 (minor); a 1.0 maintenance branch
// with DSA-6001-1 (tar, a new upstream point release: 1.34 -> 1.35) and
// DSA-6002-1 (glibc, a Debian revision), each a SECURITY release with no
// --no-release-check; 1.0.0 revoked; a deploy file's pin moves to the
// replacement 1.0.2, its range stays on 1.0.2 (1.1.0 lacks both fixes);
// 1.1.1 carries them; the audit ends clean.
func TestDSAStory(t *testing.T) {
	src := os.Getenv("IMAGEBAKE_DEBIAN_BASE")
	if src == "" {
		src = filepath.Join(testutil.ModuleRoot(t), ".cache", "debian", "bookworm-essential.tar")
	}
	if _, err := os.Stat(src); err != nil {
		t.Fatalf("a real Debian base is needed: make test builds it (scripts/ensure-debian-base): %v", err)
	}
	bases := t.TempDir()
	const (
		tarOld, tarNew   = "Version: 1.34+dfsg-1.2+deb12u1", "Version: 1.35+dfsg-3~deb12u1"
		libcOld, libcNew = "Version: 2.36-9+deb12u14", "Version: 2.36-9+deb12u15"
	)
	sums := map[string]string{
		"deb-2": deriveBase(t, src, filepath.Join(bases, "deb-2.tar"), strings.NewReplacer(tarOld, tarNew)),
		"deb-3": deriveBase(t, src, filepath.Join(bases, "deb-3.tar"), strings.NewReplacer(tarOld, tarNew, libcOld, libcNew)),
	}
	osvZip := filepath.Join(bases, "all.zip")
	f, _ := os.Create(osvZip)
	zw := zip.NewWriter(f)
	for name, rec := range map[string]string{
		"DSA-6001-1.json": osvDSA("DSA-6001-1", "CVE-2026-1111", "tar", "1.35+dfsg-3~deb12u1"),
		// a record naming its CVE under "related" (some of osv.dev's do)
		"DSA-6002-1.json": strings.Replace(osvDSA("DSA-6002-1", "CVE-2026-2222", "glibc", "2.36-9+deb12u15"), `"upstream"`, `"related"`, 1),
	} {
		w, _ := zw.Create(name)
		w.Write([]byte(rec))
	}
	zw.Close()
	f.Close()
	t.Run("dir", func(t *testing.T) { dsaStory(t, "", src, bases, sums, osvZip) })
	t.Run("s3", func(t *testing.T) {
		testutil.S3(t, "golden").Setenv(t)
		dsaStory(t, "s3://golden/releases", src, bases, sums, osvZip)
	})
}

func dsaStory(t *testing.T, store, src, bases string, sums map[string]string, osvZip string) {
	dir := signingEnv(t)
	if store == "" {
		store = filepath.Join(dir, "store")
	}
	root := t.TempDir()
	ctl := testutil.Example(t, root)
	tools := agentstest.Store(t, filepath.Join(root, "store"))
	agentstest.Publish(t, tools, agents.PublishOptions{Name: "mozagent", Version: "2.4.1", OS: "linux", Arch: "amd64"}, "")
	testutil.Must(t, os.MkdirAll(filepath.Join(root, "base"), 0o755))
	// hard links: imagebake.toml's paths stay inside --context, symlinks
	// out of it are refused
	link := func(from, to string) {
		if err := os.Link(from, to); err != nil {
			b, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			testutil.Must(t, os.WriteFile(to, b, 0o644))
		}
	}
	link(src, filepath.Join(root, "base", "deb-1.tar"))
	for _, n := range []string{"deb-2", "deb-3"} {
		link(filepath.Join(bases, n+".tar"), filepath.Join(root, "base", n+".tar"))
	}
	sum, err := filehash.SHA256(src)
	if err != nil {
		t.Fatal(err)
	}
	sums["deb-1"] = sum
	cli := func(args ...string) (string, error) {
		t.Helper()
		c := newRootCommand()
		var out, errOut strings.Builder
		c.SetOut(&out)
		c.SetErr(&errOut)
		c.SetArgs(append(args, "--quiet"))
		err := c.ExecuteContext(context.Background())
		return out.String() + errOut.String(), err
	}
	cfg := filepath.Join(ctl, "imagebake.toml")
	// a release of the control repo on base, tagged vX.Y.Z
	tag := func(v, base, change string) {
		t.Helper()
		b, _ := os.ReadFile(cfg)
		s := regexp.MustCompile(`(?m)^arches = .*$`).ReplaceAllString(string(b), `arches = ["amd64"]`)
		s = regexp.MustCompile(`(?m)^rootfs = .*$`).ReplaceAllString(s, `rootfs = "base/`+base+`.tar"`)
		s = regexp.MustCompile(`(?m)^sha256 = .*$`).ReplaceAllString(s, `sha256 = "`+sums[base]+`"`)
		testutil.Must(t, os.WriteFile(cfg, []byte(s), 0o644))
		if change != "" {
			testutil.Must(t, os.WriteFile(filepath.Join(ctl, "manifests", "site.pp"), []byte("# "+change+"\nnode default { include role::base }\n"), 0o644))
		}
		testutil.Git(t, ctl, "add", "-A")
		testutil.Git(t, ctl, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "release "+v, "--allow-empty")
		testutil.Git(t, ctl, "tag", "-f", "v"+v) // the example tags v1.0.0 on another base
	}
	release := func(v string, advisories ...string) string {
		t.Helper()
		args := []string{"bake", "--repo", ctl, "--release", v, "--context", root, "--out", filepath.Join(root, "dist"), "--catalog", store}
		for _, a := range advisories {
			args = append(args, "--advisory", a)
		}
		if out, err := cli(args...); err != nil {
			t.Fatalf("bake %s: %v\n%s", v, err, out)
		}
		out, err := cli("publish", filepath.Join(root, "dist", "example-"+v), "--store", store)
		if err != nil {
			t.Fatalf("publish %s: %v\n%s", v, err, out)
		}
		return out
	}

	tag("1.0.0", "deb-1", "")
	release("1.0.0")
	tag("1.1.0", "deb-1", "the 1.1 line")
	release("1.1.0")

	// the 1.0 maintenance branch: DSA-6001-1 ships tar 1.35, a new upstream
	testutil.Git(t, ctl, "checkout", "-q", "-b", "maint-1.0", "v1.0.0")
	tag("1.0.1", "deb-2", "")
	plan, err := cli("release", "plan", "--repo", ctl, "--release-candidate", "v1.0.1", "--previous", "1.0.0", "--catalog", store, "--context", root, "--osv", osvZip, "--advisory", "DSA-6001-1")
	t.Logf("release plan of 1.0.1:\n%s", plan)
	if err != nil || !strings.Contains(plan, "next release: 1.0.1 (SECURITY after 1.0.0)") ||
		!strings.Contains(plan, "package tar: 1.34+dfsg-1.2+deb12u1 -> 1.35+dfsg-3~deb12u1: new upstream version fixing DSA-6001-1 (OSV record "+osvZip+":DSA-6001-1.json): SECURITY") {
		t.Errorf("release plan of the DSA: %v", err)
	}
	pub := release("1.0.1", "DSA-6001-1=tar")
	t.Logf("publish 1.0.1:\n%s", pub)
	tag("1.0.2", "deb-3", "")
	release("1.0.2", "DSA-6002-1=glibc")
	if out, err := cli("catalog", "revoke", "example", "1.0.0", "--store", store, "--reason", "a broken agent", "--replacement", "1.0.2"); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}

	// the audit names what 1.1.0 lacks: one line per advisory
	audit, err := cli("catalog", "audit", "--store", store, "--osv", osvZip)
	t.Logf("catalog audit:\n%s", audit)
	if failure.Code(err) != failure.ExitVerify || !strings.Contains(audit, "example 1.1: cut 1.1.1") ||
		strings.Count(audit, "1.1.0 lacks DSA-6001-1 (CVE-2026-1111)") != 1 || strings.Count(audit, "1.1.0 lacks DSA-6002-1 (CVE-2026-2222)") != 1 {
		t.Errorf("audit before 1.1.1: %v", err)
	}

	// a user's deploy file: a pin on the revoked 1.0.0 and a range on 1.0
	deploy := filepath.Join(dir, "deploy.yaml")
	testutil.Must(t, os.WriteFile(deploy, []byte("catalog: "+store+"\nimages:\n  pinned:\n    image: example\n    version: 1.0.0\n  ranged:\n    image: example\n    version: \"1.0\"\n"), 0o644))
	up, err := cli("upgrade", deploy, "--write")
	t.Logf("upgrade:\n%s", up)
	if err != nil || !strings.Contains(up, "pinned: example 1.0.0 -> 1.0.2") || !strings.Contains(up, "1.1.0 lacks DSA-6001-1, DSA-6002-1, which 1.0 has") {
		t.Errorf("upgrade: %v", err)
	}
	if !strings.Contains(up, deploy+" written") { // on the command's stderr
		t.Errorf("upgrade --write did not say it wrote %s:\n%s", deploy, up)
	}
	check, err := cli("check", deploy)
	t.Logf("check:\n%s", check)
	if err != nil || strings.Contains(check, "1.1.0") || !strings.Contains(check, "2 pass") {
		t.Errorf("check after the upgrade: %v", err)
	}

	// 1.1.1 carries both fixes; the range may move there, the audit is clean
	testutil.Git(t, ctl, "checkout", "-q", "production")
	tag("1.1.1", "deb-3", "")
	release("1.1.1", "DSA-6001-1=tar", "DSA-6002-1=glibc")
	if audit, err := cli("catalog", "audit", "--store", store, "--osv", osvZip); err != nil {
		t.Errorf("audit after 1.1.1: %v\n%s", err, audit)
	}
	up, err = cli("upgrade", deploy)
	t.Logf("upgrade after 1.1.1:\n%s", up)
	if err != nil || !strings.Contains(up, "example 1.0.2 -> 1.1.1") {
		t.Errorf("upgrade after 1.1.1: %v", err)
	}
	if !strings.Contains(up, "(dry run: --write changes the file)") {
		t.Errorf("upgrade without --write did not say it is a dry run:\n%s", up)
	}
	dsaPage(t, cli, store, filepath.Join(root, "page"))
}

// dsaPage checks the catalog page of the DSA story's store: each
// advisory's row names the releases that carry and lack its fix, 1.0.1's
// change is the tar DSA, 1.0.0 is revoked for 1.0.2; publish wrote the
// same page beside a directory store's catalog.
func dsaPage(t *testing.T, cli func(...string) (string, error), store, dir string) {
	t.Helper()
	if out, err := cli("catalog", "page", "--store", store, "--out", dir); err != nil {
		t.Fatalf("catalog page: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	page := html.UnescapeString(string(b)) // html/template writes + as &#43;
	for _, want := range []string{
		`<th scope="row">DSA-6001-1</th><td>1.0.1, 1.1.1</td>`,
		`<td>1.0.1, 1.0.2, 1.1.1</td><td>1.1.0</td></tr>`, // DSA-6001-1: carried by, lacked by
		`<th scope="row">DSA-6002-1</th><td>1.0.2, 1.1.1</td>`,
		`<td>1.0.2, 1.1.1</td><td>1.0.1, 1.1.0</td></tr>`,
		`<li>tar 1.34+dfsg-1.2+deb12u1 → 1.35+dfsg-3~deb12u1</li>`,
		`<td class="level">SECURITY</td>`,
		`<th scope="row">1.0.0</th>`, `<td>a broken agent</td><td>1.0.2</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the catalog page lacks %s", want)
		}
	}
	var published []byte
	if strings.HasPrefix(store, "s3://") {
		bucket, oerr := s3obj.Open(context.Background(), store)
		if oerr != nil {
			t.Fatal(oerr)
		}
		published, _, err = bucket.Get(context.Background(), "catalog/index.html")
	} else {
		published, err = os.ReadFile(filepath.Join(store, "catalog", "index.html"))
	}
	if err != nil || !strings.Contains(string(published), `<th scope="row">1.1.1`) || !strings.Contains(string(published), `<td>a broken agent</td>`) {
		t.Errorf("publish and revoke did not keep the page beside the catalog (1.1.1, the revocation): %v", err)
	}
}

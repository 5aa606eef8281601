package catalog

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

// release writes a release directory with a manifest and one blob.
func release(t *testing.T, version, digest string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "example-"+version)
	testutil.Must(t, os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "blobs", "sha256", "ab"), []byte("blob "+digest), 0o644))
	m := &manifest.Manifest{Family: "example", Release: version, Epoch: 1735732800, Builder: "oci",
		Repo:        manifest.Repo{URL: "file:///r", Tag: "v" + version, Commit: strings.Repeat("c", 40)},
		Puppetfile:  manifest.Puppetfile{SHA256: strings.Repeat("d", 64), Moduledir: "modules", Modules: []lockfile.Module{}},
		IndexDigest: digest,
		Images:      []manifest.Image{{Arch: "amd64", OS: "linux", Name: "example-" + version + "-amd64", Digest: digest, Agent: manifest.Agent{Name: "m", Version: "2.0.0", SHA256: strings.Repeat("e", 64)}}}}
	if !strings.HasSuffix(version, ".0") {
		m.Advisories = []string{"CVE-2026-0001"}
	}
	if err := m.Write(filepath.Join(dir, manifest.FileName)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func keys(t *testing.T) (*signing.Signer, *signing.Keyring, string) {
	t.Helper()
	dir := t.TempDir()
	pub, key, err := signing.Generate(dir, "k", "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.LoadSigner(key, "")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := signing.LoadKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	return s, kr, pub
}

func TestPublishSignedImmutable(t *testing.T) {
	t.Parallel()
	signer, kr, pub := keys(t)
	st := &Store{Root: t.TempDir(), Keys: kr}
	d := "sha256:" + strings.Repeat("1", 64)
	if _, added, err := st.Publish(t.Context(), release(t, "1.0.0", d), signer); err != nil || !added {
		t.Fatalf("Publish = %v, %v", added, err)
	}
	if _, added, err := st.Publish(t.Context(), release(t, "1.0.0", d), signer); err != nil || added {
		t.Errorf("identical re-publish = %v, %v; want a no-op", added, err)
	}
	_, _, err := st.Publish(t.Context(), release(t, "1.0.0", "sha256:"+strings.Repeat("2", 64)), signer)
	if !errors.Is(err, ErrExists) {
		t.Errorf("publishing other content as 1.0.0 = %v, want ErrExists", err)
	}
	if _, _, err := st.Publish(t.Context(), release(t, "1.0.1", "sha256:"+strings.Repeat("3", 64)), signer); err != nil {
		t.Fatal(err)
	}
	c, err := st.Read()
	if err != nil {
		t.Fatal(err)
	}
	f := c.Family("example", false)
	if f == nil || len(f.Releases) != 2 || f.Releases[1].Version != "1.0.1" || !f.Releases[1].Security || f.Releases[0].Security ||
		strings.Join(f.Releases[1].Advisories, ",") != "CVE-2026-0001" || f.Releases[0].Advisories != nil {
		t.Fatalf("catalog = %+v (the security release carries its manifest's advisories)", c)
	}
	// the stock minisign verifies both documents
	if _, err := exec.LookPath("minisign"); err == nil {
		for _, p := range []string{st.Path(), filepath.Join(st.Root, "images", "example-1.0.1", manifest.FileName)} {
			if out, err := exec.Command("minisign", "-V", "-p", pub, "-m", p).CombinedOutput(); err != nil {
				t.Errorf("minisign -V %s: %v\n%s", p, err, out)
			}
		}
	} else {
		t.Error("minisign is not installed (make test installs it)")
	}
	if m, err := st.ReadManifest(t.Context(), "example", "1.0.1"); err != nil || m.Release != "1.0.1" {
		t.Errorf("ReadManifest = %v", err)
	}
	// lifecycle
	_, err = st.Update(t.Context(), signer, func(c *Catalog) error {
		if err := c.SetState("example", "1.0.0", Revoked, "bad base", "1.0.1", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); err != nil {
			return err
		}
		return c.SetEOL("example", 1, time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC), 90)
	})
	if err != nil {
		t.Fatal(err)
	}
	c, _ = st.Read()
	r := c.Family("example", false).Release("1.0.0")
	if r.State != Revoked || r.Replacement != "1.0.1" || r.Reason != "bad base" {
		t.Errorf("after revoke: %+v", r)
	}
	if s, ok := c.Family("example", false).SupportOf(1); !ok || s.NoticeDays != 90 {
		t.Errorf("support = %+v", s)
	}
	if err := c.SetState("example", "1.0.0", Active, "", "", time.Now()); err == nil {
		t.Error("a revoked release was made active again")
	}
}

func TestTamperedOrUntrustedRefused(t *testing.T) {
	t.Parallel()
	signer, kr, _ := keys(t)
	st := &Store{Root: t.TempDir(), Keys: kr}
	if _, _, err := st.Publish(t.Context(), release(t, "1.0.0", "sha256:"+strings.Repeat("1", 64)), signer); err != nil {
		t.Fatal(err)
	}
	// tampered: the file no longer matches its signature
	p, _ := filepath.EvalSymlinks(st.Path())
	b, _ := os.ReadFile(p)
	testutil.Must(t, os.WriteFile(p, []byte(strings.Replace(string(b), `state = "active"`, `state = "deprecated"`, 1)), 0o644))
	_, err := st.Read()
	if !errors.Is(err, signing.ErrUntrusted) || !strings.Contains(err.Error(), "catalog.toml") || !strings.Contains(err.Error(), signer.KeyID()) {
		t.Errorf("reading a tampered catalog = %v, want ErrUntrusted naming the file and key %s", err, signer.KeyID())
	}
	testutil.Must(t, os.WriteFile(p, b, 0o644))
	// untrusted key
	_, other, _ := keys(t)
	_, err = (&Store{Root: st.Root, Keys: other}).Read()
	if !errors.Is(err, signing.ErrUntrusted) || !strings.Contains(err.Error(), "not trusted") || !strings.Contains(err.Error(), signer.KeyID()) {
		t.Errorf("reading with another key = %v", err)
	}
	// unsigned
	testutil.Must(t, os.Remove(p+".minisig"))
	if _, err := st.Read(); !errors.Is(err, signing.ErrUntrusted) || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("reading an unsigned catalog = %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"format = 1\n[[family]]\nname = \"x\"\n[[family.release]]\nversion = \"1.0.0\"\nstate = \"retired\"\nmanifest_digest = \"sha256:" + strings.Repeat("a", 64) + "\"\n",
		"format = 1\n[[family]]\nname = \"x\"\ncolour = 1\n",
		"format = 2\n",
		"format = 1\n[[family]]\nname = \"x\"\n[[family.release]]\nversion = \"1.0\"\nstate = \"active\"\nmanifest_digest = \"sha256:" + strings.Repeat("a", 64) + "\"\n",
	} {
		if _, err := Parse([]byte(src)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", src, err)
		}
	}
}

// TestPublishKilled kills publishers (this test binary, re-executed) at
// random points: the catalog always parses, verifies, and holds the old
// entries and either all or none of the new one.
func TestPublishKilled(t *testing.T) {
	t.Parallel()
	keyDir := t.TempDir()
	pub, key, _ := signing.Generate(keyDir, "k", "")
	signer, _ := signing.LoadSigner(key, "")
	kr, _ := signing.LoadKeyring(pub)
	root := t.TempDir()
	st := &Store{Root: root, Keys: kr}
	if _, _, err := st.Publish(t.Context(), release(t, "1.0.0", "sha256:"+strings.Repeat("1", 64)), signer); err != nil {
		t.Fatal(err)
	}
	helper := func(version string, i int) *exec.Cmd {
		dir := release(t, version, fmt.Sprintf("sha256:%064x", i+10))
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPublish$")
		cmd.Env = append(os.Environ(), "IMAGEBAKE_HELPER=1", "HELPER_ROOT="+root, "HELPER_KEY="+key, "HELPER_PUB="+pub, "HELPER_DIR="+dir)
		return cmd
	}
	// one whole run gives the span the kills are spread over
	start := time.Now()
	if out, err := helper("0.9.0", 99).CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	span := time.Since(start)
	rng := rand.New(rand.NewSource(2))
	// kills are spread over one and a half runs: some publishers finish,
	// most are killed, and some of those mid-publish (after the helper
	// said it started publishing)
	const runs = 25
	completed, midway := 0, 0
	for i := range runs {
		version := fmt.Sprintf("1.0.%d", i+1)
		cmd := helper(version, i)
		started := filepath.Join(t.TempDir(), "started")
		cmd.Env = append(cmd.Env, "HELPER_STARTED="+started)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int63n(int64(span) * 3 / 2)))
		cmd.Process.Kill()
		if cmd.Wait() == nil {
			completed++
		} else if _, err := os.Stat(started); err == nil {
			midway++
		}
		c, err := st.Read()
		if err != nil {
			t.Fatalf("kill %d: catalog unreadable: %v", i, err)
		}
		f := c.Family("example", false)
		if f == nil || f.Release("1.0.0") == nil {
			t.Fatalf("kill %d: lost an old entry", i)
		}
		if r := f.Release(version); r != nil {
			if _, err := st.ReadManifest(t.Context(), "example", version); err != nil {
				t.Fatalf("kill %d: %s is in the catalog but its release is not whole: %v", i, version, err)
			}
		}
	}
	t.Logf("%d of %d publishers finished before the kill, %d were killed mid-publish (span %v)", completed, runs, midway, span)
	if completed == 0 || midway == 0 || completed+midway > runs {
		t.Errorf("the kills did not land both mid-publish and after (%d finished, %d killed mid-publish of %d): the test proved nothing", completed, midway, runs)
	}
	// and publishing still works afterwards
	if _, _, err := st.Publish(t.Context(), release(t, "1.1.0", "sha256:"+strings.Repeat("9", 64)), signer); err != nil {
		t.Fatal(err)
	}
}

func TestHelperPublish(t *testing.T) {
	t.Parallel()
	if os.Getenv("IMAGEBAKE_HELPER") != "1" {
		t.Skip("helper process for TestPublishKilled")
	}
	s, _ := signing.LoadSigner(os.Getenv("HELPER_KEY"), "")
	kr, _ := signing.LoadKeyring(os.Getenv("HELPER_PUB"))
	ctx := context.Background()
	st, err := OpenWriter(ctx, os.Getenv("HELPER_ROOT"), kr, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := os.Getenv("HELPER_STARTED"); f != "" {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, added, err := st.Publish(ctx, os.Getenv("HELPER_DIR"), s)
	if err != nil {
		fmt.Printf("PUBLISH-ERROR %v\n", err)
		t.Fatal(err)
	}
	if s3, ok := st.(*S3Store); ok {
		fmt.Printf("RETRIES %d ADDED %v\n", s3.Retries.Load(), added)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("format = 1\n[[family]]\nname = \"x\"\ngrace_days = 3\n[[family.release]]\nversion = \"1.0.0\"\nstate = \"active\"\nmanifest_digest = \"sha256:" + strings.Repeat("a", 64) + "\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		out, err := c.Encode()
		if err != nil {
			t.Fatalf("a parsed catalog does not encode: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("an encoded catalog does not parse: %v", err)
		}
	})
}

// TestManifestCopiedIntoAnotherRelease: 1.0.0's manifest and signature
// copied into 1.0.1's directory are refused, whether read through the
// store (catalog digest) or as a file (signature subject, directory).
func TestManifestCopiedIntoAnotherRelease(t *testing.T) {
	t.Parallel()
	signer, kr, _ := keys(t)
	st := &Store{Root: t.TempDir(), Keys: kr}
	for i, v := range []string{"1.0.0", "1.0.1"} {
		if _, _, err := st.Publish(t.Context(), release(t, v, "sha256:"+strings.Repeat(fmt.Sprint(i+1), 64)), signer); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"1.0.0", "1.0.1"} {
		m, err := st.ReadManifest(t.Context(), "example", v)
		if err != nil || m.Release != v {
			t.Fatalf("ReadManifest(%s) = %v, %v", v, m, err)
		}
		p := filepath.Join(st.Root, "images", "example-"+v, manifest.FileName)
		if m, err := ReadSignedManifest(p, kr); err != nil || m.Release != v {
			t.Fatalf("ReadSignedManifest(%s) = %v, %v", p, m, err)
		}
	}
	src := filepath.Join(st.Root, "images", "example-1.0.0", manifest.FileName)
	dst := filepath.Join(st.Root, "images", "example-1.0.1", manifest.FileName)
	for _, ext := range []string{"", ".minisig"} {
		b, _ := os.ReadFile(src + ext)
		testutil.Must(t, os.WriteFile(dst+ext, b, 0o644))
	}
	if _, err := st.ReadManifest(t.Context(), "example", "1.0.1"); !errors.Is(err, ErrManifestMismatch) || !strings.Contains(err.Error(), "is not the manifest the catalog") {
		t.Errorf("ReadManifest of a copied manifest = %v, want ErrManifestMismatch", err)
	}
	if _, err := ReadSignedManifest(dst, kr); !errors.Is(err, ErrManifestMismatch) || !strings.Contains(err.Error(), "sits in the directory of example-1.0.1") {
		t.Errorf("ReadSignedManifest of a copied manifest = %v, want ErrManifestMismatch naming the directory", err)
	}
	// a manifest edited to say 1.0.1 keeps 1.0.0's signature subject: refused
	// even where no catalog is consulted (re-signed by the key holder only)
	b, _ := os.ReadFile(src)
	edited := strings.Replace(string(b), `release = "1.0.0"`, `release = "1.0.1"`, 1)
	sig := signer.Sign([]byte(edited), manifest.FileName, ManifestSubject("example", "1.0.0"))
	other := filepath.Join(t.TempDir(), manifest.FileName)
	testutil.Must(t, os.WriteFile(other, []byte(edited), 0o644))
	testutil.Must(t, os.WriteFile(other+".minisig", sig, 0o644))
	if _, err := ReadSignedManifest(other, kr); !errors.Is(err, ErrManifestMismatch) || !strings.Contains(err.Error(), "vouches for family:example release:1.0.0") {
		t.Errorf("ReadSignedManifest with a subject for another release = %v", err)
	}
}

// TestOpenOverHTTP: a catalog served over HTTP is read with its signature,
// a tampered one refused, a missing one reported as not found.
func TestOpenOverHTTP(t *testing.T) {
	t.Parallel()
	st, kr, srv := servedStore(t)
	ctx := context.Background()
	c, err := Open(ctx, srv.URL+"/catalog/catalog.toml", kr, srv.Client(), nil)
	if err != nil || c.Family("example", false) == nil || !strings.HasPrefix(c.Where, srv.URL) {
		t.Fatalf("Open over HTTP = %v, %v", c, err)
	}
	p, _ := filepath.EvalSymlinks(st.Path())
	b, _ := os.ReadFile(p)
	testutil.Must(t, os.WriteFile(p, []byte(strings.Replace(string(b), `state = "active"`, `state = "revoked"`, 1)), 0o644))
	if _, err := Open(ctx, srv.URL+"/catalog/catalog.toml", kr, srv.Client(), nil); !errors.Is(err, signing.ErrUntrusted) {
		t.Errorf("Open of a tampered catalog over HTTP = %v, want ErrUntrusted", err)
	}
	if _, err := Open(ctx, srv.URL+"/nothing/catalog.toml", kr, srv.Client(), nil); !errors.Is(err, failure.ErrNotFound) {
		t.Errorf("Open of a missing catalog over HTTP = %v, want not found", err)
	}
}

// A store's root URL opens as well as its catalog's URL; a server that is
// not a store is "not found", naming the URL looked for.
func TestOpenStoreRootURL(t *testing.T) {
	t.Parallel()
	_, kr, srv := servedStore(t)
	ctx := context.Background()
	if c, err := Open(ctx, srv.URL+"/", kr, srv.Client(), nil); err != nil || c.Family("example", false) == nil {
		t.Errorf("Open of the store root URL = %v", err)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("<html>a web site</html>"))
	}))
	defer other.Close()
	_, err := Open(ctx, other.URL, kr, other.Client(), nil)
	if !errors.Is(err, failure.ErrNotFound) || !strings.Contains(err.Error(), other.URL+"/catalog/catalog.toml") {
		t.Errorf("Open of a web site = %v, want not found naming %s/catalog/catalog.toml", err, other.URL)
	}
}

// Every lifecycle change is kept; a second change keeps the replacement
// it does not name; an end of life needs a release of that major.
func TestLifecycleHistory(t *testing.T) {
	t.Parallel()
	signer, kr, _ := keys(t)
	st := &Store{Root: t.TempDir(), Keys: kr}
	for _, v := range []string{"1.0.0", "1.0.1"} {
		if _, _, err := st.Publish(t.Context(), release(t, v, "sha256:"+strings.Repeat(v[4:], 64)), signer); err != nil {
			t.Fatal(err)
		}
	}
	day := func(d int) time.Time { return time.Date(2026, 5, d, 0, 0, 0, 0, time.UTC) }
	for _, step := range []func(c *Catalog) error{
		func(c *Catalog) error { return c.SetState("example", "1.0.0", Deprecated, "old", "1.0.1", day(1)) },
		func(c *Catalog) error { return c.SetState("example", "1.0.0", Revoked, "CVE-2026-1", "", day(2)) },
		func(c *Catalog) error {
			return c.SetState("example", "1.0.0", Revoked, "CVE-2026-1 and CVE-2026-2", "", day(3))
		},
	} {
		if _, err := st.Update(t.Context(), signer, step); err != nil {
			t.Fatal(err)
		}
	}
	c, err := st.Read()
	if err != nil {
		t.Fatal(err)
	}
	r := c.Family("example", false).Release("1.0.0")
	if len(r.History) != 3 || r.History[0].State != Deprecated || r.History[1].Reason != "CVE-2026-1" || r.Replacement != "1.0.1" || r.Reason != "CVE-2026-1 and CVE-2026-2" {
		t.Errorf("history %+v, replacement %q, reason %q", r.History, r.Replacement, r.Reason)
	}
	if _, err := st.Update(t.Context(), signer, func(c *Catalog) error { return c.SetEOL("example", 2, day(9), 30) }); !errors.Is(err, failure.ErrNotFound) {
		t.Errorf("eol of a major without releases = %v, want not found", err)
	}
}

// servedStore publishes release 1.0.0 of example into a new store and
// serves the store over HTTP until the test ends.
func servedStore(t *testing.T) (*Store, *signing.Keyring, *httptest.Server) {
	t.Helper()
	signer, kr, _ := keys(t)
	st := &Store{Root: t.TempDir(), Keys: kr}
	if _, _, err := st.Publish(t.Context(), release(t, "1.0.0", "sha256:"+strings.Repeat("1", 64)), signer); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(st.Root)))
	t.Cleanup(srv.Close)
	return st, kr, srv
}

// PublishedManifest reads a release's signed manifest from a store by
// path or URL; a release not published gives nil; a manifest swapped on
// the server for another one is refused.
func TestPublishedManifest(t *testing.T) {
	t.Parallel()
	st, kr, srv := servedStore(t)
	ctx := context.Background()
	for _, src := range []string{st.Root, st.Path(), srv.URL, srv.URL + "/catalog/catalog.toml"} {
		m, err := PublishedManifest(ctx, src, "example", "1.0.0", kr, srv.Client(), nil)
		if err != nil || m == nil || m.Release != "1.0.0" {
			t.Errorf("PublishedManifest(%s) = %v, %v", src, m, err)
		}
		if m, err := PublishedManifest(ctx, src, "example", "9.9.9", kr, srv.Client(), nil); m != nil || err != nil {
			t.Errorf("PublishedManifest(%s) of an unpublished release = %v, %v; want nil, nil", src, m, err)
		}
	}
	p := filepath.Join(st.Root, "images", "example-1.0.0", manifest.FileName)
	b, _ := os.ReadFile(p)
	testutil.Must(t, os.WriteFile(p, append(b, '\n'), 0o644))
	if _, err := PublishedManifest(ctx, srv.URL, "example", "1.0.0", kr, srv.Client(), nil); !errors.Is(err, signing.ErrUntrusted) {
		t.Errorf("PublishedManifest of a changed manifest over HTTP = %v, want untrusted", err)
	}
}

// The serials seen are kept per location and key: a lower serial at the
// same place signed by the same key is refused, another key or another
// location starts afresh, and a damaged memory is reported, not ignored.
func TestGuardSerials(t *testing.T) {
	t.Parallel()
	g := &Guard{State: filepath.Join(t.TempDir(), "cache", StateFile)}
	at := func(n uint64) *Catalog { return &Catalog{Format: Format, Serial: n} }
	if err := g.Serial("https://a/catalog.toml", "K1", at(5)); err != nil {
		t.Fatal(err)
	}
	err := g.Serial("https://a/catalog.toml", "K1", at(4))
	if !errors.Is(err, ErrRollback) || failure.Code(err) != failure.ExitVerify || !strings.Contains(err.Error(), "has serial 4, but serial 5") {
		t.Errorf("a lower serial = %v, want ErrRollback naming 4 and 5", err)
	}
	for _, ok := range []struct{ where, key string }{{"https://a/catalog.toml", "K2"}, {"https://b/catalog.toml", "K1"}, {"https://a/catalog.toml", "K1"}} {
		if err := g.Serial(ok.where, ok.key, at(5)); err != nil {
			t.Errorf("serial 5 at %s by %s: %v", ok.where, ok.key, err)
		}
	}
	testutil.Must(t, os.WriteFile(g.State, []byte("{not json"), 0o644))
	if err := g.Serial("https://a/catalog.toml", "K1", at(6)); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), g.State) {
		t.Errorf("a damaged serials file = %v, want a usage error naming it", err)
	}
}

// Every write raises the serial; a write that changes nothing writes
// nothing; Refresh raises it once and sets the expiry.
func TestSerialGrowsWithEveryWrite(t *testing.T) {
	t.Parallel()
	signer, kr, _ := keys(t)
	st := &Store{Root: t.TempDir(), Keys: kr}
	ctx := t.Context()
	for _, v := range []string{"1.0.0", "1.0.0", "1.1.0"} {
		if _, _, err := st.Publish(ctx, release(t, v, "sha256:"+strings.Repeat(v[2:3], 64)), signer); err != nil {
			t.Fatal(err)
		}
	}
	c, err := st.Read()
	if err != nil || c.Serial != 2 {
		t.Fatalf("after two releases (and one identical re-publish) serial = %d, %v; want 2", c.Serial, err)
	}
	exp := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err = st.Update(ctx, signer, func(c *Catalog) error { return c.Refresh(exp, 3, false, time.Now()) })
	if err != nil || c.Serial != 3 || !c.Expires.Equal(exp) || c.ExpiryNoticeDays != 3 {
		t.Fatalf("Refresh: serial %d expires %v notice %d, %v", c.Serial, c.Expires, c.ExpiryNoticeDays, err)
	}
	if c, err = st.Read(); err != nil || c.Serial != 3 || !c.Expires.Equal(exp) {
		t.Fatalf("re-read after Refresh: %+v, %v", c, err)
	}
}

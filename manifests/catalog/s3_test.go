//go:build linux

package catalog

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/signing"
)

func s3Store(t *testing.T, kr *signing.Keyring) (*S3Store, *testutil.S3Server) {
	t.Helper()
	srv := testutil.S3(t, "releases")
	srv.Setenv(t)
	w, err := OpenWriter(t.Context(), "s3://releases/golden", kr, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w.(*S3Store), srv
}

// An S3 store behaves as a directory store does: publish, identical
// re-publish is a no-op, other content under a version is refused,
// manifests read back checked, lifecycle changes signed.
func TestS3StorePublish(t *testing.T) {
	signer, kr, _ := keys(t)
	st, srv := s3Store(t, kr)
	ctx := t.Context()
	if _, err := Open(ctx, "s3://releases/golden", kr, nil, nil); !errors.Is(err, failure.ErrNotFound) {
		t.Fatalf("Open of an empty S3 store = %v, want not found", err)
	}
	d := "sha256:" + strings.Repeat("1", 64)
	if _, added, err := st.Publish(ctx, release(t, "1.0.0", d), signer); err != nil || !added {
		t.Fatalf("first publish: added %v, %v", added, err)
	}
	if _, added, err := st.Publish(ctx, release(t, "1.0.0", d), signer); err != nil || added {
		t.Fatalf("identical re-publish: added %v, %v", added, err)
	}
	_, _, err := st.Publish(ctx, release(t, "1.0.0", "sha256:"+strings.Repeat("2", 64)), signer)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "s3://releases/golden/catalog/catalog.toml") {
		t.Fatalf("other content under 1.0.0 = %v, want ErrExists naming the catalog", err)
	}
	if _, _, err := st.Publish(ctx, release(t, "1.0.1", "sha256:"+strings.Repeat("3", 64)), signer); err != nil {
		t.Fatal(err)
	}
	// the files sit where a directory store has them
	for _, f := range []string{"catalog/catalog.toml", "catalog/catalog.toml.minisig", "images/example-1.0.1/manifest.toml", "images/example-1.0.1/manifest.toml.minisig", "images/example-1.0.1/blobs/sha256/ab"} {
		if _, err := os.Stat(srv.Dir + "/releases/golden/" + f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	o, err := Open(ctx, "s3://releases/golden", kr, nil, nil)
	if err != nil || len(o.Family("example", false).Releases) != 2 {
		t.Fatalf("Open = %v, %v", o, err)
	}
	if m, err := o.Manifest(ctx, "example", "1.0.1"); err != nil || m.Release != "1.0.1" {
		t.Fatalf("Manifest(1.0.1) = %v, %v", m, err)
	}
	if _, err := st.Update(ctx, signer, func(c *Catalog) error {
		return c.SetState("example", "1.0.0", Revoked, "broken", "1.0.1", time.Date(2026, 5, 3, 0, 0, 0, 0, time.UTC))
	}); err != nil {
		t.Fatal(err)
	}
	c, err := st.Read(ctx)
	if err != nil || c.Family("example", false).Release("1.0.0").State != Revoked {
		t.Fatalf("after revoke: %v", err)
	}
	// a catalog changed in the bucket is refused by readers
	p := srv.Dir + "/releases/golden/catalog/catalog.toml"
	b, _ := os.ReadFile(p)
	testutil.Must(t, os.WriteFile(p, []byte(strings.Replace(string(b), `state = "revoked"`, `state = "active"`, 1)), 0o644))
	if _, err := Open(ctx, "s3://releases/golden", kr, nil, nil); !errors.Is(err, signing.ErrUntrusted) {
		t.Errorf("Open of a catalog changed in the bucket = %v, want ErrUntrusted", err)
	}
}

// Publishers race as real processes, each with its own client: 8 distinct
// versions all land; two publishers of one version with other content:
// exactly one wins; two with identical content: both succeed. A reader
// polling meanwhile never sees a release the catalog names but whose
// files are not all there.
func TestS3ConcurrentPublishers(t *testing.T) {
	keyDir := t.TempDir()
	pub, key, _ := signing.Generate(keyDir, "k", "")
	kr, _ := signing.LoadKeyring(pub)
	st, srv := s3Store(t, kr)
	ctx := t.Context()
	run := func(dir string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPublish$", "-test.v")
		cmd.Env = append(append(os.Environ(), srv.Environ()...), "IMAGEBAKE_HELPER=1", "HELPER_ROOT=s3://releases/golden", "HELPER_KEY="+key, "HELPER_PUB="+pub, "HELPER_DIR="+dir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	type result struct {
		out string
		err error
	}
	race := func(dirs []string) []result {
		res := make([]result, len(dirs))
		var wg sync.WaitGroup
		for i, d := range dirs {
			wg.Add(1)
			go func() { defer wg.Done(); res[i].out, res[i].err = run(d) }()
		}
		wg.Wait()
		return res
	}
	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() { // a reader that checks every release it is shown
		seen := 0
		for {
			select {
			case <-stop:
				if seen == 0 {
					readerDone <- errors.New("the reader never read a catalog")
					return
				}
				readerDone <- nil
				return
			default:
			}
			o, err := Open(ctx, "s3://releases/golden", kr, nil, nil)
			if errors.Is(err, failure.ErrNotFound) || (err != nil && strings.Contains(err.Error(), "no catalog")) {
				continue
			}
			if err != nil {
				readerDone <- fmt.Errorf("reader: %w", err)
				return
			}
			seen++
			for _, f := range o.Families {
				for _, r := range f.Releases {
					if _, err := o.Manifest(ctx, f.Name, r.Version); err != nil {
						readerDone <- fmt.Errorf("reader: %s is in the catalog, but: %w", r.Version, err)
						return
					}
					blob := "images/" + f.Name + "-" + r.Version + "/blobs/sha256/ab"
					if _, err := st.B.Head(ctx, blob); err != nil {
						readerDone <- fmt.Errorf("reader: %s is in the catalog, but: %w", r.Version, err)
						return
					}
				}
			}
		}
	}()

	var dirs []string
	for i := range 8 {
		dirs = append(dirs, release(t, fmt.Sprintf("2.%d.0", i), fmt.Sprintf("sha256:%064x", i+1)))
	}
	retries := 0
	for i, r := range race(dirs) {
		if r.err != nil {
			t.Fatalf("publisher %d: %v\n%s", i, r.err, r.out)
		}
		m := regexp.MustCompile(`RETRIES (\d+)`).FindStringSubmatch(r.out)
		if m == nil {
			t.Fatalf("publisher %d said no retry count:\n%s", i, r.out)
		}
		n, _ := strconv.Atoi(m[1])
		retries += n
	}
	t.Logf("8 concurrent publishers of distinct versions: all landed, %d compare-and-swap retries in all", retries)
	c, err := st.Read(ctx)
	if err != nil || len(c.Family("example", false).Releases) != 8 {
		t.Fatalf("after 8 publishers the catalog holds %v (%v)", c, err)
	}

	// one version, other content, two at once: exactly one wins
	res := race([]string{release(t, "3.0.0", "sha256:"+strings.Repeat("a", 64)), release(t, "3.0.0", "sha256:"+strings.Repeat("b", 64))})
	wins := 0
	for _, r := range res {
		switch {
		case r.err == nil:
			wins++
		case !strings.Contains(r.out, "PUBLISH-ERROR") || !(strings.Contains(r.out, "immutable") || strings.Contains(r.out, "another publisher")):
			t.Errorf("the loser's error does not say why:\n%s", r.out)
		}
	}
	if wins != 1 {
		t.Fatalf("two publishers of 3.0.0 with other content: %d won, want exactly 1\n%s\n%s", wins, res[0].out, res[1].out)
	}
	// identical content, two at once: both succeed, one adds it
	same := release(t, "3.1.0", "sha256:"+strings.Repeat("c", 64))
	added := 0
	for _, r := range race([]string{same, same}) {
		if r.err != nil {
			t.Fatalf("identical publisher failed: %v\n%s", r.err, r.out)
		}
		if strings.Contains(r.out, "ADDED true") {
			added++
		}
	}
	if added != 1 {
		t.Errorf("two identical publishers: %d said they added the release, want 1", added)
	}
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatal(err)
	}
	if c, err = st.Read(ctx); err != nil || len(c.Family("example", false).Releases) != 10 {
		t.Fatalf("the catalog ends with %v releases (%v), want 10", c, err)
	}
	// the copy of the signature plain HTTP readers take matches the catalog
	data, _, _ := st.B.Get(ctx, catalogKey)
	sig, _, _ := st.B.Get(ctx, catalogKey+".minisig")
	if err := kr.Verify("catalog.toml", data, sig); err != nil {
		t.Errorf("catalog.toml.minisig after the races: %v", err)
	}
}

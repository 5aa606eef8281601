//go:build linux

package agents

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/testutil"
)

func s3Store(t *testing.T) (*S3Store, *testutil.S3Server) {
	t.Helper()
	srv := testutil.S3(t, "agents")
	srv.Setenv(t)
	st, err := NewStore("s3://agents/mirror", nil)
	if err != nil {
		t.Fatal(err)
	}
	return st.(*S3Store), srv
}

func agentDir(t *testing.T, content string) string {
	t.Helper()
	src := t.TempDir()
	testutil.Must(t, os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(src, "bin", "mozagent"), []byte(content), 0o755))
	return src
}

// An S3 store takes publishes (immutable, identical re-publish a no-op),
// many at once, withdrawals and syncs, and is selected from and fetched
// from like any store.
func TestS3AgentStore(t *testing.T) {
	st, srv := s3Store(t)
	o := PublishOptions{Name: "mozagent", Version: "2.4.0", OS: "linux", Arch: "amd64"}
	if _, err := st.Index(ctx); !errors.Is(err, ErrNoIndex) || !strings.Contains(err.Error(), "s3://agents/mirror/tools/index.json") {
		t.Fatalf("Index of an empty S3 store = %v", err)
	}
	_, added, err := PublishS3(ctx, st, agentDir(t, "v1"), o)
	if err != nil || !added {
		t.Fatalf("publish: %v, added %v", err, added)
	}
	if _, added, err := PublishS3(ctx, st, agentDir(t, "v1"), o); err != nil || added {
		t.Fatalf("identical re-publish: %v, added %v", err, added)
	}
	if _, _, err := PublishS3(ctx, st, agentDir(t, "other"), o); !errors.Is(err, ErrExists) {
		t.Fatalf("other content under 2.4.0 = %v, want ErrExists", err)
	}

	// 8 publishers of distinct versions at once, each with its own client
	var wg sync.WaitGroup
	errs := make([]error, 8)
	var retries int64
	var mu sync.Mutex
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own, err := NewS3Store(ctx, "s3://agents/mirror")
			if err == nil {
				_, _, err = PublishS3(ctx, own, agentDir(t, fmt.Sprint("v", i)), PublishOptions{Name: "mozagent", Version: fmt.Sprintf("2.5.%d", i), OS: "linux", Arch: "arm64"})
			}
			errs[i] = err
			mu.Lock()
			retries += own.Retries.Load()
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("8 concurrent agent publishers: all landed, %d index retries", retries)
	ix, err := st.Index(ctx)
	if err != nil || len(ix.Agents) != 9 {
		t.Fatalf("index after 9 publishes holds %d entries (%v)", len(ix.Agents), err)
	}

	// selected and fetched through a chain, verified
	s, err := NewChain(st).Select(ctx, Query{Name: "mozagent", Want: "2", OS: "linux", Arch: "arm64"})
	if err != nil || s.Version != "2.5.7" {
		t.Fatalf("Select = %+v, %v", s, err)
	}
	p, err := Fetch(ctx, s, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyFile(p, s.Entry, p); err != nil {
		t.Fatal(err)
	}

	// withdraw; selection skips it
	if _, err := WithdrawS3(ctx, st, "mozagent", "2.5.7", "linux", "arm64", "broken upload", time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if s, err := NewChain(st).Select(ctx, Query{Name: "mozagent", Want: "2", OS: "linux", Arch: "arm64"}); err != nil || s.Version != "2.5.6" {
		t.Fatalf("Select after withdrawing 2.5.7 = %v, %v", s.Version, err)
	}

	empty, _ := NewS3Store(ctx, "s3://agents/empty")
	if _, err := WithdrawS3(ctx, empty, "mozagent", "2.5.7", "linux", "arm64", "r", time.Unix(0, 0)); !errors.Is(err, ErrNoIndex) || !strings.Contains(err.Error(), "s3://agents/empty/tools/index.json") {
		t.Errorf("withdraw from a store without an index = %v, want ErrNoIndex naming it", err)
	}

	// sync S3 -> directory, and directory -> another S3 prefix, twice
	dir := newDir(t)
	if rep, err := Sync(ctx, st, dir, SyncOptions{}); err != nil || len(rep.Fetched) != 9 {
		t.Fatalf("Sync from S3 = %+v, %v", rep, err)
	}
	other, err := NewS3Store(ctx, "s3://agents/copy")
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := SyncS3(ctx, dir, other, SyncOptions{Arches: []string{"arm64"}}); err != nil || len(rep.Fetched) != 8 {
		t.Fatalf("Sync into S3 = %+v, %v", rep, err)
	}
	if rep, err := SyncS3(ctx, dir, other, SyncOptions{Arches: []string{"arm64"}}); err != nil || len(rep.Fetched) != 0 || len(rep.Skipped) != 8 {
		t.Fatalf("second Sync into S3 = %+v, %v", rep, err)
	}
	if ix, err := other.Index(ctx); err != nil || len(ix.Agents) != 8 {
		t.Fatalf("synced index: %v", err)
	}

	// a tarball changed in the bucket is refused when fetched
	f := filepath.Join(srv.Dir, "agents", "mirror", "tools", s.Path)
	b, _ := os.ReadFile(f)
	b[len(b)-1] ^= 0xff
	testutil.Must(t, os.WriteFile(f, b, 0o644))
	if _, err := Fetch(ctx, s, t.TempDir()); !errors.Is(err, ErrChecksum) {
		t.Errorf("Fetch of a tarball changed in the bucket = %v, want ErrChecksum", err)
	}
}

//go:build linux

package catalog

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

// neighbour is a number check as publish makes it: the release just below
// 1.2.0 must be the one it was checked against, 1.0.0.
func neighbour(seen *[]string) func(*Catalog) error {
	return func(c *Catalog) error {
		now := ""
		if p := c.Family("example", false).Previous("1.2.0"); p != nil {
			now = p.Version
		}
		*seen = append(*seen, now)
		if now != "1.0.0" {
			return fmt.Errorf("checked against 1.0.0, the catalog now has %s below it", now)
		}
		return nil
	}
}

// Two publishers race: 1.2.0's number was checked against 1.0.0 on the
// catalog read before, and 1.1.0 is published in between. The check
// Publish runs under the store's lock (inside the S3 compare-and-swap)
// sees 1.1.0 and refuses 1.2.0, which is not listed.
func TestPublishCheckSeesARacingPublish(t *testing.T) {
	signer, kr, _ := keys(t)
	ctx := context.Background()
	t.Run("directory store", func(t *testing.T) {
		st := &Store{Root: t.TempDir(), Keys: kr}
		base := randomLayer(t, 1<<10)
		for _, v := range []string{"1.0.0", "1.1.0"} {
			if _, _, err := st.Publish(ctx, layoutRelease(t, v, base), signer); err != nil {
				t.Fatal(err)
			}
		}
		var seen []string
		_, _, err := st.Publish(ctx, layoutRelease(t, "1.2.0", base), signer, WithCheck(neighbour(&seen)))
		if err == nil || len(seen) == 0 || seen[0] != "1.1.0" {
			t.Fatalf("publish of 1.2.0 checked against 1.0.0, 1.1.0 published meanwhile = %v (the check saw %v)", err, seen)
		}
		if c, _ := st.Read(); c.Family("example", false).Release("1.2.0") != nil {
			t.Error("1.2.0 was listed")
		}
	})
	t.Run("S3 store", func(t *testing.T) {
		testutil.S3(t, "store").Setenv(t)
		w, err := OpenWriter(ctx, "s3://store/releases", kr, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		s3s := w.(*S3Store)
		base := randomLayer(t, 1<<10)
		if _, _, err := s3s.Publish(ctx, layoutRelease(t, "1.0.0", base), signer); err != nil {
			t.Fatal(err)
		}
		// 1.1.0 lands while 1.2.0 uploads: after 1.2.0 read the catalog
		var racer error
		s3s.afterUpload = func() {
			s3s.afterUpload = nil
			_, _, racer = s3s.Publish(ctx, layoutRelease(t, "1.1.0", base), signer)
		}
		var seen []string
		_, _, err = s3s.Publish(ctx, layoutRelease(t, "1.2.0", base), signer, WithCheck(neighbour(&seen)))
		if racer != nil {
			t.Fatal(racer)
		}
		if err == nil || errors.Is(err, ErrExists) || len(seen) == 0 || seen[len(seen)-1] != "1.1.0" {
			t.Fatalf("publish of 1.2.0 with 1.1.0 published during its upload = %v (the check saw %v)", err, seen)
		}
		if c, _ := s3s.Read(ctx); c.Family("example", false).Release("1.2.0") != nil {
			t.Error("1.2.0 was listed")
		}
	})
}

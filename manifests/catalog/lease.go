package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
)

// Leases on an S3 store, as restic locks its repositories: a publish or a
// migrate holds a shared lease, a gc an exclusive one, each an object
// under locks/ that its holder refreshes while it works. A holder writes
// its lease first and then lists the others; a gc that finds any other
// live lease, or a publish that finds a gc's, removes its own and stops.
// Two that start together both see each other, so a gc never runs while a
// publish reuses pool blobs it would otherwise delete (a blob found in the
// pool keeps its old age). A lease not refreshed for LeaseStale (by the
// store's own clock: the ages are the objects' LastModified) is a killed
// holder's and is passed over; a gc removes it.

// LeaseDir holds the leases, relative to a store's root.
const LeaseDir = "locks/"

// LeaseStale is how long a lease goes unrefreshed before it is taken for
// a killed holder's.
const LeaseStale = 10 * time.Minute

// leaseRefresh is how often a holder refreshes its lease.
var leaseRefresh = 2 * time.Minute

// ErrLeased marks a store another publish or gc is working on.
var ErrLeased = errors.New("the store is in use")

type leaseBody struct {
	Kind string `json:"kind"` // "shared" or "exclusive"
	What string `json:"what"` // "publish example-1.2.0", "gc", "migrate"
	Host string `json:"host"`
	PID  int    `json:"pid"`
}

// lease is one held lease.
type lease struct {
	s    *S3Store
	key  string
	stop chan struct{}
	wg   sync.WaitGroup
}

// takeLease writes a lease (exclusive for a gc) and checks the others.
func (s *S3Store) takeLease(ctx context.Context, exclusive bool, what string) (*lease, error) {
	kind := "shared"
	if exclusive {
		kind = "exclusive"
	}
	host, _ := os.Hostname()
	body, _ := json.Marshal(leaseBody{Kind: kind, What: what, Host: host, PID: os.Getpid()})
	rb := make([]byte, 8)
	rand.Read(rb)
	key := LeaseDir + kind + "-" + hex.EncodeToString(rb) + ".json"
	if err := s.B.CreateBytes(ctx, key, body); err != nil {
		return nil, fmt.Errorf("taking a lease on %s: %w", s.B.Root(), err)
	}
	l := &lease{s: s, key: key, stop: make(chan struct{})}
	if err := s.checkLeases(ctx, l, exclusive, what); err != nil {
		s.B.Delete(context.WithoutCancel(ctx), key)
		return nil, err
	}
	l.wg.Add(1)
	go func() {
		defer failure.Crash()
		defer l.wg.Done()
		t := time.NewTicker(leaseRefresh)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				s.B.Put(ctx, key, body) // a failed refresh is retried at the next tick
			}
		}
	}()
	return l, nil
}

// checkLeases looks at every lease but l's: any live one stops an
// exclusive holder, a live exclusive one stops a shared holder. A gc
// (exclusive) removes stale ones.
func (s *S3Store) checkLeases(ctx context.Context, l *lease, exclusive bool, what string) error {
	objs, err := s.B.List(ctx, LeaseDir)
	if err != nil {
		return fmt.Errorf("listing the leases of %s: %w", s.B.Root(), err)
	}
	var now time.Time
	for _, o := range objs {
		if o.Key == l.key {
			now = o.Modified // the store's clock
		}
	}
	if now.IsZero() {
		return fmt.Errorf("taking a lease on %s: the lease %s written just now is not listed", s.B.Root(), s.B.URL(l.key))
	}
	var held []string
	for _, o := range objs {
		if o.Key == l.key || !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		age := now.Sub(o.Modified)
		if age > LeaseStale {
			if exclusive {
				s.B.Delete(ctx, o.Key)
			}
			continue
		}
		other := strings.HasPrefix(strings.TrimPrefix(o.Key, LeaseDir), "exclusive-")
		if !exclusive && !other {
			continue
		}
		desc := "another holder"
		if b, _, err := s.B.Get(ctx, o.Key); err == nil {
			var lb leaseBody
			if json.Unmarshal(b, &lb) == nil {
				desc = fmt.Sprintf("%q on host %q, pid %d", lb.What, lb.Host, lb.PID)
			}
		}
		held = append(held, fmt.Sprintf("%s (%s, refreshed %s ago)", s.B.URL(o.Key), desc, age.Round(time.Second)))
	}
	if len(held) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s cannot start on %s while it is held:\n  %s\nrun it again when that ends (a lease not refreshed for %s is a killed holder's, and is passed over; a gc removes it)",
		ErrLeased, what, s.B.Root(), strings.Join(held, "\n  "), LeaseStale)
}

// release removes the lease.
func (l *lease) release(ctx context.Context) {
	close(l.stop)
	l.wg.Wait()
	l.s.B.Delete(context.WithoutCancel(ctx), l.key)
}

package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
)

// A signature alone does not stop an old catalog: a copy made before a
// release was revoked is still validly signed. As update frameworks do
// (TUF's snapshot and timestamp roles), every catalog carries a serial
// that grows with each write, and may carry an expiry time:
//
//   - a reader remembers the highest serial it has seen for each catalog
//     location and signing key (Guard.State, a small JSON file in the
//     cache directory) and refuses a lower one (ErrRollback);
//   - a reader refuses a catalog past its expiry (ErrExpired): a mirror
//     frozen at an old copy cannot hide newer revocations for longer than
//     the publisher allows; within the notice window before it, readers
//     are warned. `catalog refresh` re-signs with a new serial and expiry.

// ErrRollback marks a catalog older than one seen before at its location.
var ErrRollback = fmt.Errorf("catalog rolled back: %w", failure.ErrVerify)

// ErrExpired marks a catalog read after its expiry time.
var ErrExpired = fmt.Errorf("catalog expired: %w", failure.ErrVerify)

// DefaultExpiryNoticeDays is the notice window of a catalog that sets none.
const DefaultExpiryNoticeDays = 7

// StateFile is the name of the serials file in imagebake's cache directory.
const StateFile = "catalog-serials.json"

// Guard checks catalogs against rollback and expiry. A nil Guard
// remembers nothing and judges expiry by the clock.
type Guard struct {
	// State is the file the highest serials seen are kept in; "" keeps
	// none.
	State string
	// Now is the time expiry is judged at; zero means the clock.
	Now time.Time
}

type seenSerials struct {
	// Catalogs maps a catalog's location to the highest serial seen
	// there, per signing key ID.
	Catalogs map[string]map[string]uint64 `json:"catalogs"`
}

func (g *Guard) now() time.Time {
	if g == nil || g.Now.IsZero() {
		return time.Now()
	}
	return g.Now
}

// Serial checks c, read from where and signed by keyID, against the
// highest serial seen there and remembers its serial when it is higher.
func (g *Guard) Serial(where, keyID string, c *Catalog) error {
	if g == nil || g.State == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(g.State), 0o755); err != nil {
		return fmt.Errorf("catalog serials: %w", err)
	}
	lf, err := flock.Lock(g.State + ".lock")
	if err != nil {
		return err
	}
	defer lf.Close()
	st := seenSerials{Catalogs: map[string]map[string]uint64{}}
	data, err := os.ReadFile(g.State)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("catalog serials: %w", err)
	default:
		if err := json.Unmarshal(data, &st); err != nil || st.Catalogs == nil {
			// the memory is damaged: say so rather than forget silently
			return fmt.Errorf("%w: %s (the serials of the catalogs seen) is not readable: %v; remove it to start afresh", failure.ErrUsage, g.State, err)
		}
	}
	seen := st.Catalogs[where][keyID]
	switch {
	case c.Serial < seen:
		return fmt.Errorf("%w: %s has serial %d, but serial %d signed by the same key (%s) was read there before: it was replaced by an older copy, which may hide a revocation or a newer release. "+
			"Ask the publisher; if the store was rebuilt on purpose, remove its line from %s",
			ErrRollback, where, c.Serial, seen, keyID, g.State)
	case c.Serial == seen:
		return nil
	}
	if st.Catalogs[where] == nil {
		st.Catalogs[where] = map[string]uint64{}
	}
	st.Catalogs[where][keyID] = c.Serial
	out, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(g.State, append(out, '\n'), 0o644)
}

// Expiry refuses c, read from where, past its expiry time, and returns a
// notice within its notice window ("" otherwise).
func (g *Guard) Expiry(where string, c *Catalog) (string, error) {
	if c.Expires.IsZero() {
		return "", nil
	}
	now := g.now()
	if !now.Before(c.Expires) {
		return "", fmt.Errorf("%w: %s expired on %s (serial %d): a catalog past its expiry may be a frozen copy hiding newer revocations; its publisher re-signs it with `imagebake catalog refresh --store STORE --expires DATE`",
			ErrExpired, where, c.Expires.Format(time.RFC3339), c.Serial)
	}
	days := c.ExpiryNoticeDays
	if days == 0 {
		days = DefaultExpiryNoticeDays
	}
	if left := c.Expires.Sub(now); left < time.Duration(days)*24*time.Hour {
		return fmt.Sprintf("warning: %s expires on %s (in %s); after that it is refused until its publisher runs `imagebake catalog refresh`",
			where, c.Expires.Format(time.RFC3339), humanDays(left)), nil
	}
	return "", nil
}

func humanDays(d time.Duration) string {
	if d < 24*time.Hour {
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// Refresh gives c a new serial and, unless expires is zero, a new expiry:
// what `catalog refresh` signs. clear drops the expiry.
func (c *Catalog) Refresh(expires time.Time, noticeDays int, clear bool, now time.Time) error {
	switch {
	case clear:
		c.Expires, c.ExpiryNoticeDays = time.Time{}, 0
	case !expires.IsZero():
		if !expires.After(now) {
			return fmt.Errorf("%w: --expires %s is not in the future", failure.ErrUsage, expires.Format(time.RFC3339))
		}
		c.Expires, c.ExpiryNoticeDays = expires.UTC(), noticeDays
	}
	c.Serial++
	return nil
}

// apply runs change on c and gives c the serial of its next write unless
// change set one (Refresh): the serial grows with every write. It says
// whether c needs writing: a change that changed nothing writes nothing.
func apply(c *Catalog, change func(*Catalog) error) (bool, error) {
	before, err := c.Encode()
	if err != nil {
		return false, err
	}
	serial := c.Serial
	if err := change(c); err != nil {
		return false, err
	}
	if c.Serial != serial {
		return true, nil
	}
	after, err := c.Encode()
	if err != nil {
		return false, err
	}
	if string(after) == string(before) {
		return false, nil
	}
	c.Serial = serial + 1
	return true, nil
}

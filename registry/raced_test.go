package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// The waits between the attempts of a raced write end at Ctrl-C: a
// cancelled push makes one attempt, not four with sleeps between.
func TestRacedHonoursCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	err := raced(ctx, func() error {
		calls++
		return &transport.Error{Errors: []transport.Diagnostic{{Code: transport.DigestInvalidErrorCode}}}
	})
	if calls != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("raced after cancel: %d attempts, %v; want 1 and context.Canceled", calls, err)
	}
	calls = 0
	err = raced(context.Background(), func() error {
		calls++
		return &transport.Error{Errors: []transport.Diagnostic{{Code: transport.DigestInvalidErrorCode}}}
	})
	if calls != raceAttempts || err == nil {
		t.Errorf("raced without cancel: %d attempts, %v", calls, err)
	}
}

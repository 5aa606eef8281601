//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"runtime"
)

// Run needs Linux: bubblewrap and its namespaces exist nowhere else.
func Run(_ context.Context, _ Spec) (Result, error) {
	return Result{}, fmt.Errorf("%w: the sandbox needs Linux (bubblewrap), not %s", ErrUnavailable, runtime.GOOS)
}

// Reachable is never true off Linux: there is no sandbox to reach.
func Reachable(string) error { return fmt.Errorf("%w: the sandbox needs Linux", ErrUnavailable) }

// TasksOf counts nothing off Linux (no /proc).
func TasksOf(int) int { return 0 }

// Package failure holds the few error classes that change how imagebake exits.
//
// Packages wrap these sentinels (directly or through their own, more specific
// sentinels) so that cmd/imagebake can map any error to a documented exit code
// with errors.Is, in one place.
package failure

import "errors"

var (
	// ErrUsage marks a command line or input file that cannot be understood:
	// a bad flag, a Puppetfile outside the supported subset.
	ErrUsage = errors.New("usage error")
	// ErrNotFound marks something wanted that no source had: a tag, a module
	// version, agent binaries for an arch.
	ErrNotFound = errors.New("not found")
	// ErrVerify marks content that does not match what was recorded: a stale
	// lock, a moved tag, a checksum mismatch.
	ErrVerify = errors.New("verification failed")
)

// Exit codes, documented in the README. One switch maps errors to them.
const (
	ExitOK       = 0
	ExitError    = 1 // anything not classified below (I/O, network, ...)
	ExitUsage    = 2
	ExitNotFound = 3
	ExitVerify   = 4
	ExitInternal = 5 // a bug: a panic recovered at the top
)

// Code returns the exit code for err.
func Code(err error) int {
	var w worst
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &w):
		code := ExitOK
		for _, e := range w {
			code = max(code, Code(e))
		}
		return code
	case errors.Is(err, ErrUsage):
		return ExitUsage
	case errors.Is(err, ErrNotFound):
		return ExitNotFound
	case errors.Is(err, ErrVerify):
		return ExitVerify
	default:
		return ExitError
	}
}

// Worst joins the errors of several independent parts of one run (the
// selections of a deploy file, say) so that the exit code is the highest
// of theirs: a policy failure (4) is not hidden by a selection that
// matches nothing (3). nil when every err is nil.
func Worst(errs ...error) error {
	var w worst
	for _, e := range errs {
		if e != nil {
			w = append(w, e)
		}
	}
	if len(w) == 0 {
		return nil
	}
	return w
}

type worst []error

func (w worst) Error() string { return errors.Join(w...).Error() }

func (w worst) Unwrap() []error { return w }

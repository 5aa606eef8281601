package failure

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// crashOut and exit are where a crash is reported and how the process
// ends; tests replace them.
var (
	crashOut io.Writer = os.Stderr
	exit               = os.Exit
)

// Crash ends the process with ExitInternal when the goroutine it is
// deferred in panics, after printing the panic and the goroutine's stack
// on stderr with a line asking for a bug report. Every goroutine the
// program starts defers it first: Go would otherwise end the process with
// status 2, the usage-error code, and no word of a bug.
//
//	go func() {
//		defer failure.Crash()
//		...
//	}()
func Crash() {
	r := recover()
	if r == nil {
		return
	}
	fmt.Fprintf(crashOut, "imagebake: internal error (a bug: please report it at https://github.com/imagebake/imagebake/issues with what follows): %v\n%s", r, debug.Stack())
	exit(ExitInternal)
}

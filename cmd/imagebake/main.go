// Command imagebake bakes golden images: one tagged release of a Puppet
// control repository and pinned agent binaries per CPU architecture.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/printable"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// the first Ctrl-C or SIGTERM cancels the work, which then cleans up;
	// a second one finds the default behaviour back and ends the process
	go func() {
		defer failure.Crash()
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the command line and maps its error to an exit code, the
// one place where that happens.
func run(ctx context.Context, args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "imagebake: internal error (a bug: please report it with what follows): %v\n%s", r, debug.Stack())
			code = failure.ExitInternal
		}
	}()
	root := newRootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return failure.ExitOK
	}
	fmt.Fprintf(os.Stderr, "error: %s\n", printable.String(err.Error()))
	if errors.Is(err, context.Canceled) {
		return failure.ExitError
	}
	return failure.Code(err)
}

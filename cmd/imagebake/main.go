// Command imagebake bakes golden images: one tagged release of a Puppet
// control repository and pinned agent binaries per CPU architecture.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/imagebake/imagebake/internal/failure"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the command line and maps its error to an exit code, the
// one place where that happens.
func run(ctx context.Context, args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "imagebake: internal error (a bug, please report it): %v\n", r)
			code = failure.ExitInternal
		}
	}()
	root := newRootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return failure.ExitOK
	}
	fmt.Fprintf(os.Stderr, "error: %v\n", err)
	if errors.Is(err, context.Canceled) {
		return failure.ExitError
	}
	return failure.Code(err)
}

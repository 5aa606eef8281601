package failure

import (
	"fmt"
	"runtime"
)

// NeedLinux refuses, as a usage error (exit 2), what only Linux can do
// (baking, the compile gate, switching agent binaries on a machine) when
// the command runs elsewhere; nil on Linux. what names the step.
func NeedLinux(what string) error {
	if goos == "linux" {
		return nil
	}
	return fmt.Errorf("%w: %s needs Linux (this is %s/%s): run it on a Linux machine or CI runner; select, check, upgrade, verify REGISTRY/REPO:TAG and catalog list work here", ErrUsage, what, goos, runtime.GOARCH)
}

// goos is the system the command runs on (tests set another).
var goos = runtime.GOOS

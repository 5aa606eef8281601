// Command mozagent is the example's agent binary: it prints its version
// (set at link time) for `--version`, which upgrade checks rely on.
package main

import (
	"fmt"
	"os"
	"runtime"
)

var version = "0.0.0"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		fmt.Println(version)
		return
	}
	fmt.Printf("mozagent %s on %s/%s\n", version, runtime.GOOS, runtime.GOARCH)
}

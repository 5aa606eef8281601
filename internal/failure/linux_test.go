package failure

import (
	"errors"
	"strings"
	"testing"
)

// Off Linux, baking and activation are usage errors naming the step and
// what does work there.
func TestNeedLinux(t *testing.T) {
	if err := NeedLinux("baking an image"); goos == "linux" && err != nil {
		t.Fatalf("on Linux: %v", err)
	}
	old := goos
	goos = "darwin"
	defer func() { goos = old }()
	err := NeedLinux("baking an image")
	if !errors.Is(err, ErrUsage) || Code(err) != ExitUsage || !strings.Contains(err.Error(), "baking an image needs Linux (this is darwin/") || !strings.Contains(err.Error(), "select, check, upgrade") {
		t.Errorf("on darwin: %v, want exit 2 naming the step", err)
	}
}

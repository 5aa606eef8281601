package failure

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
)

// A panic in a goroutine is a bug report and exit 5, with the stack.
func TestCrashInGoroutine(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	code := -1
	oldOut, oldExit := crashOut, exit
	crashOut, exit = &out, func(c int) { code = c }
	t.Cleanup(func() { crashOut, exit = oldOut, oldExit })
	var wg sync.WaitGroup
	wg.Go(func() {
		defer Crash()
		var items []int
		_ = items[len(os.Args)+1] // out of range: a runtime panic
	})
	wg.Wait()
	if code != ExitInternal {
		t.Fatalf("exit %d, want %d", code, ExitInternal)
	}
	s := out.String()
	for _, want := range []string{"internal error", "please report it", "index out of range", "TestCrashInGoroutine"} {
		if !strings.Contains(s, want) {
			t.Errorf("crash report lacks %q:\n%s", want, s)
		}
	}
	out.Reset()
	code = -1
	wg.Go(func() { defer Crash() })
	wg.Wait()
	if code != -1 || out.Len() != 0 {
		t.Errorf("a goroutine that ended well reported a crash (exit %d): %s", code, out.String())
	}
}

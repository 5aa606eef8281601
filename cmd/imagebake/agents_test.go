package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/testutil/agentstest"
)

// agents list marks a withdrawn upload, with its reason, beside the ones
// selection takes.
func TestAgentsListMarksWithdrawn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := agentstest.Store(t, filepath.Join(dir, "store"))
	for _, v := range []string{"2.4.0", "2.4.1"} {
		agentstest.Publish(t, store, agents.PublishOptions{Name: "mozagent", Version: v, OS: "linux", Arch: "amd64"}, "")
	}
	run := func(args ...string) string {
		t.Helper()
		c := newRootCommand()
		var out strings.Builder
		c.SetOut(&out)
		c.SetErr(&out)
		c.SetArgs(args)
		if err := c.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("imagebake %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	run("agents", "withdraw", "mozagent", "--version", "2.4.1", "--arch", "amd64", "--reason", "segfaults on start", "--store", store.Root())
	out := run("agents", "list", "--store", store.Root())
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			lines[f[1]] = l
		}
	}
	if !strings.Contains(lines["2.4.1"], "withdrawn: segfaults on start") || strings.Contains(lines["2.4.0"], "withdrawn") || !strings.Contains(lines["VERSION"], "STATE") {
		t.Errorf("agents list does not mark the withdrawn upload:\n%s", out)
	}
}

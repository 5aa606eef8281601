// Package browser renders a page in headless Chromium (Debian chromium)
// for tests: what a person reads on it, its accessibility tree, what it
// asked the network for, and a screenshot.
package browser

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Node is one node of the accessibility tree that is not ignored.
type Node struct {
	Role string
	Name string
}

// Result is what Chromium made of a page.
type Result struct {
	// Text is the page's text as rendered (innerText of the body).
	Text string
	// Tree is the accessibility tree's nodes, in document order.
	Tree []Node
	// Requests are the URLs the page asked for besides itself.
	Requests []string
}

// Render opens the HTML file page in headless Chromium at width×height and
// writes a screenshot of the whole page to shot (a PNG).
func Render(t *testing.T, page, shot string, width, height int) Result {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("headless Chromium is needed (Debian chromium; make test installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(width, height), chromedp.Flag("disable-gpu", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	var mu sync.Mutex
	var r Result
	url := "file://" + page
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Request.URL != url {
			mu.Lock()
			r.Requests = append(r.Requests, e.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	tctx, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("Chromium opening %s: %v", page, err)
	}
	if r.Text, err = chromedp.Run(tctx, chromedp.Evaluate[string]("document.body.innerText")); err != nil {
		t.Fatalf("reading the text of %s: %v", page, err)
	}
	tree, err := chromedp.Call(tctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		t.Fatalf("reading the accessibility tree of %s: %v", page, err)
	}
	for _, n := range tree.Nodes {
		if !n.Ignored && n.Role != nil {
			r.Tree = append(r.Tree, Node{Role: str(n.Role), Name: str(n.Name)})
		}
	}
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("taking a screenshot of %s: %v", page, err)
	}
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return r
}

func str(v *accessibility.Value) string {
	if v == nil || len(v.Value) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal(v.Value, &s); err != nil {
		return strings.Trim(string(v.Value), `"`)
	}
	return s
}

// Has says whether the tree holds a node of role whose name contains name.
func (r Result) Has(role, name string) bool {
	for _, n := range r.Tree {
		if n.Role == role && strings.Contains(n.Name, name) {
			return true
		}
	}
	return false
}

package gate

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/sandbox"
	"github.com/imagebake/imagebake/puppet/compiled"
)

// ErrCompile marks a release whose Puppet code does not compile on the
// image's own Puppet.
var ErrCompile = fmt.Errorf("the catalog does not compile: %w", failure.ErrVerify)

// DefaultTimeout bounds one run of the compile gate.
const DefaultTimeout = 5 * time.Minute

// compileNode has Puppet compile node n's catalog in the sandbox whose
// root is the union of lower.
// Run is one Puppet compile of a node's catalog on an image's files.
type Run struct {
	Program     string        // the base's puppet (manifest's Puppet.Program)
	Node        string        // the node compiled
	Environment string        // the environment's path inside the image
	Lower       []string      // the image's directories, top first (sandbox.Spec.Lower)
	Timeout     time.Duration // 0: DefaultTimeout
	What        string        // the image and its Puppet, for messages ("example-1.0.0-amd64 on puppet 7.23")
	Log         Logf
}

// Compile runs `puppet catalog compile` for r.Node in the sandbox, the
// facts given through the yaml terminus in the image's /var/lib
// (WriteFactsYAML), and returns the node's catalog; a catalog that does
// not compile is ErrCompile with Puppet's errors, the control repo's
// files and lines.
func Compile(ctx context.Context, r Run) (*compiled.Catalog, error) {
	// Puppet's own state goes to the private /tmp: the rest is read-only.
	// A catalog is compiled, and no resource evaluated: no provider runs.
	args := []string{r.Program, "catalog", "compile", r.Node, "--color=false", "--certname", r.Node, "--node_terminus", "plain",
		"--vardir", "/tmp/puppet/var", "--logdir", "/tmp/puppet/log", "--rundir", "/tmp/puppet/run", "--ssldir", "/tmp/puppet/ssl",
		"--facts_terminus", "yaml", "--yamldir", YAMLDir,
		"--environmentpath", path.Dir(r.Environment), "--environment", path.Base(r.Environment)}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stdout := &capped{max: compiled.MaxSize}
	res, err := sandbox.Run(cctx, sandbox.Spec{
		Lower:    r.Lower,
		Writable: []string{"/tmp", "/run", "/var/tmp"},
		Args:     args,
		Env:      []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"},
		Limits:   sandbox.Limits{CPU: timeout},
		Stdout:   stdout,
	})
	out := string(res.Output)
	what := fmt.Sprintf("%s (node %s", r.What, r.Node)
	switch {
	case cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil:
		return nil, fmt.Errorf("%w: %s): Puppet stopped after %s (the compile timeout: --compile-timeout or [compile] timeout)", ErrCompile, what, timeout)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, sandbox.ErrLimit):
		return nil, fmt.Errorf("%w: %s): %v; its last lines of output:\n  %s\nand of errors:\n  %s", ErrCompile, what, err, lastLines(stdout.buf.String(), 6), lastLines(out, 6))
	case errors.Is(err, sandbox.ErrUnavailable):
		return nil, fmt.Errorf("%w: compile gate for %s: %v", failure.ErrUsage, r.What, err)
	}
	var ee *sandbox.ExitError
	if errors.As(err, &ee) {
		return nil, fmt.Errorf("%w: %s, exit %d):\n  %s", ErrCompile, what, ee.Code, puppetErrors(out+"\n"+stdout.buf.String(), r.Environment))
	}
	if err != nil {
		return nil, fmt.Errorf("compile gate for %s: %w", r.What, err)
	}
	c, err := compiled.FromPuppet(stdout.buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: %s): Puppet printed no catalog: %v; its last lines:\n  %s", ErrCompile, what, err, lastLines(out, 10))
	}
	if c.Node != r.Node {
		return nil, fmt.Errorf("%w: %s): Puppet printed the catalog of node %q", ErrCompile, what, c.Node)
	}
	if sec := compiledInRE.FindSubmatch(stdout.buf.Bytes()); sec != nil {
		r.Log.printf("compile gate: node %s: %d resources, compiled by Puppet in %s s (the rest of its run is Puppet starting)\n", r.Node, len(c.Resources), sec[1])
	}
	return c, nil
}

// lastLines is the last n lines of out, each cut at 200 bytes.
func lastLines(out string, n int) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 200 {
			lines[i] = l[:200] + "…"
		}
	}
	return strings.Join(lines, "\n  ")
}

// puppetErrors keeps Puppet's error lines, with each file inside the
// environment shown as the control repo's path and line
// (manifests/site.pp:3).
func puppetErrors(out, env string) string {
	var keep, main []string
	seen := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		// Facter's complaints about what a chroot lacks (/sys) are noise
		if !strings.HasPrefix(l, "Error:") || strings.HasPrefix(l, "Error: Facter:") || seen[l] {
			continue
		}
		seen[l] = true
		l = fileLineRE.ReplaceAllStringFunc(l, func(s string) string {
			sub := fileLineRE.FindStringSubmatch(s)
			f := sub[1]
			if rel, ok := strings.CutPrefix(f, env+"/"); ok {
				f = rel
			}
			return "(" + f + ":" + sub[2] + ")"
		})
		keep = append(keep, l)
		if strings.Contains(l, "Evaluation Error") || strings.Contains(l, "Could not") || strings.Contains(l, "Syntax error") || strings.Contains(l, "Language validation") {
			main = append(main, l)
		}
	}
	if len(main) > 0 {
		keep = main
	}
	if len(keep) == 0 {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		keep = lines
	}
	return strings.Join(keep, "\n  ")
}

// compiledInRE is Puppet's own note of its compile time.
var compiledInRE = regexp.MustCompile(`Compiled catalog for \S+ in environment \S+ in ([0-9.]+) seconds`)

// fileLineRE is where Puppet says an error is: (file: F, line: L, column: C).
var fileLineRE = regexp.MustCompile(`\(file: ([^,)]+), line: ([0-9]+)(?:, column: [0-9]+)?\)`)

// YAMLDir is where the sandbox sees the nodes' facts.
const YAMLDir = "/var/lib/imagebake-gate/yaml"

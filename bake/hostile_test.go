//go:build linux

package bake

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/internal/gate"
	"github.com/imagebake/imagebake/internal/sandbox"
	"github.com/imagebake/imagebake/internal/testutil"
)

// hostileRun is one hostile-module case: a control repo whose release
// 1.1.0 compiles, 1.2.0 carries a module whose Ruby function attacks the
// build host, and 1.3.0 does not compile.
type hostileRun struct {
	root, repo, secret, hostFile string
	node                         string // the certname: this test's gate processes carry it
	accepted                     *atomic.Int32
	port                         int
}

func newHostileRun(t *testing.T) *hostileRun {
	t.Helper()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("the Debian base here is amd64; this machine is %s", runtime.GOARCH)
	}
	src := debianPuppetTarball(t)
	h := &hostileRun{accepted: new(atomic.Int32)}
	h.root, h.repo = example(t, map[string][]string{runtime.GOARCH: {"2.4.1"}})
	rel := filepath.Join("base", "bookworm-puppet.tar")
	copyFile(t, src, filepath.Join(h.root, rel))
	cfg := filepath.Join(h.repo, "imagebake.toml")
	b, _ := os.ReadFile(cfg)
	b = regexp.MustCompile(`(?m)^environment = .*$`).ReplaceAll(b, []byte(`environment = "/etc/puppet/code/environments/production"`))
	testutil.Must(t, os.WriteFile(cfg, b, 0o644))
	useBase(t, h.repo, rel, strings.TrimPrefix(sha256File(t, filepath.Join(h.root, rel)), "sha256:"), "1.1.0")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	h.port = ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.accepted.Add(1)
			c.Close()
		}
	}()
	rb := make([]byte, 8)
	rand.Read(rb)
	h.secret = "s3cret-" + hex.EncodeToString(rb)
	h.node = "hostile-" + hex.EncodeToString(rb[:4])
	h.hostFile = filepath.Join(h.root, "pwned")
	return h
}

// commitProbe commits release 1.2.0 with the hostile module, its Ruby
// aimed at the given host paths of the cached base's puppet.
func (h *hostileRun) commitProbe(t *testing.T, cachePuppets ...string) {
	t.Helper()
	rb, err := os.ReadFile(filepath.Join("testdata", "hostile", "probe.rb"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("@@HOSTFILE@@", h.hostFile, "@@HOSTNAME@@", "pwned-at-root", "@@SECRET@@", h.secret,
		"@@PORT@@", strconv.Itoa(h.port), "'@@CACHEPUPPET@@'", quoteAll(cachePuppets)).Replace(string(rb))
	fn := filepath.Join(h.repo, "site-modules", "evil", "lib", "puppet", "functions", "evil", "probe.rb")
	testutil.Must(t, os.MkdirAll(filepath.Dir(fn), 0o755))
	testutil.Must(t, os.WriteFile(fn, []byte(s), 0o644))
	for _, c := range []struct{ mode, tag string }{{"flood", "v1.2.0"}, {"forks", "v1.2.1"}} {
		testutil.Must(t, os.WriteFile(filepath.Join(h.repo, "manifests", "site.pp"), []byte("node default {\n  include role::base\n  notice(evil::probe('"+c.mode+"'))\n}\n"), 0o644))
		testutil.Git(t, h.repo, "add", "-A")
		testutil.Git(t, h.repo, "commit", "-qm", "a module that attacks the build host: "+c.mode)
		testutil.Git(t, h.repo, "tag", c.tag)
	}
	testutil.Must(t, os.WriteFile(filepath.Join(h.repo, "manifests", "site.pp"), []byte("# the site\n\nnode default { include nosuch::klass }\n"), 0o644))
	testutil.Git(t, h.repo, "commit", "-qam", "a class that exists nowhere")
	testutil.Git(t, h.repo, "tag", "v1.3.0")
}

func quoteAll(ps []string) string {
	q := make([]string, len(ps))
	for i, p := range ps {
		q[i] = strconv.Quote(p)
	}
	return strings.Join(q, ", ")
}

// checkHeld asserts that nothing of the probe reached the host.
func (h *hostileRun) checkHeld(t *testing.T, err error, out string, puppets map[string]string) {
	t.Helper()
	if err == nil {
		t.Errorf("the hostile release baked: its 2 GiB of output must stop the gate")
	}
	for _, f := range []string{h.hostFile, "/pwned-at-root"} {
		if _, err := os.Stat(f); err == nil {
			testutil.Must(t, os.Remove(f))
			t.Errorf("the module wrote %s on the host", f)
		}
	}
	if n := h.accepted.Load(); n != 0 {
		t.Errorf("the module connected to a host loopback listener %d times", n)
	}
	if strings.Contains(out, h.secret) {
		t.Errorf("the module read imagebake's environment (the secret is in the output)")
	}
	for _, bad := range []string{"ESCAPED", "WROTE", "REWROTE", "CONNECTED", "forked 10000"} {
		if strings.Contains(out, bad) {
			t.Errorf("the probe reports %s:\n%s", bad, out)
		}
	}
	for p, sum := range puppets {
		if got, err := filehash.SHA256(p); err != nil || got != sum {
			t.Errorf("the cached base's puppet %s changed: %s, %v (was %s)", p, got, err, sum)
		}
	}
	// the sandbox's PID namespace ends with its init, and the gate waits
	// for that: none of its processes outlives the bake, even by a moment
	if left := gateProcesses(h.node); len(left) > 0 {
		t.Errorf("%d gate processes outlived the bake, the first: %.300s", len(left), left[0])
	}
}

// watchTasks samples how many tasks uid runs until the test ends, and
// returns the peak so far.
func watchTasks(t *testing.T, uid int) func() int {
	var peak atomic.Int64
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			if n := int64(sandbox.TasksOf(uid)); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() int { return int(peak.Load()) }
}

// gateProcesses are the processes left running Puppet's Ruby (or the
// probe's forks of it) for node.
func gateProcesses(node string) []string {
	var left []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		c := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(c, "--certname "+node+" ") {
			left = append(left, e.Name()+": "+c)
		}
	}
	return left
}

// A module's Ruby run by the compile gate, as root: it cannot escape with
// a double chroot, write host files, read imagebake's environment, reach
// a host loopback listener, rewrite the cached base's puppet or fork
// 10,000 processes; its 2 GiB of output stops the gate, with imagebake's
// memory bounded, in well under the timeout; no process outlives it; and
// the next broken catalog is refused.
func TestCompileGateHoldsHostileModule(t *testing.T) {
	h := newHostileRun(t)
	t.Setenv("IMAGEBAKE_KEY_PASSWORD", h.secret)
	t.Setenv("AWS_SECRET_ACCESS_KEY", h.secret)
	var log strings.Builder
	o := opts(h.root, h.repo, filepath.Join(h.root, "dist"))
	o.Arches, o.Release, o.Log = []string{runtime.GOARCH}, "1.1.0", &log
	o.Compile.Enabled = true
	o.Compile.Timeout = 3 * time.Minute
	o.Compile.Node = h.node
	if _, err := Bake(ctx, o); err != nil {
		t.Fatalf("bake --compile of the example: %v\n%s", err, log.String())
	}
	cache, err := gate.CacheDir(o.Cache)
	if err != nil {
		t.Fatal(err)
	}
	puppets := map[string]string{}
	found, _ := filepath.Glob(filepath.Join(cache, "*", "root", "usr", "bin", "puppet"))
	for _, p := range found {
		puppets[p], _ = filehash.SHA256(p)
	}
	if len(puppets) == 0 {
		t.Fatalf("no cached base's puppet in %s", cache)
	}
	h.commitProbe(t, found...)

	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	o.Release = "1.2.0"
	start := time.Now()
	_, err = Bake(ctx, o)
	took := time.Since(start)
	t.Logf("the hostile bake ended in %s: %v", took.Round(time.Millisecond), err)
	var after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	h.checkHeld(t, err, err.Error(), puppets)
	if !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), "more than") || !strings.Contains(err.Error(), "chroot refused") {
		t.Errorf("the hostile bake = %v, want the gate stopped for its output, with the probe's report", err)
	}
	if took >= o.Compile.Timeout {
		t.Errorf("the hostile bake took %s, the whole timeout", took)
	}
	if after.Maxrss > 1<<20 { // KiB: 1 GiB
		t.Errorf("imagebake's peak RSS reached %d MiB", after.Maxrss>>10)
	}
	if _, err := os.Stat(filepath.Join(o.Out, "example-1.2.0")); err == nil {
		t.Error("the hostile release was written")
	}

	// 10,000 processes: held at the process limit until the timeout
	o.Release, o.Compile.Timeout = "1.2.1", 4*time.Second
	peak := watchTasks(t, sandbox.NobodyUID)
	start = time.Now()
	_, err = Bake(ctx, o)
	took = time.Since(start)
	t.Logf("the fork bomb ended in %s with at most %d tasks of uid %d: %v", took.Round(time.Millisecond), peak(), sandbox.NobodyUID, err)
	h.checkHeld(t, err, err.Error(), puppets)
	if !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), "stopped after 4s") || took > time.Minute {
		t.Errorf("the fork bomb = %v after %s, want it stopped at the 4s timeout", err, took)
	}
	if n := peak(); n > sandbox.DefaultLimits.Procs+64 {
		t.Errorf("the fork bomb ran %d tasks at once (limit %d)", n, sandbox.DefaultLimits.Procs)
	}

	o.Release, o.Compile.Timeout = "1.3.0", 3*time.Minute
	if _, err := Bake(ctx, o); !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), "nosuch::klass") {
		t.Errorf("the broken catalog after the hostile bake = %v, want it refused", err)
	}
}

// The same module with imagebake run by a plain user (uid 12345, through
// setpriv): bwrap makes the sandbox from an unprivileged user namespace,
// and nothing gets out either.
func TestCompileGateHoldsHostileModuleAsPlainUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("runs imagebake as another user: needs root to switch")
	}
	h := newHostileRun(t)
	const uid = "12345"
	bin := filepath.Join(h.root, "imagebake")
	build := exec.Command("go", "build", "-o", bin, "./cmd/imagebake")
	build.Dir = testutil.ModuleRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cache := filepath.Join(h.root, "cache-user")
	// the probe aims at where this user's cache keeps the base
	key := "*"
	h.commitProbe(t, filepath.Join(cache, "compile", key, "root", "usr", "bin", "puppet"))
	testutil.Must(t, os.MkdirAll(filepath.Join(h.root, "home"), 0o755))
	testutil.Run(t, "chown", "-R", uid+":"+uid, h.root)
	testutil.Searchable(t, filepath.Dir(h.root))
	run := func(release string, timeout ...string) (string, error) {
		cmd := exec.Command("setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--",
			bin, "bake", "--repo", h.repo, "--release", release, "--arch", runtime.GOARCH, "--out", filepath.Join(h.root, "dist-user"),
			"--cache", cache, "--compile", "--node", h.node, "--compile-timeout", append(timeout, "3m")[0])
		cmd.Dir = h.root
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(h.root, "home"), "IMAGEBAKE_KEY_PASSWORD=" + h.secret, "AWS_SECRET_ACCESS_KEY=" + h.secret}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("1.1.0"); err != nil {
		t.Fatalf("bake --compile 1.1.0 as uid %s: %v\n%s", uid, err, out)
	}
	found, _ := filepath.Glob(filepath.Join(cache, "compile", "*", "root", "usr", "bin", "puppet"))
	puppets := map[string]string{}
	for _, p := range found {
		puppets[p], _ = filehash.SHA256(p)
	}
	if len(puppets) == 0 {
		t.Fatalf("no cached base's puppet in %s", cache)
	}
	start := time.Now()
	out, err := run("1.2.0")
	t.Logf("the hostile bake as uid %s ended in %s: %v", uid, time.Since(start).Round(time.Millisecond), err)
	h.checkHeld(t, err, out, puppets)
	if !strings.Contains(out, "more than") || !strings.Contains(out, "chroot refused") {
		t.Errorf("the hostile bake as uid %s said:\n%s", uid, out)
	}
	n, _ := strconv.Atoi(uid)
	peak := watchTasks(t, n)
	start = time.Now()
	out, err = run("1.2.1", "4s")
	t.Logf("the fork bomb as uid %s ended in %s with at most %d tasks: %v", uid, time.Since(start).Round(time.Millisecond), peak(), err)
	h.checkHeld(t, err, out, puppets)
	if !strings.Contains(out, "stopped after 4s") || peak() > sandbox.DefaultLimits.Procs+64 {
		t.Errorf("the fork bomb as uid %s (at most %d tasks) said:\n%s", uid, peak(), out)
	}
	if out, err := run("1.3.0"); err == nil || !strings.Contains(out, "nosuch::klass") {
		t.Errorf("the broken catalog after the hostile bake: %v\n%s", err, out)
	}
}

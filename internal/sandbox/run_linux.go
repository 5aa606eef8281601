package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
)

// Run runs s.Args in a sandbox and waits for it; ctx ending kills every
// process in it. A program that exits other than 0 is an *ExitError.
func Run(ctx context.Context, s Spec) (Result, error) {
	lim := s.Limits.withDefaults()
	// bwrap runs in /: a relative directory (bake --out dist) would bind
	// the wrong tree
	lower := make([]string, len(s.Lower))
	for i, d := range s.Lower {
		abs, err := filepath.Abs(d)
		if err != nil {
			return Result{}, err
		}
		lower[i] = abs
	}
	s.Lower = lower
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := &tail{max: lim.Tail, limit: lim.Output, over: func() { cancel(ErrLimit) }}
	var stdout io.Writer = out
	if s.Stdout != nil {
		stdout = &stopOnError{w: s.Stdout, stop: func(err error) { cancel(fmt.Errorf("%w: %v", ErrLimit, err)) }}
	}
	cmd, status, err := command(cctx, s, lim, stdout, out)
	if err != nil {
		return Result{}, err
	}
	defer status.Close()
	started := make(chan int, 1)
	go func() {
		defer failure.Crash()
		started <- childStarted(status)
	}()
	err = cmd.Wait()
	child := 0
	select {
	case child = <-started:
	case <-time.After(5 * time.Second):
	}
	// bwrap's child is the sandbox's PID 1: killed with bwrap (it dies
	// with its parent), it takes every process of the namespace with it
	// before it exits. Wait for that, so that nothing of the sandbox
	// outlives Run.
	if child > 0 {
		waitGone(child, 10*time.Second)
	}
	res := Result{Output: out.bytes(), Written: out.total()}
	if cause := context.Cause(cctx); errors.Is(cause, ErrLimit) {
		if out.total() <= lim.Output {
			return res, fmt.Errorf("its output was refused and it was stopped: %w", cause)
		}
		return res, fmt.Errorf("%w: it wrote more than %d MiB of output and was stopped", ErrLimit, lim.Output>>20)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if child <= 0 {
		return res, fmt.Errorf("%w: bwrap could not set the sandbox up (a host must allow unprivileged user namespaces: sysctl user.max_user_namespaces > 0, and on Ubuntu 24.04 or later an AppArmor profile for bwrap): %s", ErrUnavailable, strings.TrimSpace(string(res.Output)))
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return res, &ExitError{Code: code}
	}
	return res, err
}

// command starts bwrap under prlimit for s, as nobody when imagebake is
// root, its output into out; status is bwrap's JSON status pipe.
func command(ctx context.Context, s Spec, lim Limits, stdout, stderr io.Writer) (*exec.Cmd, *os.File, error) {
	bw := s.Bwrap
	if bw == "" {
		var err error
		if bw, err = exec.LookPath("bwrap"); err != nil {
			return nil, nil, fmt.Errorf("%w: bwrap (bubblewrap) not found in PATH=%s: install it (Debian and Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)", ErrUnavailable, os.Getenv("PATH"))
		}
	}
	prl, err := exec.LookPath("prlimit")
	if err != nil {
		return nil, nil, fmt.Errorf("%w: prlimit (util-linux) not found in PATH=%s", ErrUnavailable, os.Getenv("PATH"))
	}
	uid, gid := os.Getuid(), os.Getgid()
	asRoot := uid == 0
	if asRoot {
		uid, gid = NobodyUID, NobodyUID
		for _, d := range s.Lower {
			if err := Reachable(d); err != nil {
				return nil, nil, err
			}
		}
	}
	args, err := bwrapArgs(s, lim)
	if err != nil {
		return nil, nil, err
	}
	// RLIMIT_NPROC counts the host user's tasks too (the user namespace's
	// parent level): allow what the user runs now plus the sandbox's own
	prArgs := []string{
		"--nproc=" + strconv.Itoa(TasksOf(uid)+lim.Procs),
		"--as=" + strconv.FormatInt(lim.Memory, 10),
		"--cpu=" + strconv.Itoa(int(lim.CPU/time.Second)+1),
		"--nofile=" + strconv.Itoa(lim.Files),
		"--fsize=" + strconv.FormatInt(lim.Tmp, 10),
		"--core=0",
		"--", bw, "--json-status-fd", "3",
	}
	status, statusW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, prl, append(append(prArgs, args...), s.Args...)...)
	cmd.Env = s.Env
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{statusW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if asRoot {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err = cmd.Start()
	statusW.Close()
	if err != nil {
		status.Close()
		return nil, nil, fmt.Errorf("%w: starting %s: %v", ErrUnavailable, bw, err)
	}
	return cmd, status, nil
}

// stopOnError passes writes to w; the first error stops the run.
type stopOnError struct {
	w    io.Writer
	stop func(error)
	err  error
}

func (s *stopOnError) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
		s.stop(err)
	}
	return n, err
}

// childStarted reads bwrap's JSON status: a "child-pid" line means the
// sandbox was made and the program started; it gives the host PID of the
// sandbox's init (0: not started).
func childStarted(r io.Reader) int {
	sc := bufio.NewScanner(r)
	pid := 0
	for sc.Scan() {
		var v struct {
			ChildPID int `json:"child-pid"`
		}
		if json.Unmarshal(sc.Bytes(), &v) == nil && v.ChildPID > 0 && pid == 0 {
			pid = v.ChildPID
		}
	}
	return pid
}

// waitGone waits until the process pid has exited (gone, or a zombie:
// a PID namespace's init becomes one only after every other process of
// the namespace is gone), for at most d.
func waitGone(pid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		// pid (comm) STATE ...: comm may hold spaces and parentheses
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bwrapArgs are bwrap's options for s, up to the program.
func bwrapArgs(s Spec, lim Limits) ([]string, error) {
	if len(s.Lower) == 0 || len(s.Args) == 0 || !path.IsAbs(s.Args[0]) {
		return nil, fmt.Errorf("sandbox: a root (%d directories) and an absolute program path (%q) are needed", len(s.Lower), s.Args)
	}
	writable := map[string]bool{}
	under := map[string]bool{"/": true}
	for _, w := range s.Writable {
		w = path.Clean(w)
		if !path.IsAbs(w) || w == "/" {
			return nil, fmt.Errorf("sandbox: writable path %q is not an absolute path below /", w)
		}
		writable[w] = true
		for d := path.Dir(w); d != "/"; d = path.Dir(d) {
			under[d] = true
		}
	}
	a := []string{
		"--unshare-all", "--unshare-user", "--uid", "0", "--gid", "0",
		"--disable-userns", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
		"--hostname", "imagebake-gate", "--chdir", "/",
	}
	sp := splicer{writable: writable, under: under, tmp: lim.Tmp}
	if err := sp.dir("/", s.Lower); err != nil {
		return nil, err
	}
	a = append(a, sp.args...)
	a = append(a, "--proc", "/proc", "--dir", "/dev")
	for _, d := range []string{"/dev/null", "/dev/zero", "/dev/urandom"} {
		a = append(a, "--dev-bind", d, d)
	}
	a = append(a, "--remount-ro", "/")
	return a, nil
}

// splicer lays the union of directories out as bwrap binds: a directory
// only one of them has, with nothing writable below it, is one read-only
// bind; one several have is made on the tmpfs root and its entries
// spliced in one by one, the top directory's entry winning.
type splicer struct {
	writable, under map[string]bool
	tmp             int64
	args            []string
}

type entry struct {
	mode   os.FileMode
	src    string   // the top source's path
	dirs   []string // for a directory: each source's directory, top first
	closed bool     // a lower source's non-directory ended the merge
}

func (sp *splicer) dir(dst string, srcs []string) error {
	names, err := sp.union(dst, srcs)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, name := range keys {
		if dst == "/" && (name == "proc" || name == "dev" || name == "sys") {
			continue // the sandbox's own
		}
		if err := sp.entry(path.Join(dst, name), names[name]); err != nil {
			return err
		}
	}
	return nil
}

// union lists the entries of the directory dst: those of each source
// (the top one's winning), and the writable paths and their parents that
// lie in it.
func (sp *splicer) union(dst string, srcs []string) (map[string]*entry, error) {
	names := map[string]*entry{}
	for _, src := range srcs {
		des, err := os.ReadDir(src)
		if err != nil {
			return nil, fmt.Errorf("sandbox: reading %s: %w", src, err)
		}
		for _, de := range des {
			p := filepath.Join(src, de.Name())
			e, seen := names[de.Name()]
			switch {
			case !seen:
				e = &entry{mode: de.Type(), src: p}
				if de.IsDir() {
					e.dirs = []string{p}
				}
				names[de.Name()] = e
			case e.mode.IsDir() && de.IsDir() && !e.closed:
				// a lower directory merges into an upper one
				e.dirs = append(e.dirs, p)
			default:
				// anything else hides what lies below it
				e.closed = true
			}
		}
	}
	for _, set := range []map[string]bool{sp.writable, sp.under} {
		for w := range set {
			if w != "/" && path.Dir(w) == dst {
				if _, ok := names[path.Base(w)]; !ok {
					names[path.Base(w)] = &entry{mode: os.ModeDir}
				}
			}
		}
	}
	return names, nil
}

// entry lays out one entry e at p.
func (sp *splicer) entry(p string, e *entry) error {
	switch {
	case sp.writable[p]:
		if e.src != "" && !e.mode.IsDir() {
			return fmt.Errorf("sandbox: writable path %s is not a directory in the image (%s)", p, e.mode.Type())
		}
		sp.args = append(sp.args, "--size", strconv.FormatInt(sp.tmp, 10), "--tmpfs", p)
	case e.mode.IsDir() && len(e.dirs) == 1 && !sp.under[p]:
		sp.args = append(sp.args, "--ro-bind", e.dirs[0], p)
	case e.mode.IsDir():
		sp.args = append(sp.args, "--dir", p)
		return sp.dir(p, e.dirs)
	case sp.under[p]:
		return fmt.Errorf("sandbox: %s is a %s in the image, and a writable path lies below it", p, e.mode.Type())
	case e.mode&os.ModeSymlink != 0:
		target, err := os.Readlink(e.src)
		if err != nil {
			return err
		}
		sp.args = append(sp.args, "--symlink", target, p)
	case e.mode.IsRegular():
		sp.args = append(sp.args, "--ro-bind", e.src, p)
	}
	// devices, FIFOs and sockets are left out
	return nil
}

// Reachable says whether the unprivileged user the sandbox runs as (when
// imagebake is root) can reach dir: every directory on the way must let
// others search it.
func Reachable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		ok := fi.Mode().Perm()&0o001 != 0 ||
			(st != nil && st.Uid == NobodyUID && fi.Mode().Perm()&0o100 != 0) ||
			(st != nil && st.Gid == NobodyUID && fi.Mode().Perm()&0o010 != 0)
		if !ok {
			return fmt.Errorf("%w: the sandbox runs as the unprivileged user nobody (%d) when imagebake is root, and it cannot reach %s: %s is mode %v; put the cache and output somewhere others may search",
				ErrUnavailable, NobodyUID, abs, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// TasksOf counts the tasks (threads) the host user uid runs now.
func TasksOf(uid int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	want := strconv.Itoa(uid)
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		var real bool
		threads := 0
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 {
				switch f[0] {
				case "Uid:":
					real = f[1] == want
				case "Threads:":
					threads, _ = strconv.Atoi(f[1])
				}
			}
		}
		if real {
			n += threads
		}
	}
	return n
}

// tail keeps the last max bytes written to it and calls over once more
// than limit were written.
type tail struct {
	mu      sync.Mutex
	max     int
	limit   int64
	over    func()
	buf     []byte
	n       int64
	tripped bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n += int64(len(p))
	q := p
	if len(q) > t.max {
		q = q[len(q)-t.max:]
	}
	t.buf = append(t.buf, q...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	if t.n > t.limit && !t.tripped {
		t.tripped = true
		t.over()
	}
	return len(p), nil
}

func (t *tail) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf)
}

func (t *tail) total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

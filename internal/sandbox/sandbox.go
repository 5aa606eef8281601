// Package sandbox runs a program of an image's own, with code imagebake
// must treat as hostile (a module's Ruby, run by the base's Puppet while
// it compiles), so that nothing it does reaches the build host.
//
// It uses bubblewrap (bwrap, Debian's bubblewrap 0.8 or later) rather than
// mount and unshare calls of its own: bwrap is small, audited and used by
// Flatpak for exactly this. The program runs
//   - as an unprivileged user: when imagebake runs as root, bwrap itself is
//     started as the unprivileged user nobody (65534), so nothing in the
//     sandbox is root on the host, whoever runs imagebake;
//   - in its own user, mount, PID, network, IPC, UTS and cgroup
//     namespaces, with no capabilities, no_new_privs, no further user
//     namespaces (--disable-userns) and a new session (no terminal);
//   - on a root made by pivot_root: a tmpfs holding the given directories,
//     unioned read-only (the top one wins, as in an overlay), a /proc of
//     its own PID namespace (never the host's), a /dev with only null,
//     zero and urandom, and empty private tmpfs mounts where it may write;
//   - under limits: processes, address space, CPU time, open files, file
//     size and tmpfs size, with the last bytes of its output kept and a run
//     that writes too much stopped.
//
// A host must allow unprivileged user namespaces (user.max_user_namespaces
// above 0; on Ubuntu 24.04 and later, AppArmor's
// kernel.apparmor_restrict_unprivileged_userns must let bwrap make them).
package sandbox

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrUnavailable marks a host where the sandbox cannot be made: bwrap is
// missing, or user namespaces are not allowed.
var ErrUnavailable = errors.New("the sandbox cannot be made on this host")

// ErrLimit marks a run stopped because it passed a limit (its output).
var ErrLimit = errors.New("the sandboxed program passed a limit")

// NobodyUID is the host user the sandbox runs as when imagebake is root.
const NobodyUID = 65534

// Limits bound what the sandboxed program may use. Zero fields take the
// defaults (DefaultLimits).
type Limits struct {
	Procs  int           // processes and threads at once
	Memory int64         // address space of each process, bytes
	CPU    time.Duration // CPU time of each process
	Files  int           // open files of each process
	Tmp    int64         // size of each private tmpfs, bytes
	Output int64         // bytes of output before the run is stopped
	Tail   int           // bytes of output kept (the last ones)
}

// DefaultLimits are generous for a Puppet compile and small for a host.
var DefaultLimits = Limits{Procs: 512, Memory: 4 << 30, CPU: 10 * time.Minute, Files: 1024, Tmp: 256 << 20, Output: 32 << 20, Tail: 64 << 10}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	or(&d.Procs, l.Procs)
	or(&d.Memory, l.Memory)
	or(&d.CPU, l.CPU)
	or(&d.Files, l.Files)
	or(&d.Tmp, l.Tmp)
	or(&d.Output, l.Output)
	or(&d.Tail, l.Tail)
	return d
}

// or sets *dst to v when v is set (above zero).
func or[T int | int64 | time.Duration](dst *T, v T) {
	if v > 0 {
		*dst = v
	}
}

// Spec is one run.
type Spec struct {
	// Lower are host directories, top first, whose union (as an overlay
	// would show it) is the sandbox's read-only root.
	Lower []string
	// Writable are absolute sandbox paths that get an empty private tmpfs.
	Writable []string
	// Args is the program (a path inside the sandbox) and its arguments.
	Args []string
	// Env is the program's whole environment.
	Env []string
	// Limits bound the run.
	Limits Limits
	// Bwrap is the bwrap program (default: bwrap from PATH).
	Bwrap string
	// Stdout, when set, takes the program's standard output (its standard
	// error alone is then Result.Output); a write error stops the run.
	Stdout io.Writer
}

// Result is what a run left.
type Result struct {
	// Output is the last Limits.Tail bytes of stdout and stderr.
	Output []byte
	// Written is how many bytes of output there were in all.
	Written int64
}

// ExitError is a program that ran and exited other than 0.
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

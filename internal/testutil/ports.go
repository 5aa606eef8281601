//go:build linux

package testutil

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
)

// Servers bind port 0 and the test learns the port the kernel gave them:
// handing on a port found free and closed races with every other process
// of the machine (another test's server may take it in between).

// ListeningAddr waits for the process cmd started to listen on a loopback
// TCP port and returns its "127.0.0.1:PORT", read from the kernel's table
// of the process's own sockets (/proc/PID/net/tcp and /proc/PID/fd), for
// servers told to bind port 0 that do not print the port they got. out is
// the server's output, shown when it never listens.
func ListeningAddr(t testing.TB, cmd *exec.Cmd, out fmt.Stringer) string {
	t.Helper()
	for i := 0; i < 400; i++ {
		if port := listeningPort(cmd.Process.Pid); port != 0 {
			return fmt.Sprintf("127.0.0.1:%d", port)
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s did not listen on a loopback port:\n%s", filepath.Base(cmd.Path), out)
	return ""
}

// listeningPort is the port of a listening IPv4 loopback (or any-address)
// socket the process pid holds, 0 while it holds none.
func listeningPort(pid int) int {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	for _, table := range []string{"tcp", "tcp6"} { // a dual-stack socket is in tcp6
		if p := listenerIn(fmt.Sprintf("/proc/%d/net/%s", pid, table), inodes); p != 0 {
			return p
		}
	}
	return 0
}

// loopbackOrAny are the local addresses, as /proc/net/tcp{,6} write them,
// a server reachable on 127.0.0.1 listens on.
var loopbackOrAny = map[string]bool{
	"0100007F": true, "00000000": true, // 127.0.0.1, 0.0.0.0
	"00000000000000000000000000000000": true, // [::], dual-stack
	"0000000000000000FFFF00000100007F": true, // [::ffff:127.0.0.1]
}

// listenerIn is the port of a listening socket of the table (a
// /proc/PID/net/tcp file) among inodes, on loopback or any address.
func listenerIn(table string, inodes map[string]bool) int {
	f, err := os.Open(table)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st ... uid timeout inode
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] != "0A" || !inodes[fs[9]] {
			continue
		}
		host, port, ok := strings.Cut(fs[1], ":")
		if !ok || !loopbackOrAny[host] {
			continue
		}
		if p, err := strconv.ParseUint(port, 16, 16); err == nil {
			return int(p)
		}
	}
	return 0
}

// RefusedAddr is a loopback "127.0.0.1:PORT" that refuses connections
// until the test ends: a socket bound to the port and not listening, so
// that no other process can take the port meanwhile.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// GitDaemon serves the bare repositories under dir over git:// on a
// loopback port until the test ends, and returns the base URL
// ("git://127.0.0.1:PORT"). The test holds the listener and hands each
// connection to `git daemon --inetd`, the real daemon serving one client
// (what git daemon's own listener forks for each connection).
func GitDaemon(t testing.TB, dir string) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	env := append(os.Environ(), GitEnv...)
	wg.Go(func() {
		defer failure.Crash()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer failure.Crash()
				serveGit(git, dir, env, c)
			})
		}
	})
	return "git://" + l.Addr().String()
}

// serveGit runs git daemon --inetd on the connection c.
func serveGit(git, dir string, env []string, c net.Conn) {
	defer c.Close()
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		return
	}
	defer f.Close()
	cmd := exec.Command(git, "daemon", "--inetd", "--export-all", "--base-path="+dir, dir)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout = f, f
	cmd.Run() //nolint:errcheck // a client that went away ends its daemon
}

// Registry starts the Debian docker-registry (distribution 2.8, no
// referrers API) on a free loopback port with its storage in a temporary
// directory, until the test ends, and returns its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal("docker-registry (Debian package docker-registry) is needed; make test installs it")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("docker-registry: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return ListeningAddr(t, cmd, &out)
}

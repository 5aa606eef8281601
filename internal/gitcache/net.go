package gitcache

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/sysx"
)

// Network remotes (git://, http(s)://, ssh:// and scp-like user@host:path)
// go through the git command: it speaks protocol v2 (so a pinned commit can
// be asked for by its SHA and fetched one tree deep), streams packs to disk
// and indexes them there (memory bounded by the largest object, not by
// history), and finds credentials the usual way: ssh-agent, ~/.ssh and
// known_hosts for SSH, .netrc and credential helpers for HTTPS.

// DefaultStall is how long a git command may go without a sign of
// progress before it is stopped.
const DefaultStall = time.Minute

// errWantRefused marks a server that will not send an unadvertised commit
// (protocol v0 without allow-reachable-sha1-in-want).
var errWantRefused = errors.New("the server does not send commits by SHA")

// remote is a network URL split into what is shown and what is secret.
type remote struct {
	shown  string // no password, no token: for messages, logs and files
	fetch  string // what git is given: shown, less an HTTP user
	secret string // user:password of an HTTP URL, only ever in memory
}

// Redact returns url without the secret parts of its user info: the whole
// user info of an http(s) or s3 URL, the password of any other. Anything
// that is not a URL is returned as it is.
func Redact(raw string) string { return splitRemote(raw).shown }

func splitRemote(raw string) remote {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || u.Host == "" {
		return remote{shown: raw, fetch: raw}
	}
	switch u.Scheme {
	case "http", "https", "s3":
		secret := u.User.String()
		u.User = nil
		s := u.String()
		return remote{shown: s, fetch: s, secret: secret}
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.User(u.User.Username())
	}
	s := u.String()
	return remote{shown: s, fetch: s}
}

// env is the environment of every git command: no prompts (a CI job must
// fail, not hang), messages in English (they are matched), and an HTTP
// credential from the URL as a header, so it is in no argument list.
func (r remote) env() []string {
	env := append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C", "GIT_PROTOCOL_FROM_USER=0")
	if r.secret != "" {
		user, err := url.PathUnescape(r.secret)
		if err != nil {
			user = r.secret
		}
		if !strings.Contains(user, ":") {
			user += ":" // a token as the user name, as GitHub takes it
		}
		auth := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user))
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0="+auth)
	}
	return env
}

// redact removes the secret from text git printed.
func (r remote) redact(s string) string {
	if r.secret != "" {
		s = strings.ReplaceAll(s, r.secret, "***")
		if p := strings.IndexByte(r.secret, ':'); p >= 0 && len(r.secret)-p > 4 {
			s = strings.ReplaceAll(s, r.secret[p+1:], "***")
		}
	}
	return s
}

// gitConfig comes before every git command's verb. The transports are the
// ones the README names (git://, http(s)://, ssh:// and scp-like, file);
// every other one, ext:: above all (it runs a command), is refused
// whatever the user's or system's configuration says: -c is read after
// every configuration file and after GIT_CONFIG_COUNT.
var gitConfig = []string{
	"-c", "protocol.version=2", "-c", "gc.auto=0", "-c", "maintenance.auto=false",
	"-c", "fetch.writeCommitGraph=false", "-c", "core.askPass=",
	"-c", "protocol.allow=never",
	"-c", "protocol.git.allow=always", "-c", "protocol.http.allow=always", "-c", "protocol.https.allow=always",
	"-c", "protocol.ssh.allow=always", "-c", "protocol.file.allow=always", "-c", "protocol.ext.allow=never",
}

// git runs the git command in the mirror's repository. It is stopped when
// ctx ends or when stderr stays silent for stall (fetches print progress;
// a server that stops sending stops it). stdout is returned.
func (m *Mirror) git(ctx context.Context, args ...string) ([]byte, error) {
	full := append(append(append([]string{}, gitConfig...), "--git-dir="+m.root), args...)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = m.remote.env()
	sysx.OwnGroup(cmd) // a cancel kills git and its helpers
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	errw := &tailWriter{max: 8 << 10, seen: make(chan struct{}, 1)}
	cmd.Stderr = errw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running git (needed for %s): %w", m.URL, err)
	}
	stall := m.stall
	done := make(chan struct{})
	go func() {
		defer failure.Crash()
		t := time.NewTimer(stall)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-errw.seen:
				t.Reset(stall)
			case <-t.C:
				cancel(fmt.Errorf("nothing received for %s (the stall timeout: --stall-timeout or IMAGEBAKE_STALL_TIMEOUT)", stall))
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	if err != nil {
		if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
			if errors.Is(c, context.Canceled) || errors.Is(c, context.DeadlineExceeded) {
				return nil, fmt.Errorf("git %s %s: %w", args[0], m.URL, c)
			}
			return nil, fmt.Errorf("git %s %s: stopped: %w", args[0], m.URL, c)
		}
		return out.Bytes(), m.gitError(args[0], errw.String(), err)
	}
	return out.Bytes(), nil
}

// gitError turns what git printed into an error naming the remote.
func (m *Mirror) gitError(verb, stderr string, err error) error {
	msg := lastLines(m.remote.redact(stderr), 3)
	if msg == "" {
		msg = err.Error()
	}
	low := strings.ToLower(stderr)
	switch {
	case strings.Contains(low, "couldn't find remote ref"):
		return fmt.Errorf("git %s %s: %s: %w", verb, m.URL, msg, ErrRefNotFound)
	case strings.Contains(low, "unadvertised object") || strings.Contains(low, "not our ref"):
		return fmt.Errorf("git %s %s: %s: %w", verb, m.URL, msg, errWantRefused)
	case strings.Contains(low, "not found") || strings.Contains(low, "does not appear to be a git repository") ||
		strings.Contains(low, "not exported") || strings.Contains(low, "no such repository"):
		return fmt.Errorf("git %s %s: no repository there: %s: %w", verb, m.URL, msg, failure.ErrNotFound)
	}
	return fmt.Errorf("git %s %s: %s", verb, m.URL, msg)
}

func lastLines(s string, n int) string {
	var keep, fatal []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "remote: Counting") || strings.HasPrefix(l, "remote: Compressing") ||
			strings.HasPrefix(l, "Receiving objects") || strings.HasPrefix(l, "Resolving deltas") || strings.HasPrefix(l, "remote: Enumerating") || strings.HasPrefix(l, "remote: Total") {
			continue
		}
		keep = append(keep, l)
		if strings.HasPrefix(l, "fatal:") || strings.HasPrefix(l, "error:") {
			fatal = append(fatal, l)
		}
	}
	if len(fatal) > 0 {
		keep = fatal
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "; ")
}

// tailWriter keeps the last max bytes written and signals every write.
type tailWriter struct {
	mu   sync.Mutex
	buf  []byte
	max  int
	seen chan struct{}
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.max:]...)
	}
	w.mu.Unlock()
	select {
	case w.seen <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

var _ io.Writer = (*tailWriter)(nil)

// lsRemote lists the remote's branches and tags with one ref
// advertisement, tags peeled to their commits.
func (m *Mirror) lsRemote(ctx context.Context) (map[string]string, error) {
	out, err := m.git(ctx, "ls-remote", "--heads", "--tags", "--", m.remote.fetch)
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		sha, name, ok := strings.Cut(line, "\t")
		if !ok || !hexRE.MatchString(sha) || len(sha) != 40 {
			continue
		}
		if base, ok := strings.CutSuffix(name, "^{}"); ok {
			refs[base] = sha // the peeled commit wins over the tag object
			continue
		}
		if _, ok := refs[name]; !ok {
			refs[name] = sha
		}
	}
	return refs, nil
}

// fetchShallow fetches the given refspecs one commit deep.
func (m *Mirror) fetchShallow(ctx context.Context, refspecs ...string) error {
	args := append([]string{"fetch", "--depth=1", "--no-tags", "--no-write-fetch-head", "--progress", "--", m.remote.fetch}, refspecs...)
	_, err := m.git(ctx, args...)
	return err
}

// fetchAll fetches every branch and tag with their whole history, pruning
// the branches and tags deleted upstream.
func (m *Mirror) fetchAll(ctx context.Context) error {
	args := []string{"fetch", "--no-tags", "--no-write-fetch-head", "--progress", "--prune", "--force"}
	if _, err := os.Stat(m.root + "/shallow"); err == nil {
		args = append(args, "--unshallow")
	}
	args = append(args, "--", m.remote.fetch, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
	_, err := m.git(ctx, args...)
	if err != nil && strings.Contains(err.Error(), "couldn't find remote ref refs/heads/*") {
		return fmt.Errorf("fetching %s: the repository is empty: %w", m.URL, failure.ErrNotFound)
	}
	return err
}

// Package stall stops HTTP transfers that stop moving. A registry, an S3
// server or a store that sends headers and then nothing (or accepts a
// connection and never answers) would otherwise hang a CI job for ever:
// every request made through Transport must see its response headers, and
// then some bytes of its body, at least every D, else it ends with an
// error naming the URL and the timeout. A slow transfer that keeps moving
// is never cut, whatever its length.
package stall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imagebake/imagebake/internal/redact"
)

// Default is the stall timeout when none is set.
const Default = time.Minute

// Setting names where the timeout is set, for messages.
const Setting = "--stall-timeout or IMAGEBAKE_STALL_TIMEOUT"

// Env is the environment variable that sets the timeout.
const Env = "IMAGEBAKE_STALL_TIMEOUT"

// Parse is the timeout v (Env's value) sets: 0 when it is empty; an
// error naming Env when it is not a positive duration (callers then use
// Default). The command line reads the variable, with its other settings.
func Parse(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q is not a positive duration like 90s; using %s", Env, v, Default)
	}
	return d, nil
}

// Error is a transfer stopped for sending nothing.
type Error struct {
	URL   string // without credentials or query
	After time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: stopped: nothing received for %s (the stall timeout: %s)", e.URL, e.After, Setting)
}

// Timeout says it is a timeout (net.Error's method), so that retrying
// clients treat it as one.
func (e *Error) Timeout() bool { return true }

// Temporary is net.Error's other method.
func (e *Error) Temporary() bool { return false }

// current is the timeout of transports made with 0: Default, unless the
// command line set another (SetCurrent).
var current atomic.Int64

// SetCurrent makes d (when positive) the timeout of every transport and
// client made with 0 from now on: the command line resolves the setting
// (--stall-timeout, IMAGEBAKE_STALL_TIMEOUT) once, and every HTTP client
// (agent stores, the Forge, catalogs, registries, S3) follows it.
func SetCurrent(d time.Duration) {
	if d > 0 {
		current.Store(int64(d))
	}
}

// Current is the timeout a transport made with 0 gets.
func Current() time.Duration {
	if d := time.Duration(current.Load()); d > 0 {
		return d
	}
	return Default
}

// Transport wraps base (nil: http.DefaultTransport) with the stall rule of
// d (0: Current).
func Transport(base http.RoundTripper, d time.Duration) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if d <= 0 {
		d = Current()
	}
	return &transport{base: base, d: d}
}

// Client is an http.Client with the stall rule on http.DefaultTransport.
func Client(d time.Duration) *http.Client { return &http.Client{Transport: Transport(nil, d)} }

type transport struct {
	base http.RoundTripper
	d    time.Duration
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(r.Context())
	se := &Error{URL: redact.URL(r.URL), After: t.d}
	timer := time.AfterFunc(t.d, func() { cancel(se) })
	resp, err := t.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		timer.Stop()
		if errors.Is(context.Cause(ctx), se) {
			err = se
		}
		cancel(nil)
		return nil, err
	}
	timer.Reset(t.d)
	resp.Body = &body{rc: resp.Body, timer: timer, d: t.d, ctx: ctx, cancel: cancel, se: se}
	return resp, nil
}

// body resets the timer on every read that brings bytes.
type body struct {
	rc     io.ReadCloser
	timer  *time.Timer
	d      time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc
	se     *Error
	once   sync.Once
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.d)
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.ctx), b.se) {
		err = b.se
	}
	return n, err
}

func (b *body) Close() error {
	b.once.Do(func() {
		b.timer.Stop()
		b.cancel(nil)
	})
	return b.rc.Close()
}

// Package progress draws a progress bar on a terminal for the steps that
// can take many seconds (a cold Puppetfile fetch, compressing a base, a
// push), and nothing anywhere else: not when stderr is a file or a pipe,
// not in CI, not with --quiet or --json. A step that ends within Delay
// draws nothing either, so quick runs look as they always did.
//
// The reporter travels in the context, so the packages that do the work
// need no flag for it: Start(ctx, ...) returns a bar that does nothing
// when the command set no reporter.
package progress

import (
	"context"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Delay is how long a step runs before its bar appears.
const Delay = 700 * time.Millisecond

// Reporter draws one bar at a time on w.
type Reporter struct {
	w      io.Writer
	mu     sync.Mutex
	active bool
	cur    *Bar // the step drawing, nil between steps
	// now is the clock steps are timed by (time.Now; tests set their own)
	now func() time.Time
}

type key struct{}

// With returns ctx carrying r (nil: no progress).
func With(ctx context.Context, r *Reporter) context.Context {
	return context.WithValue(ctx, key{}, r)
}

// New draws on w whatever it is; Terminal says whether to.
func New(w io.Writer) *Reporter { return &Reporter{w: w, now: time.Now} }

// Terminal says whether bars belong on f: a terminal, unless the
// environment (read by the caller) says a CI run or a dumb terminal.
func Terminal(f *os.File, ciOrDumb bool) bool {
	return !ciOrDumb && term.IsTerminal(int(f.Fd()))
}

// Bar counts one step's work: Add as it goes, Finish when it ends (also
// on error). Its methods are safe for concurrent use.
type Bar struct {
	r       *Reporter
	desc    string
	total   int64
	bytes   bool
	started time.Time
	mu      sync.Mutex
	n       int64
	bar     *progressbar.ProgressBar
	done    bool
}

// Start begins a bar for a step of total units (bytes when bytes is
// true; total -1 when unknown). Only the first of overlapping steps gets
// a bar; the others, and every step without a reporter, get one that
// draws nothing.
func Start(ctx context.Context, desc string, total int64, bytes bool) *Bar {
	r, _ := ctx.Value(key{}).(*Reporter)
	if r == nil {
		return &Bar{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active {
		return &Bar{}
	}
	r.active = true
	r.cur = &Bar{r: r, desc: desc, total: total, bytes: bytes, started: r.now()}
	return r.cur
}

// Writer is where the command's other lines (warnings, notes) go while
// bars may be drawn: each write clears the bar's line first, so that no
// line lands in the middle of a bar; the bar comes back on its next step.
func (r *Reporter) Writer() io.Writer { return logWriter{r} }

type logWriter struct{ r *Reporter }

func (l logWriter) Write(p []byte) (int, error) {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	if b := l.r.cur; b != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.bar != nil && !b.done {
			_ = b.bar.Clear()
		}
	}
	return l.r.w.Write(p)
}

// Add counts n more units done.
func (b *Bar) Add(n int64) {
	if b == nil || b.r == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.n += n
	if b.bar == nil {
		if b.r.now().Sub(b.started) < Delay {
			return
		}
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(b.r.w),
			progressbar.OptionSetDescription(b.desc),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
		}
		if b.bytes {
			opts = append(opts, progressbar.OptionShowBytes(true))
		}
		b.bar = progressbar.NewOptions64(b.total, opts...)
		_ = b.bar.Set64(b.n)
		return
	}
	_ = b.bar.Add64(n)
}

// Finish ends the bar and clears its line; later calls do nothing.
func (b *Bar) Finish() {
	if b == nil || b.r == nil {
		return
	}
	b.mu.Lock()
	first := !b.done
	b.done = true
	if first && b.bar != nil {
		_ = b.bar.Finish()
	}
	b.mu.Unlock()
	if first {
		b.r.mu.Lock()
		b.r.active = false
		if b.r.cur == b {
			b.r.cur = nil
		}
		b.r.mu.Unlock()
	}
}

// Drawn says whether the bar appeared (the step outlasted Delay).
func (b *Bar) Drawn() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bar != nil
}

// Reader counts what is read through r on b.
func (b *Bar) Reader(r io.Reader) io.Reader { return &reader{r: r, b: b} }

type reader struct {
	r io.Reader
	b *Bar
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.b.Add(int64(n))
	return n, err
}

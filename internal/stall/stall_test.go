package stall

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A server that sends headers and then nothing, one that never answers,
// and one that is slow but keeps sending: the first two are stopped with
// an error naming the URL, the third is not.
func TestStalledTransfersStopped(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/headers-then-nothing":
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(200)
			w.Write([]byte("some"))
			w.(http.Flusher).Flush()
			<-release
		case "/no-answer":
			<-release
		case "/slow":
			for range 6 {
				w.Write([]byte("x"))
				w.(http.Flusher).Flush()
				time.Sleep(150 * time.Millisecond)
			}
		}
	}))
	defer srv.Close()
	defer close(release) // before the server's Close, which waits for its handlers
	c := Client(400 * time.Millisecond)
	for _, p := range []string{"/headers-then-nothing", "/no-answer"} {
		resp, err := c.Get(srv.URL + p + "?token=secret")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		var se *Error
		if !errors.As(err, &se) || !strings.Contains(err.Error(), srv.URL+p+": stopped: nothing received for 400ms") || se.URL != srv.URL+p {
			t.Errorf("GET %s = %v, want the stall error naming the URL (without its query)", p, err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("GET %s: %v is not a timeout", p, err)
		}
	}
	resp, err := c.Get(srv.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "xxxxxx" {
		t.Errorf("a slow transfer that keeps moving: %q, %v", b, err)
	}
}

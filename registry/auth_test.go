package registry

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/testutil"
)

const secret = "s3cr3t-T0KEN-planted"

// dockerConfig writes a Docker config holding alice's secret for host
// and points DOCKER_CONFIG at it, as docker login would.
func dockerConfig(t *testing.T, host string) string {
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("alice:" + secret))
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)), 0o600))
	t.Setenv("DOCKER_CONFIG", dir)
	return auth
}

// guardedRegistry is a registry that wants alice's credentials, which
// the Docker config (DOCKER_CONFIG) then holds; answer, when set, may
// answer an authenticated request itself (true) instead of the registry.
func guardedRegistry(t *testing.T, answer func(http.ResponseWriter, *http.Request) bool) (host, auth string) {
	host = served(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Basic "+auth {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
				return
			}
			if answer != nil && answer(w, r) {
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	auth = dockerConfig(t, host)
	return host, auth
}

// Credentials come from the Docker config; they never show in what a push
// or a failing push says, whatever the registry answers.
func TestRegistryCredentialsAndFaults(t *testing.T) {
	b := bakeExample(t)
	guarded, auth := guardedRegistry(t, nil)
	repo := guarded + "/golden/example"
	pushed, err := Push(ctx, b.dir, repo, b.sig(t), Options{})
	if err != nil {
		t.Fatalf("push with the Docker config's credentials = %v", err)
	}
	if s := fmt.Sprint(pushed); strings.Contains(s, secret) || strings.Contains(s, auth) {
		t.Errorf("push output carries the credential: %s", s)
	}
	if _, err := Verify(ctx, repo+":1.0.0", b.keys, Options{}); err != nil {
		t.Errorf("verify with the Docker config's credentials = %v", err)
	}
	// registries that take the credentials, then answer each status
	cases := []struct {
		status     int
		says, host string
	}{
		{status: http.StatusUnauthorized, says: "refused the credentials"},
		{status: http.StatusForbidden, says: "refused the credentials"},
		{status: http.StatusTooManyRequests, says: "rate limiting"},
		{status: http.StatusInternalServerError, says: "answered 500"},
	}
	auths := []string{fmt.Sprintf("%q:{\"auth\":%q}", guarded, auth)}
	for i, c := range cases {
		cases[i].host = served(t, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
					if r.Header.Get("Authorization") != "Basic "+auth {
						http.Error(w, "", http.StatusUnauthorized)
						return
					}
				}
				http.Error(w, fmt.Sprintf(`{"errors":[{"code":"X","message":"status %d"}]}`, c.status), c.status)
			})
		})
		auths = append(auths, fmt.Sprintf("%q:{\"auth\":%q}", cases[i].host, auth))
	}
	testutil.Must(t, os.WriteFile(filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"), []byte(`{"auths":{`+strings.Join(auths, ",")+`}}`), 0o600))
	for _, c := range cases {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			t.Parallel()
			repo := c.host + "/golden/example"
			_, perr := Push(ctx, b.dir, repo, b.sig(t), Options{})
			_, verr := Verify(ctx, repo+":1.0.0", b.keys, Options{})
			for what, err := range map[string]error{"push": perr, "verify": verr} {
				if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), repo) {
					t.Errorf("%s against a registry answering %d = %v; want it to say %q and name %s", what, c.status, err, c.says, repo)
				}
				if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), auth)) {
					t.Errorf("%s error carries the credential: %v", what, err)
				}
				if c.status == http.StatusTooManyRequests && failure.Code(err) == failure.ExitVerify {
					t.Errorf("%s: a rate limit is not a verification failure: %v", what, err)
				}
			}
		})
	}
}

// A registry that redirects blob reads to another host (a CDN, or an
// attacker's server) never gets the Docker config's credentials sent
// there; the blobs served there are still checked against their digests.
func TestCrossHostRedirectGetsNoCredentials(t *testing.T) {
	b := bakeExample(t)
	var mu sync.Mutex
	var leaked []string
	hits := 0
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		if a := r.Header.Get("Authorization"); a != "" {
			leaked = append(leaked, a)
		}
		mu.Unlock()
		w.Write([]byte("not the blob"))
	}))
	defer elsewhere.Close()
	var redirect atomic.Bool
	guarded, _ := guardedRegistry(t, func(w http.ResponseWriter, r *http.Request) bool {
		if redirect.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
			return true
		}
		return false
	})
	repo := guarded + "/golden/example"
	if _, err := Push(ctx, b.dir, repo, b.sig(t), Options{}); err != nil {
		t.Fatal(err)
	}
	redirect.Store(true)
	_, err := Verify(ctx, repo+":1.0.0", b.keys, Options{})
	if failure.Code(err) != failure.ExitVerify {
		t.Errorf("verify with blobs redirected to other content = %v (exit %d), want exit 4", err, failure.Code(err))
	}
	if hits == 0 {
		t.Fatal("verify never followed the redirect")
	}
	if len(leaked) > 0 {
		t.Errorf("the other host got the credentials: %q", leaked)
	}
}

//go:build linux

package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// S3Server is a versitygw S3 gateway with its POSIX backend in a
// temporary directory, on a free loopback port.
type S3Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Dir      string // the backend: a bucket is a directory under it
	Key      string // access key id
	Secret   string // secret access key
	cmd      *exec.Cmd
}

// S3 starts versitygw (IMAGEBAKE_VERSITYGW, else .cache/versitygw/versitygw
// under the module root, else versitygw on PATH) with the buckets named,
// until the test ends. make test builds it.
func S3(t testing.TB, buckets ...string) *S3Server {
	t.Helper()
	bin := os.Getenv("IMAGEBAKE_VERSITYGW")
	if bin == "" {
		bin = filepath.Join(ModuleRoot(t), ".cache", "versitygw", "versitygw")
		if _, err := os.Stat(bin); err != nil {
			if bin, err = exec.LookPath("versitygw"); err != nil {
				t.Fatal("versitygw is needed: make test builds it (scripts/ensure-versitygw)")
			}
		}
	}
	s := &S3Server{Dir: t.TempDir(), Key: "imagebake-test", Secret: "imagebake-test-secret"}
	for _, b := range buckets {
		if err := os.MkdirAll(filepath.Join(s.Dir, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	s.cmd = exec.Command(bin, "--port", "127.0.0.1:0", "posix", s.Dir)
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.Key, "ROOT_SECRET_KEY="+s.Secret)
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("versitygw: %v", err)
	}
	t.Cleanup(s.Stop)
	s.Endpoint = "http://" + ListeningAddr(t, s.cmd, &out)
	return s
}

// Stop ends the server (the tests of an endpoint that went down).
func (s *S3Server) Stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// Environ is the AWS environment that points a client at the server.
func (s *S3Server) Environ() []string {
	return []string{
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint, "AWS_ACCESS_KEY_ID=" + s.Key, "AWS_SECRET_ACCESS_KEY=" + s.Secret,
		"AWS_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Setenv puts Environ into the test's environment.
func (s *S3Server) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
}

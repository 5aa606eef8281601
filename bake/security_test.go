//go:build linux

package bake

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/confine"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/flock"
	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/signing"
)

// hostDir makes a directory standing in for a host directory, holding one
// file the bake must not touch.
func hostDir(t *testing.T, sub ...string) string {
	t.Helper()
	d := filepath.Join(append([]string{t.TempDir(), "host"}, sub...)...)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "precious"), []byte("host data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func hostIntact(t *testing.T, name, d string, wantEntries int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d, "precious"))
	if err != nil || string(b) != "host data\n" {
		t.Errorf("%s: host file %s/precious = %q, %v; the bake wrote outside its tree", name, d, b, err)
	}
	if ents, _ := os.ReadDir(d); len(ents) != wantEntries {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("%s: host dir %s holds %v, want %d entries as before the bake", name, d, names, wantEntries)
	}
}

// TestBakeNeverWritesThroughCommittedSymlinks: a control repo (or a module)
// that commits a symlink cannot make a bake write or delete outside the
// tree it builds. Each case is a real commit and tag of the example repo.
func TestBakeNeverWritesThroughCommittedSymlinks(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	pfPath := filepath.Join(repo, "Puppetfile")
	orig, _ := os.ReadFile(pfPath)
	release := func(tag string, change func()) {
		t.Helper()
		// what the last case left, when it left anything
		os.Remove(filepath.Join(repo, "modules"))
		os.Remove(filepath.Join(repo, "site"))
		testutil.Must(t, os.WriteFile(pfPath, orig, 0o644))
		change()
		testutil.Git(t, repo, "add", "-A")
		testutil.Git(t, repo, "commit", "-qm", tag)
		testutil.Git(t, repo, "tag", "v"+tag)
	}
	bake := func(rel string) error {
		o := opts(root, repo, filepath.Join(root, "dist"))
		o.Release = rel
		_, err := Bake(ctx, o)
		return err
	}
	want := func(name string, err error, contains ...string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: bake succeeded, want a refusal", name)
			return
		}
		for _, c := range contains {
			if !strings.Contains(err.Error(), c) {
				t.Errorf("%s: error %q does not name %q", name, err, c)
			}
		}
	}

	// 1. modules -> /host/dir
	h1 := hostDir(t, "dir")
	release("1.1.0", func() {
		testutil.Must(t, os.RemoveAll(filepath.Join(repo, "modules")))
		if err := os.Symlink(h1, filepath.Join(repo, "modules")); err != nil {
			t.Fatal(err)
		}
	})
	err := bake("1.1.0")
	want("modules symlink", err, "modules is a symlink to", h1)
	if !errors.Is(err, confine.ErrSymlink) {
		t.Errorf("modules symlink: error %v is not ErrSymlink", err)
	}
	hostIntact(t, "modules symlink", h1, 1)

	// 2. site -> ../../../../host/dir2 and a module with :install_path => 'site'
	h2 := hostDir(t, "dir2")
	testutil.Must(t, os.MkdirAll(filepath.Join(h2, "extra"), 0o755))
	up := strings.Repeat("../", 40) + strings.TrimPrefix(h2, "/")
	release("1.2.0", func() {
		testutil.Must(t, os.Symlink(up, filepath.Join(repo, "site")))
		testutil.Must(t, os.WriteFile(pfPath, append(append([]byte(nil), orig...),
			[]byte("\nmod 'extra', :git => 'file://"+root+"/remotes/ntp.git', :tag => 'v1.0.0', :install_path => 'site'\n")...), 0o644))
	})
	want("install_path through a symlink", bake("1.2.0"), "site is a symlink to")
	hostIntact(t, "install_path through a symlink", h2, 2)
	if ents, _ := os.ReadDir(filepath.Join(h2, "extra")); len(ents) != 0 {
		t.Errorf("install_path through a symlink: the host's extra dir was replaced (%d entries)", len(ents))
	}

	// 3. a module holding outdir -> /host/dir3, another installed into it
	h3 := hostDir(t, "dir3")
	sym := filepath.Join(root, "src", "symmod")
	testutil.Must(t, os.MkdirAll(filepath.Join(sym, "manifests"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(sym, "manifests", "init.pp"), []byte("class symmod { }\n"), 0o644))
	testutil.Must(t, os.Symlink(h3, filepath.Join(sym, "outdir")))
	testutil.Git(t, root, "init", "-q", "-b", "main", sym)
	testutil.Git(t, sym, "add", "-A")
	testutil.Git(t, sym, "commit", "-qm", "symmod")
	testutil.Git(t, sym, "tag", "v1.0.0")
	release("1.3.0", func() {
		testutil.Must(t, os.WriteFile(pfPath, append(append([]byte(nil), orig...), []byte("\nmod 'symmod', :git => 'file://"+sym+"', :tag => 'v1.0.0'\n"+
			"mod 'inner', :git => 'file://"+root+"/remotes/ntp.git', :tag => 'v1.0.0', :install_path => 'modules/symmod/outdir'\n")...), 0o644))
	})
	for i := 0; i < 3; i++ { // it used to depend on the order modules were written in
		want("module inside a module", bake("1.3.0"), "inner", "inside the directory of module symmod")
	}
	hostIntact(t, "module inside a module", h3, 1)

	// the symlink itself, with nothing nested: shipped as a symlink, not followed
	release("1.4.0", func() {
		testutil.Must(t, os.WriteFile(pfPath, append(append([]byte(nil), orig...), []byte("\nmod 'symmod', :git => 'file://"+sym+"', :tag => 'v1.0.0'\n")...), 0o644))
	})
	if err := bake("1.4.0"); err != nil {
		t.Fatalf("a module holding a symlink: %v", err)
	}
	hostIntact(t, "module with a symlink", h3, 1)
	if ents, _ := os.ReadDir(filepath.Join(root, "dist")); len(ents) != 1 {
		t.Errorf("dist holds %d entries, want only example-1.4.0 (refused bakes leave nothing)", len(ents))
	}
}

// tarGz writes a gzip tar of the given entries (hostile names allowed).
func tarGz(t *testing.T, name string, entries []*tar.Header, zeros int64) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg && h.Size == 0 && h.Name == "big" {
			h.Size = zeros
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if h.Name == "big" {
				io.CopyN(tw, zeroReader{}, zeros)
			} else {
				tw.Write(make([]byte, h.Size))
			}
		}
	}
	tw.Close()
	zw.Close()
	f.Close()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func sha256File(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// setConfig commits imagebake.toml with its [base] replaced and tags it.
func setConfig(t *testing.T, repo, tag, base, builder string) {
	t.Helper()
	p := filepath.Join(repo, ConfigName)
	out, err := exec.Command("git", "-C", repo, "show", "v1.0.0:"+ConfigName).Output()
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	i := strings.Index(s, "\n[base]\n")
	j := strings.Index(s, "\n[agents]\n")
	s = s[:i] + "\n[base]\n" + base + "\n" + s[j:]
	s = strings.Replace(s, `builder = "oci"`, `builder = "`+builder+`"`, 1)
	testutil.Must(t, os.WriteFile(p, []byte(s), 0o644))
	testutil.Git(t, repo, "add", "-A")
	testutil.Git(t, repo, "commit", "-qm", tag)
	testutil.Git(t, repo, "tag", "v"+tag)
}

// TestBakeReadsStayInContext: a committed imagebake.toml cannot make a
// host file a layer, and a mismatch does not print the host file's digest.
func TestBakeReadsStayInContext(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	secret := filepath.Join(t.TempDir(), "secret")
	testutil.Must(t, os.WriteFile(secret, []byte("host secret\n"), 0o600))
	setConfig(t, repo, "1.1.0", fmt.Sprintf("rootfs = %q\nsha256 = %q", secret, strings.Repeat("0", 64)), "oci")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Release = "1.1.0"
	_, err := Bake(ctx, o)
	if !errors.Is(err, failure.ErrUsage) || !strings.Contains(err.Error(), "is absolute") {
		t.Errorf("absolute rootfs: Bake = %v, want a usage error saying it is absolute", err)
	}
	// a symlink inside the context leading out of it
	testutil.Must(t, os.Symlink(secret, filepath.Join(root, "base", "link.tar")))
	setConfig(t, repo, "1.2.0", fmt.Sprintf("rootfs = %q\nsha256 = %q", "base/link.tar", strings.Repeat("0", 64)), "oci")
	o.Release = "1.2.0"
	_, err = Bake(ctx, o)
	if !errors.Is(err, failure.ErrUsage) || !strings.Contains(err.Error(), "outside --context") {
		t.Errorf("rootfs through a symlink: Bake = %v, want a usage error naming --context", err)
	}
	// a wrong pin names the file and the pin, never the file's actual digest
	bad := filepath.Join(root, "base", "other.tar.gz")
	tarGz(t, bad, []*tar.Header{{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}}, 0)
	setConfig(t, repo, "1.3.0", fmt.Sprintf("rootfs = %q\nsha256 = %q", "base/other.tar.gz", strings.Repeat("0", 64)), "oci")
	o.Release = "1.3.0"
	_, err = Bake(ctx, o)
	if !errors.Is(err, builders.ErrDigestMismatch) || !strings.Contains(err.Error(), "other.tar.gz does not match") {
		t.Errorf("wrong pin: Bake = %v, want ErrDigestMismatch naming the file", err)
	} else if strings.Contains(err.Error(), sha256File(t, bad)) {
		t.Errorf("wrong pin: the error prints the file's actual sha256: %v", err)
	}
	// not a tar archive, even pinned correctly
	junk := filepath.Join(root, "base", "junk.bin")
	testutil.Must(t, os.WriteFile(junk, []byte(strings.Repeat("this is not a tar archive\n", 100)), 0o644))
	setConfig(t, repo, "1.4.0", fmt.Sprintf("rootfs = %q\nsha256 = %q", "base/junk.bin", sha256File(t, junk)), "oci")
	o.Release = "1.4.0"
	_, err = Bake(ctx, o)
	if !errors.Is(err, builders.ErrBadBase) || !strings.Contains(err.Error(), "is not a tar archive") {
		t.Errorf("non-tar rootfs: Bake = %v, want ErrBadBase saying it is not a tar archive", err)
	}
}

// TestBakeRefusesHostileBases: entries leaving the root, whiteouts naming
// no file and decompression bombs are refused by every builder, naming the
// entry; nothing is left in the out dir.
func TestBakeRefusesHostileBases(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	good := []*tar.Header{{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "etc/a", Mode: 0o644, Size: 3}}
	cases := []struct {
		name    string
		entries []*tar.Header
		zeros   int64
		want    string
	}{
		{"dotdot", append(good, &tar.Header{Name: "../../x", Mode: 0o644, Size: 1}, &tar.Header{Name: "etc/z", Mode: 0o644, Size: 1}), 0, `entry "../../x" leaves the root`},
		{"bad whiteout", append(good, &tar.Header{Name: "etc/.wh...", Mode: 0o644}, &tar.Header{Name: "etc/z", Mode: 0o644, Size: 1}), 0, `whiteout of ".."`},
		{"hard link out", append(good, &tar.Header{Name: "etc/l", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}), 0, "outside the root file system"},
		{"bomb", append(good, &tar.Header{Name: "big", Mode: 0o644}), 200 << 20, "decompression bomb"},
	}
	n := 0
	for _, builder := range []string{"oci", "rootfs"} {
		for _, c := range cases {
			n++
			tag := fmt.Sprintf("1.%d.0", n)
			f := filepath.Join(root, "base", c.name+".tar.gz")
			tarGz(t, f, c.entries, c.zeros)
			setConfig(t, repo, tag, fmt.Sprintf("rootfs = %q\nsha256 = %q", "base/"+c.name+".tar.gz", sha256File(t, f)), builder)
			o := opts(root, repo, filepath.Join(root, "dist"))
			o.Release = tag
			_, err := Bake(ctx, o)
			if !errors.Is(err, builders.ErrBadBase) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s with %s: Bake = %v, want ErrBadBase containing %q", c.name, builder, err, c.want)
			}
			if ents, _ := os.ReadDir(filepath.Join(root, "dist")); len(ents) != 0 {
				t.Errorf("%s with %s: the out dir holds %d entries after a refused bake", c.name, builder, len(ents))
			}
		}
	}
	// devices and setuid files are reported, not refused
	f := filepath.Join(root, "base", "suid.tar.gz")
	tarGz(t, f, append(good, &tar.Header{Name: "bin/su", Mode: 0o4755, Size: 2}, &tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}), 0)
	setConfig(t, repo, "2.0.0", fmt.Sprintf("rootfs = %q\nsha256 = %q", "base/suid.tar.gz", sha256File(t, f)), "rootfs")
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.Release = "2.0.0"
	var log strings.Builder
	o.Log = &log
	if _, err := Bake(ctx, o); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(log.String(), "setuid/setgid files"); n != 1 {
		t.Errorf("the base notes take %d lines, want one:\n%s", n, log.String())
	}
	for _, want := range []string{"1 device nodes or FIFOs (/dev/null)", "1 setuid/setgid files (/bin/su)"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("bake log does not report %q:\n%s", want, log.String())
		}
	}
}

// TestNoInodeSharedWithInputs: the release shares no inode with the base
// file, and a published release none with the dist it came from.
func TestNoInodeSharedWithInputs(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	for _, builder := range []string{"oci", "rootfs"} {
		out := filepath.Join(root, "dist-"+builder)
		o := opts(root, repo, out)
		o.Builder = builder
		if _, err := Bake(ctx, o); err != nil {
			t.Fatal(err)
		}
		base, err := os.Stat(filepath.Join(root, "base", "rootfs.tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		files := 0
		if err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				files++
				if os.SameFile(fi, base) {
					t.Errorf("%s: %s is the base file's inode", builder, p)
				}
			}
			return nil
		}); err != nil || files == 0 {
			t.Fatalf("%s: walking %s: %v (%d files)", builder, out, err, files)
		}
	}
	// publish copies; rewriting the dist in place leaves the store alone
	keys := t.TempDir()
	_, keyPath, err := signing.Generate(keys, "k", "")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := signing.LoadSigner(keyPath, "")
	kr := &signing.Keyring{}
	kr.Add(signer.Public(), "test")
	st := &catalog.Store{Root: filepath.Join(root, "pub"), Keys: kr}
	dist := filepath.Join(root, "dist-oci", "example-1.0.0")
	if _, _, err := st.Publish(t.Context(), dist, signer); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(root, "pub", "images", "example-1.0.0")
	compared := 0
	if err := filepath.WalkDir(dist, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dist, p)
		if err != nil {
			return err
		}
		a, err1 := os.Stat(p)
		b, err2 := os.Stat(filepath.Join(pub, rel))
		if err1 == nil && err2 == nil && a.Mode().IsRegular() {
			compared++
			if os.SameFile(a, b) {
				t.Errorf("published %s is the same inode as the dist file", rel)
			}
		}
		return nil
	}); err != nil || compared == 0 {
		t.Fatalf("walking %s: %v (%d files compared with the store's)", dist, err, compared)
	}
}

// TestBakeOutDirIsLockedSwappedAndCleaned: a second bake into one out dir
// waits for the first; a reader never sees the release missing while it
// is replaced; staging directories of killed bakes are removed.
func TestBakeOutDirIsLockedSwappedAndCleaned(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	out := filepath.Join(root, "dist")
	if _, err := Bake(ctx, opts(root, repo, out)); err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(out, "example-1.0.0")

	// killed bakes left these behind
	for _, n := range []string{".example-1.0.0.tmp-123456", ".example-1.0.1.tmp-99", "example-1.0.0.old-.example-1.0.0.tmp-42"} {
		testutil.Must(t, os.MkdirAll(filepath.Join(out, n, ".payload", "env"), 0o755))
	}
	os.MkdirAll(filepath.Join(out, "mine"), 0o755) // not imagebake's: kept

	// a reader polls the release while it is rebaked (another epoch:
	// other content) three times
	stop := make(chan struct{})
	missing := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				close(missing)
				return
			default:
			}
			if _, err := os.Stat(filepath.Join(final, "index.json")); err != nil {
				select {
				case missing <- err.Error():
				default:
				}
			}
		}
	}()
	for i := 1; i <= 3; i++ {
		o := opts(root, repo, out)
		o.Epoch, o.Force = time.Unix(int64(1700000000+i), 0), true
		if _, err := Bake(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if m, ok := <-missing; ok {
		t.Errorf("a reader saw the release missing while it was replaced: %s", m)
	}
	ents, _ := os.ReadDir(out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "example-1.0.0,mine" {
		t.Errorf("out dir holds %v after the bakes, want [example-1.0.0 mine]", names)
	}

	// a bake waits while another holds the out dir: the events come in
	// the order waiting (it said so), released (by the holder), baked
	lf, err := flock.LockDir(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan string, 3)
	go func() {
		o := opts(root, repo, out)
		o.Epoch, o.Force = time.Unix(1600000000, 0), true
		o.Log = lineFunc(func(l string) {
			if strings.HasPrefix(l, "waiting for out dir "+out) {
				events <- "waiting"
			}
		})
		_, err := Bake(ctx, o)
		if err != nil {
			events <- "failed: " + err.Error()
			return
		}
		events <- "baked"
	}()
	next := func() string {
		select {
		case e := <-events:
			return e
		case <-time.After(time.Minute): // a broken lock: "baked" came first and nothing else comes
			return "nothing"
		}
	}
	first := next()
	events <- "released" // before the lock goes: anything after it saw the lock free
	lf.Close()
	second, third := next(), next()
	if got := strings.Join([]string{first, second, third}, " -> "); got != "waiting -> released -> baked" {
		t.Errorf("a bake into a held out dir: %s; want waiting -> released -> baked", got)
	}
}

// lineFunc is an io.Writer that hands each line written to f.
type lineFunc func(string)

func (f lineFunc) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		f(l)
	}
	return len(p), nil
}

// TestReleaseFilesReadable: every file of a release is 0644 and every
// directory 0755, whatever the umask, so a registry or web server running
// as another user can serve it.
func TestReleaseFilesReadable(t *testing.T) {
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, builder := range []string{"oci", "rootfs"} {
		o := opts(root, repo, filepath.Join(root, "dist-"+builder))
		o.Builder = builder
		if _, err := Bake(ctx, o); err != nil {
			t.Fatal(err)
		}
		if err := filepath.WalkDir(filepath.Join(root, "dist-"+builder, "example-1.0.0"), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			want := fs.FileMode(0o644)
			if d.IsDir() {
				want = 0o755
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: %s has mode %v, want %v", builder, p, fi.Mode().Perm(), want)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBakeOnZstdRootfs: a zstd-compressed rootfs base is read like a gzip
// one: oci keeps it as a zstd layer, rootfs merges it.
func TestBakeOnZstdRootfs(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "etc/os-release", Typeflag: tar.TypeReg, Mode: 0o644, Size: 9})
	tw.Write([]byte("ID=zstd\n\n"))
	tw.Close()
	f := filepath.Join(root, "base", "rootfs.tar.zst")
	out, _ := os.Create(f)
	zw, _ := zstd.NewWriter(out)
	zw.Write(raw.Bytes())
	zw.Close()
	out.Close()
	setConfig(t, repo, "1.1.0", fmt.Sprintf("rootfs = %q\nsha256 = %q", "base/rootfs.tar.zst", sha256File(t, f)), "oci")
	for _, builder := range []string{"oci", "rootfs"} {
		o := opts(root, repo, filepath.Join(root, "dist-"+builder))
		o.Release, o.Builder = "1.1.0", builder
		m, err := Bake(ctx, o)
		if err != nil {
			t.Fatalf("%s on a zstd base: %v", builder, err)
		}
		if builder == "oci" && m.Images[0].Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
			t.Errorf("oci base layer media type = %s, want tar+zstd", m.Images[0].Layers[0].MediaType)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "dist-rootfs", "example-1.1.0", "example-1.1.0-amd64.rootfs.tar.gz"))
	if err != nil || !strings.Contains((testutil.Untar(t, b)["etc/os-release"]), "ID=zstd") {
		t.Errorf("the rootfs image does not hold the zstd base's etc/os-release (%v)", err)
	}
}

// A killed registry merge's pull directory is removed by the next bake or
// merge in the out dir; a running merge's is not.
func TestPullDirsOfKilledMergesRemoved(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	killed := filepath.Join(out, ".pull-123456")
	testutil.Must(t, os.MkdirAll(filepath.Join(killed, "blobs", "sha256"), 0o755))
	live, done, err := PullDir(out)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Out: out}
	lf, err := o.lockOut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lf.Close()
	if _, err := os.Stat(killed); err == nil {
		t.Errorf("%s of a killed merge is still there", killed)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the running merge's %s was removed: %v", live, err)
	}
	done()
	if _, err := os.Stat(live); err == nil {
		t.Errorf("%s is still there once the merge is done", live)
	}
}

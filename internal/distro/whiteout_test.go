package distro

import (
	"archive/tar"
	"fmt"
	"math/rand"
	"path"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// naive is what whiteouts must do, written the obvious (quadratic) way:
// after every layer, the kept paths of lower layers under a whiteout go.
type naive map[string]int // path -> layer

func (n naive) apply(layer int, names []string) {
	for _, name := range names {
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == ".wh..wh..opq":
			for k, l := range n {
				if l < layer && strings.HasPrefix(k, dir+"/") {
					delete(n, k)
				}
			}
		case strings.HasPrefix(base, ".wh."):
			t := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			for k, l := range n {
				if l < layer && (k == t || strings.HasPrefix(k, t+"/")) {
					delete(n, k)
				}
			}
		default:
			n[name] = layer
		}
	}
}

func addEntries(t testing.TB, c *Collector, names []string) {
	for _, name := range names {
		h := &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: "x"}
		if strings.Contains(path.Base(name), ".wh.") {
			h = &tar.Header{Name: name, Typeflag: tar.TypeReg}
		}
		if err := c.Add(h, strings.NewReader("")); err != nil {
			t.Fatal(err)
		}
	}
}

func kept(c *Collector) []string {
	var ks []string
	for k := range c.files {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// The indexed whiteouts remove exactly what the obvious scan removes,
// over random trees, whiteouts and opaque directories in several layers.
func TestWhiteoutsMatchTheObviousScan(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(1))
	dirs := []string{"a", "a/b", "a/b/c", "d", "d/e", "a/bc"}
	for round := range 300 {
		c, ref := NewCollector(), naive{}
		for layer := range 4 {
			if layer > 0 {
				c.NextLayer()
			}
			var names []string
			for range rng.Intn(12) {
				dir := dirs[rng.Intn(len(dirs))]
				switch rng.Intn(5) {
				case 0:
					names = append(names, dir+"/.wh..wh..opq")
				case 1:
					names = append(names, path.Dir(dir)+"/.wh."+path.Base(dir))
				case 2:
					names = append(names, dir+"/.wh.f"+fmt.Sprint(rng.Intn(3)))
				default:
					names = append(names, dir+"/f"+fmt.Sprint(rng.Intn(3)))
				}
			}
			for i, n := range names {
				names[i] = strings.TrimPrefix(n, "./")
			}
			addEntries(t, c, names)
			ref.apply(layer, names)
		}
		var want []string
		for k := range ref {
			want = append(want, k)
		}
		sort.Strings(want)
		if got := kept(c); !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
			t.Fatalf("round %d: kept %v, want %v", round, got, want)
		}
	}
}

// A whiteout's cost is what it removes: n whiteouts over n kept symlinks
// (and n more kept in another directory) look at about n paths, not n*n.
func TestWhiteoutsLinear(t *testing.T) {
	t.Parallel()
	const n = 20000
	var links, others, outs []string
	for i := range n {
		links = append(links, fmt.Sprintf("usr/share/x/f%06d", i))
		others = append(others, fmt.Sprintf("usr/lib/y/f%06d", i))
		outs = append(outs, fmt.Sprintf("usr/share/x/.wh.f%06d", i))
	}
	c := NewCollector()
	addEntries(t, c, links)
	addEntries(t, c, others)
	c.NextLayer()
	addEntries(t, c, outs)
	if len(c.files) != n {
		t.Fatalf("%d kept, want the %d in usr/lib/y", len(c.files), n)
	}
	if c.examined > 2*n {
		t.Errorf("%d whiteouts looked at %d paths, want at most %d", n, c.examined, 2*n)
	}
	// an opaque directory looks at what is below it only
	c.NextLayer()
	before := c.examined
	addEntries(t, c, []string{"usr/lib/y/.wh..wh..opq"})
	if len(c.files) != 0 || c.examined-before > n+1 {
		t.Errorf("opaque usr/lib/y: %d kept, %d paths looked at", len(c.files), c.examined-before)
	}
}

// BenchmarkWhiteouts: a layer of n whiteouts over a layer of n symlinks
// (a layout under 1 MB compressed). Before the index, 16,000 took 12-35 s
// and 60,000 over 7 minutes.
func BenchmarkWhiteouts(b *testing.B) {
	for _, n := range []int{16000, 60000} {
		var links, outs []string
		for i := range n {
			links = append(links, fmt.Sprintf("usr/share/x/f%06d", i))
			outs = append(outs, fmt.Sprintf("usr/share/x/.wh.f%06d", i))
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				c := NewCollector()
				addEntries(b, c, links)
				c.NextLayer()
				addEntries(b, c, outs)
				if len(c.files) != 0 {
					b.Fatalf("%d kept after the whiteouts", len(c.files))
				}
			}
		})
	}
}

// What is kept of status.d/ (one file per package) is capped as a whole:
// past the cap the rest is named in a note, not held in memory.
func TestStatusDirCapped(t *testing.T) {
	t.Parallel()
	c := NewCollector()
	c.maxKept = 1 << 20
	body := strings.Repeat("x", 64<<10)
	for i := range 40 { // 2.5 MiB in all
		h := &tar.Header{Name: fmt.Sprintf("var/lib/dpkg/status.d/pkg%02d", i), Typeflag: tar.TypeReg, Size: int64(len(body))}
		if err := c.Add(h, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if c.kept > c.maxKept || len(c.files) != 16 {
		t.Errorf("kept %d bytes in %d files, want at most %d", c.kept, len(c.files), c.maxKept)
	}
	info := c.Info()
	found := false
	for _, n := range info.Notes {
		found = found || strings.Contains(n, "/var/lib/dpkg/status.d/pkg16 and what follows not read")
	}
	if !found {
		t.Errorf("notes %q do not name where reading stopped", info.Notes)
	}
	// replacing a file frees what it held
	c2 := NewCollector()
	c2.maxKept = 1 << 20
	for range 40 {
		h := &tar.Header{Name: "var/lib/dpkg/status", Typeflag: tar.TypeReg, Size: int64(len(body))}
		c2.NextLayer()
		if err := c2.Add(h, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if c2.kept != int64(len(body)) || c2.overKept {
		t.Errorf("one status file replaced 40 times: %d bytes kept, over the cap %v", c2.kept, c2.overKept)
	}
}

// A base's symlinks are resolved inside the base, never on the host: an
// os-release pointing at a host file, a symlink loop and a chain through
// .. past the root read nothing from this machine, and end.
func TestSymlinksStayInTheBase(t *testing.T) {
	t.Parallel()
	info := collect(t, map[string]string{
		"etc/os-release":      "-> /etc/hostname", // the host has one; the base does not
		"usr/lib/os-release":  "-> ../../../../etc/hostname",
		"var/lib/dpkg/status": "-> loop/a",
		"var/lib/dpkg/loop/a": "-> b",
		"var/lib/dpkg/loop/b": "-> a",
		"bin/sh":              "-> /bin/sh",
	})
	if info.OS != nil || info.Format != "" || len(info.Packages) != 0 || info.Machine != "" {
		t.Errorf("symlinks out of the base or in a loop read %+v", info)
	}
}

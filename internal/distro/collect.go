package distro

import (
	"archive/tar"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
)

// MaxFile is the largest package database or os-release file read.
const MaxFile = 64 << 20

// MaxKept bounds what is kept of all the files read together: a base
// with a hundred thousand files in /var/lib/dpkg/status.d/ (distroless
// keeps one per package) is read up to it, and what is past it is named
// in a note, not held in memory.
const MaxKept = 256 << 20

const (
	debianVersion = "etc/debian_version"
	statusFile    = "var/lib/dpkg/status"
	statusDir     = "var/lib/dpkg/status.d/"
	apkFile       = "lib/apk/db/installed"
)

// pointRelease is what a Debian point release in /etc/debian_version
// looks like: 12.15, 11.11.
var pointRelease = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

// wanted says whether the content of the file at p (clean, no leading
// slash) is kept.
func wanted(p string) bool {
	switch p {
	case "etc/os-release", "usr/lib/os-release", debianVersion, statusFile, apkFile:
		return true
	}
	if rpmFile(p) {
		return true
	}
	return strings.HasPrefix(p, statusDir) && !strings.HasSuffix(p, ".md5sums")
}

// binDir says whether p is in a directory where /bin/sh may point.
func binDir(p string) bool {
	d := path.Dir(p)
	return d == "bin" || d == "usr/bin" || d == "sbin" || d == "usr/sbin"
}

type entry struct {
	layer   int
	link    string // a symlink's target; "" for a file
	content []byte // wanted files: the whole file; bin files: the ELF header
}

// Collector keeps, over the layers of a root file system given in order,
// the files it reads: os-release, the package databases, the symlinks and
// the ELF headers of the programs /bin/sh may be.
type Collector struct {
	layer   int
	files   map[string]entry
	notes   []string
	skipped map[string]bool
	// kids indexes what is kept by directory: each directory ("" is the
	// root) to the paths directly below it that are kept or lead to
	// something kept. A whiteout removes what is under its path by
	// walking it, so its cost is what it removes, not all that is kept
	// (tens of thousands of whiteouts over as many symlinks are common
	// in a layer that deletes a tree, and cheap to craft).
	kids map[string]map[string]struct{}
	// kept is the size of the contents held in files
	kept     int64
	maxKept  int64 // MaxKept; smaller in tests
	overKept bool
	// examined counts the paths whiteouts looked at (tests: it grows
	// with what is removed, not with what is kept times the whiteouts)
	examined int
}

// NewCollector starts with the first layer.
func NewCollector() *Collector {
	return &Collector{files: map[string]entry{}, skipped: map[string]bool{}, kids: map[string]map[string]struct{}{}, maxKept: MaxKept}
}

// forget drops what is kept at p.
func (c *Collector) forget(p string) {
	if e, ok := c.files[p]; ok {
		c.kept -= int64(len(e.content))
		delete(c.files, p)
	}
}

// put keeps e at p and indexes p under each of its directories.
func (c *Collector) put(p string, e entry) {
	c.forget(p)
	c.kept += int64(len(e.content))
	c.files[p] = e
	for p != "" {
		dir := path.Dir(p)
		if dir == "." {
			dir = ""
		}
		set := c.kids[dir]
		if set == nil {
			set = map[string]struct{}{}
			c.kids[dir] = set
		}
		if _, ok := set[p]; ok {
			return
		}
		set[p] = struct{}{}
		p = dir
	}
}

// NextLayer starts the next layer: its entries replace and its whiteouts
// remove what earlier layers had.
func (c *Collector) NextLayer() { c.layer++ }

// remove drops what earlier layers have at p and below (below only, when
// under is set: an opaque directory). It scans what is kept: whiteouts
// are few.
func (c *Collector) remove(p string, under bool) {
	if !under && p != "" {
		c.drop(p)
	}
	// depth first over the index below p; a path is forgotten by the
	// index once nothing is kept at or below it
	type frame struct {
		dir  string
		kids []string
	}
	list := func(dir string) []string {
		ks := make([]string, 0, len(c.kids[dir]))
		for k := range c.kids[dir] {
			ks = append(ks, k)
		}
		return ks
	}
	stack := []frame{{p, list(p)}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if len(top.kids) == 0 {
			dir := top.dir
			stack = stack[:len(stack)-1]
			if len(c.kids[dir]) == 0 {
				delete(c.kids, dir)
				if _, kept := c.files[dir]; !kept && len(stack) > 0 {
					delete(c.kids[stack[len(stack)-1].dir], dir)
				}
			}
			continue
		}
		k := top.kids[len(top.kids)-1]
		top.kids = top.kids[:len(top.kids)-1]
		c.examined++
		c.drop(k)
		stack = append(stack, frame{k, list(k)})
	}
}

// drop forgets what an earlier layer kept at p; the current layer's
// entries stay (a layer's whiteouts hide only the layers below it).
func (c *Collector) drop(p string) {
	if e, ok := c.files[p]; ok && e.layer < c.layer {
		c.forget(p)
	}
}

// Add takes one tar entry of the current layer and, for a file it keeps,
// its content from r.
func (c *Collector) Add(h *tar.Header, r io.Reader) error {
	p := strings.Trim(path.Clean("/"+h.Name), "/")
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	switch {
	case base == ".wh..wh..opq":
		c.remove(dir, true)
		return nil
	case strings.HasPrefix(base, ".wh."):
		c.remove(path.Join(dir, strings.TrimPrefix(base, ".wh.")), false)
		return nil
	}
	// a new entry replaces what an earlier layer had at the same path (a
	// directory merges with the one below); no scan of what is kept: this
	// runs for every entry of every layer
	c.forget(p)
	switch h.Typeflag {
	case tar.TypeSymlink:
		c.put(p, entry{layer: c.layer, link: h.Linkname})
	case tar.TypeLink:
		// a hard link is the file it names: copy what is kept of it
		if e, ok := c.files[strings.Trim(path.Clean("/"+h.Linkname), "/")]; ok {
			e.layer = c.layer
			c.put(p, e)
		}
	case tar.TypeReg:
		switch {
		case wanted(p):
			if h.Size > MaxFile {
				c.notes = append(c.notes, fmt.Sprintf("/%s is %d MiB, past the %d MiB read: not read", p, h.Size>>20, MaxFile>>20))
				return nil
			}
			if c.kept+h.Size > c.maxKept {
				if !c.overKept {
					c.notes = append(c.notes, fmt.Sprintf("/%s and what follows not read: the package databases read so far hold %d MiB, the most read of one base", p, c.maxKept>>20))
					c.overKept = true
				}
				return nil
			}
			b, err := io.ReadAll(io.LimitReader(r, MaxFile))
			if err != nil {
				return fmt.Errorf("reading /%s: %w", p, err)
			}
			c.put(p, entry{layer: c.layer, content: b})
		case binDir(p):
			hdr := make([]byte, 64)
			n, _ := io.ReadFull(r, hdr)
			c.put(p, entry{layer: c.layer, content: hdr[:n]})
		}
	}
	return nil
}

// resolve follows symlinks in p (clean, no leading slash), component by
// component, as the kernel would inside the root file system.
func (c *Collector) resolve(p string) (string, bool) {
	parts := strings.Split(p, "/")
	cur := ""
	for hops := 0; len(parts) > 0; {
		next := path.Join(cur, parts[0])
		parts = parts[1:]
		e, ok := c.files[next]
		if !ok || e.link == "" {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", false
		}
		t := e.link
		if !strings.HasPrefix(t, "/") {
			t = path.Join(cur, t)
		}
		t = strings.Trim(path.Clean("/"+t), "/")
		parts = append(strings.Split(t, "/"), parts...)
		cur = ""
		if t == "" {
			parts = parts[1:]
		}
	}
	return cur, true
}

// file returns the kept content of p after symlinks.
func (c *Collector) file(p string) ([]byte, string, bool) {
	r, ok := c.resolve(p)
	if !ok {
		return nil, "", false
	}
	e, ok := c.files[r]
	if !ok || e.link != "" || e.content == nil {
		return nil, r, false
	}
	return e.content, r, true
}

// Info reads what was collected. Every file that could not be read whole
// is named in Notes; what could be read is returned all the same.
func (c *Collector) Info() *Info {
	info := &Info{Notes: append([]string(nil), c.notes...)}
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if b, real, ok := c.file(p); ok {
			var notes []string
			info.OS, notes = ParseOSRelease("/"+real, b)
			info.Notes = append(info.Notes, notes...)
			break
		}
	}
	if b, _, ok := c.file(debianVersion); ok && info.OS != nil && info.OS.ID == "debian" {
		if v := strings.TrimSpace(string(b)); pointRelease.MatchString(v) {
			info.OS.PointRelease = v
		}
	}
	var ps []Package
	var notes []string
	if b, _, ok := c.file(statusFile); ok {
		info.Format = Dpkg
		ps, notes = ParseDpkgStatus("/"+statusFile, b)
		info.Notes = append(info.Notes, notes...)
	}
	var dir []string
	for k, e := range c.files {
		if strings.HasPrefix(k, statusDir) && e.link == "" && e.content != nil {
			dir = append(dir, k)
		}
	}
	sort.Strings(dir)
	for _, k := range dir {
		info.Format = Dpkg
		more, notes := ParseDpkgStatus("/"+k, c.files[k].content)
		ps = append(ps, more...)
		info.Notes = append(info.Notes, notes...)
	}
	if b, _, ok := c.file(apkFile); ok && info.Format == "" {
		info.Format = Apk
		ps, notes = ParseApkInstalled("/"+apkFile, b)
		info.Notes = append(info.Notes, notes...)
	}
	where := "the dpkg database"
	if info.Format == Apk {
		where = "/" + apkFile
	}
	if info.Format == "" {
		for _, f := range rpmFiles {
			if b, real, ok := c.file(f); ok {
				wal, _, _ := c.file(f + "-wal")
				info.Format, where = Rpm, "/"+real
				ps, notes = ParseRpmdb("/"+real, b, wal)
				info.Notes = append(info.Notes, notes...)
				break
			}
		}
	}
	ps, notes = duplicates(where, ps)
	info.Notes = append(info.Notes, notes...)
	SortPackages(ps)
	info.Packages = ps
	if b, _, ok := c.file("bin/sh"); ok {
		info.Machine = elfMachine(b)
	}
	if info.OS == nil {
		info.Notes = append(info.Notes, "no /etc/os-release or /usr/lib/os-release: the OS is not recorded")
	}
	if info.Format == "" {
		info.Notes = append(info.Notes, "no package database (/var/lib/dpkg/status, /var/lib/dpkg/status.d/, /lib/apk/db/installed, /var/lib/rpm or /usr/lib/sysimage/rpm): no packages are recorded")
	}
	return info
}

// elfMachine is the Go architecture of an ELF header's machine, "" when b
// is not an ELF header imagebake knows. Only the identification and
// e_machine are read: the rest of the file is not kept.
func elfMachine(b []byte) string {
	if len(b) < 20 || string(b[:4]) != elf.ELFMAG {
		return ""
	}
	var order binary.ByteOrder = binary.LittleEndian
	if elf.Data(b[elf.EI_DATA]) == elf.ELFDATA2MSB {
		order = binary.BigEndian
	}
	switch elf.Machine(order.Uint16(b[18:20])) {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_386:
		return "386"
	case elf.EM_PPC64:
		if order == binary.LittleEndian {
			return "ppc64le"
		}
		return "ppc64"
	case elf.EM_S390:
		return "s390x"
	case elf.EM_RISCV:
		return "riscv64"
	case elf.EM_LOONGARCH:
		return "loong64"
	}
	return ""
}

// Package osv reads OSV advisories (https://ossf.github.io/osv-schema/, the
// format osv.dev publishes: one JSON record per advisory, per-ecosystem
// .zip archives of them) and says which installed packages they affect,
// by OSV's own rules: an affected package is matched by ecosystem (Debian:12,
// Alpine:v3.19, Rocky Linux:9, ...) and name (Debian, Ubuntu and rpm
// records name the source package, Alpine the origin); it is affected when
// its version is listed in versions, or falls in a range of type
// ECOSYSTEM (introduced, then fixed or last_affected, compared in the
// package format's own order). Other ecosystems and GIT or SEMVER ranges
// are skipped and counted.
//
// Every record is checked against the OSV JSON schema (schema.json, the
// osv-schema project's validation/schema.json at v1.7.5, pinned by
// scripts/ensure-osv-schema). A record that is not JSON, fails the schema,
// has events out of order or of an unknown type is a note naming the file
// and the field; the rest are read.
package osv

import (
	"archive/zip"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/imagebake/imagebake/internal/ctxio"
	"github.com/imagebake/imagebake/internal/distro"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/pkgversion"
)

//go:embed schema.json
var schemaJSON []byte

// MaxRecord bounds one record's size (osv.dev's largest are well under 1 MiB).
const MaxRecord = 4 << 20

// Record is what the audit reads of an OSV record.
type Record struct {
	ID        string     `json:"id"`
	Aliases   []string   `json:"aliases"`
	Upstream  []string   `json:"upstream"` // Debian's DSA and DLA name their CVEs here
	Related   []string   `json:"related"`  // and some name them here
	Withdrawn string     `json:"withdrawn"`
	Affected  []Affected `json:"affected"`
}

// Affected is one affected package of a record.
type Affected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Ranges   []Range  `json:"ranges"`
	Versions []string `json:"versions"`
}

// Range is a range of affected versions.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one event of a range; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// entry is one affected package of one record, indexed by ecosystem and name.
type entry struct {
	id       string
	aliases  []string // the record's aliases and upstream ids
	where    string   // the file (or zip:member) it came from
	key      string   // "ECOSYSTEM\x00NAME"
	format   string
	ranges   [][]event // the ECOSYSTEM ranges
	versions []string  // the versions list
}

// event is a range event ("introduced": "0" has zero set). Versions are
// parsed when compared: kept parsed, 100,000 records would hold a few
// hundred MiB.
type event struct {
	kind byte // 'i' introduced, 'f' fixed, 'l' last_affected, 'x' limit
	zero bool
	raw  string
}

// DB holds the records read, indexed by ecosystem and package name.
type DB struct {
	byPkg map[string][]entry // "ECOSYSTEM\x00NAME"
	// Records and Files count what was read; Skipped counts affected
	// entries of ecosystems imagebake does not audit and ranges of type
	// GIT or SEMVER; Notes name each record or field that could not be
	// used.
	Records, Files, Skipped int
	// Unconcerned counts the records LoadFor passed over: they name none
	// of the ecosystems asked for.
	Unconcerned int
	Notes       []string

	suffixOnce sync.Once
	suffixes   map[string][]string // Ubuntu:22.04 -> Ubuntu:22.04:LTS, ...
}

// Load reads the OSV records at paths: .json files, directories of them
// (recursively) and .zip archives. A path that does not exist is an error
// (failure.ErrNotFound); a bad record is a note. Records are read in turn
// and checked on every CPU.
func Load(paths []string) (*DB, error) { return LoadFor(paths, nil) }

// Bounds on what Load reads, whatever the archive says of itself.
const (
	// MaxZipEntries bounds the members of one zip archive (osv.dev's
	// all.zip of every ecosystem has a few hundred thousand).
	MaxZipEntries = 500_000
	// MaxRecords bounds the records read in all.
	MaxRecords = 2_000_000
	// MaxTotal bounds the bytes of records read (inflated) in all.
	MaxTotal = 8 << 30
)

// ErrArchive marks an OSV input refused whole: not a regular file, a zip
// archive whose members overlap, or more than the bounds allow.
var ErrArchive = fmt.Errorf("OSV advisories refused: %w", failure.ErrUsage)

// LoadFor is Load of the records that can bear on ecosystems (nil: all):
// a record whose text names none of them is counted in Unconcerned and not
// checked further (osv.dev's archives hold every release of a
// distribution; a base is one). A record with \u escapes is always read:
// an ecosystem could hide in one.
func LoadFor(paths []string, ecosystems []string) (*DB, error) {
	return LoadScoped(context.Background(), paths, Scope{Ecosystems: ecosystems})
}

// Scope is what the records read may bear on: ecosystems (nil: all) and
// package names, binary or source (nil: all).
type Scope struct {
	Ecosystems []string
	Packages   map[string]bool
}

// LoadScoped is Load of the records that can bear on s: a record whose
// text names none of its ecosystems, or whose "name" fields name none of
// its packages, is counted in Unconcerned and not checked further. A base
// holds a few hundred of the tens of thousands of packages a
// distribution's archive has advisories for. A record with \u escapes is
// always read: a name could hide in one. Reading stops when ctx ends.
func LoadScoped(ctx context.Context, paths []string, s Scope) (*DB, error) {
	sch, err := schema()
	if err != nil {
		return nil, err
	}
	if err := checkPaths(paths); err != nil {
		return nil, err
	}
	var total, records atomic.Int64
	db := &DB{byPkg: map[string][]entry{}}
	jobs := make(chan job, 256)
	results := make(chan parsed, 256)
	var readErr error
	var open []io.Closer // zip archives, closed when every member is read
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	go func() {
		defer failure.Crash()
		defer close(jobs)
		readErr = readPaths(ctx, paths, jobs, &open, &records)
	}()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			defer failure.Crash()
			work(ctx, sch, s, jobs, results, &total)
		})
	}
	go func() {
		defer failure.Crash()
		wg.Wait()
		close(results)
	}()
	for r := range results {
		db.merge(r)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reading OSV advisories: %w", context.Cause(ctx))
	}
	if readErr != nil {
		return nil, readErr
	}
	if n := total.Load(); n > MaxTotal {
		return nil, fmt.Errorf("%w: %s hold more than %d GiB of records (%d bytes read)", ErrArchive, strings.Join(paths, ", "), MaxTotal>>30, n)
	}
	sort.Strings(db.Notes)
	for k := range db.byPkg {
		es := db.byPkg[k]
		sort.SliceStable(es, func(i, j int) bool { return es[i].id < es[j].id })
	}
	return db, nil
}

// checkPaths refuses paths that do not exist or are not regular files or
// directories, naming each.
func checkPaths(paths []string) error {
	var bad []error
	for _, p := range paths {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			bad = append(bad, fmt.Errorf("OSV advisories %s: no such file or directory: %w", p, failure.ErrNotFound))
		case err != nil:
			bad = append(bad, fmt.Errorf("OSV advisories %s: %w", p, err))
		case !fi.IsDir() && !fi.Mode().IsRegular():
			bad = append(bad, notRegular(p, fi.Mode()))
		}
	}
	return errors.Join(bad...)
}

// work reads, scopes and parses the records of jobs into results, on one
// CPU, counting their bytes in total.
func work(ctx context.Context, sch *jsonschema.Schema, s Scope, jobs <-chan job, results chan<- parsed, total *atomic.Int64) {
	for j := range jobs {
		if ctx.Err() != nil {
			continue // drained: the reader stops at its next record
		}
		b, err := j.bytes(ctx)
		if err != nil {
			j.note = err.Error()
		}
		if total.Add(int64(len(b))) > MaxTotal {
			j.note = fmt.Sprintf("past the %d GiB of records a run reads: left out", MaxTotal>>30)
			b = nil
		}
		switch {
		case j.note != "":
			results <- parsed{where: j.where, notes: []string{j.where + ": " + j.note}}
		case !mayConcern(b, s):
			results <- parsed{where: j.where, unconcerned: true}
		default:
			results <- parse(sch, j.where, b)
		}
	}
}

// job is one record's bytes, or why they could not be read.
type job struct {
	where string
	b     []byte
	zf    *zip.File // b is this zip member's (a zip.File opens concurrently)
	note  string
}

// bytes are the job's record: read from its zip member if it has one.
func (j *job) bytes(ctx context.Context) ([]byte, error) {
	if j.zf == nil {
		return j.b, nil
	}
	r, err := j.zf.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(ctxio.Reader(ctx, r), MaxRecord+1))
	if err == nil && len(b) > MaxRecord {
		return nil, fmt.Errorf("inflates past the %d bytes a record may have", MaxRecord)
	}
	return b, err
}

// notRegular refuses an input that is a FIFO, a device or a socket (a
// FIFO would block the read for ever).
func notRegular(p string, m fs.FileMode) error {
	return fmt.Errorf("%w: %s is a %s: OSV advisories are read from regular files (.json, .zip) and directories of them", ErrArchive, p, typeOf(m))
}

func typeOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// readPaths reads every record at paths into jobs, counting them.
func readPaths(ctx context.Context, paths []string, jobs chan<- job, open *[]io.Closer, records *atomic.Int64) error {
	send := func(j job) error {
		if records.Add(1) > MaxRecords {
			return fmt.Errorf("%w: %s hold more than %d records", ErrArchive, strings.Join(paths, ", "), MaxRecords)
		}
		select {
		case jobs <- j:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("OSV advisories %s: %w", p, err)
		}
		switch {
		case fi.IsDir():
			err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if err := ctx.Err(); err != nil {
					return context.Cause(ctx)
				}
				if d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".json") {
					return readFile(ctx, path, send)
				}
				return nil
			})
		case strings.HasSuffix(p, ".zip"):
			err = readZip(ctx, p, send, open)
		default:
			err = readFile(ctx, p, send)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// openRegular opens path without blocking (a FIFO put in its place after
// the check) and refuses anything but a regular file.
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("OSV advisories %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = notRegular(path, fi.Mode())
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

func readFile(ctx context.Context, path string, send func(job) error) error {
	f, _, err := openRegular(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(ctxio.Reader(ctx, f), MaxRecord+1))
	if err != nil {
		return fmt.Errorf("OSV advisories %s: %w", path, err)
	}
	return send(job{where: path, b: b})
}

// readZip sends each .json member of the zip archive at path, to be
// inflated by the workers. An archive with more members than
// MaxZipEntries, or whose members share bytes (a zip bomb: many entries
// inflating one deflate stream), is refused whole.
func readZip(ctx context.Context, path string, send func(job) error, open *[]io.Closer) error {
	f, fi, err := openRegular(path)
	if err != nil {
		return err
	}
	z, err := zip.NewReader(f, fi.Size())
	if err != nil {
		f.Close()
		return fmt.Errorf("OSV advisories %s: not a zip archive: %w", path, err)
	}
	*open = append(*open, f) // its members are read by the workers
	if len(z.File) > MaxZipEntries {
		return fmt.Errorf("%w: %s has %d members, more than the %d an archive may have", ErrArchive, path, len(z.File), MaxZipEntries)
	}
	if err := overlapping(ctx, path, z.File); err != nil {
		return err
	}
	for _, zf := range z.File {
		if !strings.HasSuffix(zf.Name, ".json") {
			continue
		}
		where := path + ":" + zf.Name
		var err error
		if zf.UncompressedSize64 > MaxRecord {
			err = send(job{where: where, note: fmt.Sprintf("%d bytes, over the %d a record may have", zf.UncompressedSize64, MaxRecord)})
		} else {
			err = send(job{where: where, zf: zf}) // inflated by the worker
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// overlapping refuses members whose data share bytes of the archive.
func overlapping(ctx context.Context, path string, fs []*zip.File) error {
	type span struct {
		start, end uint64
		name       string
	}
	spans := make([]span, 0, len(fs))
	for i, zf := range fs {
		if i%4096 == 0 && ctx.Err() != nil {
			return context.Cause(ctx)
		}
		off, err := zf.DataOffset()
		if err != nil {
			return fmt.Errorf("%w: %s: member %q: %v", ErrArchive, path, zf.Name, err)
		}
		spans = append(spans, span{uint64(off), uint64(off) + zf.CompressedSize64, zf.Name})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return fmt.Errorf("%w: %s is a zip archive whose members overlap (%q and %q share bytes): a zip bomb, not an OSV export", ErrArchive, path, spans[i-1].name, spans[i].name)
		}
	}
	return nil
}

// mayConcern says whether record b may name one of the ecosystems of s
// (as "Debian:12" or a suffixed "Debian:12:...") and one of its packages
// (the value of a "name" field). It errs towards yes.
func mayConcern(b []byte, s Scope) bool {
	if bytes.Contains(b, []byte(`\u`)) {
		return true
	}
	if s.Ecosystems != nil {
		found := false
		for _, e := range s.Ecosystems {
			if bytes.Contains(b, []byte(`"`+e+`"`)) || bytes.Contains(b, []byte(`"`+e+`:`)) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return s.Packages == nil || namesOne(b, s.Packages)
}

// namesOne says whether a "name" field of the JSON text b has a value in
// names, or one it cannot read simply (an escape): yes then.
func namesOne(b []byte, names map[string]bool) bool {
	key := []byte(`"name"`)
	for {
		i := bytes.Index(b, key)
		if i < 0 {
			return false
		}
		rest := bytes.TrimLeft(b[i+len(key):], " \t\r\n")
		if len(rest) == 0 || rest[0] != ':' {
			b = b[i+len(key)-1:] // "name" as a value, not a key; its closing quote may open one
			continue
		}
		b = rest
		b = bytes.TrimLeft(b[1:], " \t\r\n")
		if len(b) == 0 || b[0] != '"' {
			continue
		}
		end := bytes.IndexByte(b[1:], '"')
		if end < 0 {
			return true
		}
		v := b[1 : 1+end]
		if bytes.IndexByte(v, '\\') >= 0 || names[string(v)] {
			return true
		}
		// on from the value's opening quote: each turn passes one key
	}
}

// parsed is one record checked: its affected packages to index, or
// the notes saying why (some of) it cannot be used.
type parsed struct {
	where   string
	entries []entry
	notes   []string
	skipped int
	counted bool // a record read (not withdrawn, not refused)
	// unconcerned: it names none of the ecosystems asked for
	unconcerned bool
}

// parse checks one record against the schema and the version orders.
func parse(sch *jsonschema.Schema, where string, b []byte) parsed {
	out := parsed{where: where}
	note := func(field, what string) {
		w := where
		if field != "" {
			w += ": " + field
		}
		out.notes = append(out.notes, w+": "+what)
	}
	if len(b) > MaxRecord {
		note("", fmt.Sprintf("over the %d bytes a record may have", MaxRecord))
		return out
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		note("", "not JSON: "+err.Error())
		return out
	}
	if err := sch.Validate(doc); err != nil {
		note(schemaField(err), "does not follow the OSV schema: "+schemaReason(err))
		return out
	}
	rec := recordOf(doc) // the schema checked its shape: no second parse

	if rec.Withdrawn != "" {
		return out
	}
	out.counted = true
	for i := range rec.Affected {
		a := &rec.Affected[i]
		format := FormatOf(a.Package.Ecosystem)
		if format == "" {
			out.skipped++
			continue
		}
		for _, r := range a.Ranges {
			if r.Type != "ECOSYSTEM" {
				out.skipped++ // GIT, SEMVER: not versions of a package format
			}
		}
		if bad := checkRanges(format, a, fmt.Sprintf("affected[%d]", i)); bad != "" {
			note("", bad)
			continue
		}
		out.entries = append(out.entries, compile(where, rec, format, a))
	}
	return out
}

// compile parses the versions of an affected package checkRanges accepted.
func compile(where string, rec *Record, format string, a *Affected) entry {
	e := entry{id: rec.ID, where: where, format: format, key: a.Package.Ecosystem + "\x00" + a.Package.Name}
	if n := len(rec.Aliases) + len(rec.Upstream) + len(rec.Related); n > 0 {
		e.aliases = append(append(append(make([]string, 0, n), rec.Aliases...), rec.Upstream...), rec.Related...)
	}
	for _, r := range a.Ranges {
		var evs []event
		for _, ev := range r.Events {
			var x event
			switch {
			case ev.Introduced != "":
				x = event{kind: 'i', raw: ev.Introduced, zero: ev.Introduced == "0"}
			case ev.Fixed != "":
				x = event{kind: 'f', raw: ev.Fixed}
			case ev.LastAffected != "":
				x = event{kind: 'l', raw: ev.LastAffected}
			default:
				x = event{kind: 'x', raw: ev.Limit}
			}
			evs = append(evs, x)
		}
		e.ranges = append(e.ranges, evs)
	}
	e.versions = a.Versions
	return e
}

// merge indexes what parse found.
func (db *DB) merge(p parsed) {
	db.Files++
	db.Notes = append(db.Notes, p.notes...)
	db.Skipped += p.skipped
	if p.counted {
		db.Records++
	}
	if p.unconcerned {
		db.Unconcerned++
	}
	for _, e := range p.entries {
		db.byPkg[e.key] = append(db.byPkg[e.key], e)
	}
}

// schemaField and schemaReason make a validation error one line: the
// instance location (the field) and the first leaf cause.
func schemaField(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return ""
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	return "/" + strings.Join(ve.InstanceLocation, "/")
}

func schemaReason(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	return ve.ErrorKind.LocalizedString(message.NewPrinter(language.English))
}

// checkRanges refuses events of an unknown type and ECOSYSTEM ranges
// whose events are out of order, naming the field; it leaves GIT and
// SEMVER ranges out (the caller counts them).
func checkRanges(format string, a *Affected, field string) string {
	var keep []Range
	for ri, r := range a.Ranges {
		f := fmt.Sprintf("%s.ranges[%d]", field, ri)
		if r.Type != "ECOSYSTEM" {
			continue
		}
		prev := ""
		for ei, e := range r.Events {
			v := e.Introduced + e.Fixed + e.LastAffected + e.Limit
			n := 0
			for _, s := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
				if s != "" {
					n++
				}
			}
			if n != 1 {
				return fmt.Sprintf("%s.events[%d]: an event has exactly one of introduced, fixed, last_affected, limit", f, ei)
			}
			if v == "0" && e.Introduced == "0" {
				if ei != 0 {
					return fmt.Sprintf("%s.events[%d]: introduced \"0\" after other events: the events are out of order", f, ei)
				}
				prev = ""
				continue
			}
			if prev != "" {
				c, err := pkgversion.Compare(format, prev, v)
				if err != nil {
					return fmt.Sprintf("%s.events[%d]: %v", f, ei, err)
				}
				if c > 0 {
					return fmt.Sprintf("%s.events[%d]: %s is below %s, an event before it: the events are out of order", f, ei, v, prev)
				}
			} else if _, err := pkgversion.Compare(format, v, v); err != nil {
				return fmt.Sprintf("%s.events[%d]: %v", f, ei, err)
			}
			prev = v
		}
		keep = append(keep, r)
	}
	a.Ranges = keep
	return ""
}

// FormatOf is the package format of an OSV ecosystem ("" when imagebake
// does not audit it).
func FormatOf(ecosystem string) string {
	name, _, _ := strings.Cut(ecosystem, ":")
	switch name {
	case "Debian", "Ubuntu":
		return distro.Dpkg
	case "Alpine":
		return distro.Apk
	case "Rocky Linux", "AlmaLinux", "Red Hat", "openSUSE", "SUSE", "Mageia", "openEuler":
		return distro.Rpm
	}
	return ""
}

// EcosystemOf is the OSV ecosystem of a base's OS: Debian:12, Ubuntu:22.04,
// Alpine:v3.19, Rocky Linux:9, AlmaLinux:9 ("" when not known).
func EcosystemOf(o *distro.OS) string {
	if o == nil || o.VersionID == "" {
		return ""
	}
	major, rest, _ := strings.Cut(o.VersionID, ".")
	minor, _, _ := strings.Cut(rest, ".")
	switch o.ID {
	case "debian":
		return "Debian:" + major
	case "ubuntu":
		return "Ubuntu:" + o.VersionID
	case "alpine":
		return "Alpine:v" + major + "." + minor
	case "rocky":
		return "Rocky Linux:" + major
	case "almalinux":
		return "AlmaLinux:" + major
	}
	return ""
}

// Hit is one advisory affecting one installed package.
type Hit struct {
	ID      string
	Aliases []string
	Package string // the installed package
	Version string // its version
	Fixed   string // the first fixed version above it ("": no fix yet)
	From    string // the file (or zip:member) the advisory came from
}

// Affecting lists the advisories that affect the installed package p (by
// its name and its source package) on ecosystem.
func (db *DB) Affecting(ecosystem string, p distro.Package) []Hit {
	if db == nil || ecosystem == "" {
		return nil
	}
	pv, err := pkgversion.Parse(FormatOf(ecosystem), p.Version)
	if err != nil {
		return nil // a version its own format does not read is not judged
	}
	names := []string{p.Name}
	if p.Source != "" && p.Source != p.Name {
		names = append(names, p.Source)
	}
	var out []Hit
	var seen map[string]bool
	for _, n := range names {
		for _, k := range db.keys(ecosystem, n) {
			for _, e := range db.byPkg[k] {
				if seen[e.id] {
					continue
				}
				if hit, ok := e.affects(pv); ok {
					if seen == nil {
						seen = map[string]bool{}
					}
					seen[e.id] = true
					hit.Package, hit.Version = p.Name, p.Version
					out = append(out, hit)
				}
			}
		}
	}
	return out
}

// keys are the index keys of name on ecosystem: the ecosystem itself and
// its suffixed forms (Ubuntu:22.04:LTS for Ubuntu:22.04).
func (db *DB) keys(ecosystem, name string) []string {
	out := []string{ecosystem + "\x00" + name}
	db.suffixOnce.Do(db.indexSuffixes)
	for _, eco := range db.suffixes[ecosystem] {
		out = append(out, eco+"\x00"+name)
	}
	return out
}

func (db *DB) indexSuffixes() {
	db.suffixes = map[string][]string{}
	seen := map[string]bool{}
	for k := range db.byPkg {
		eco, _, _ := strings.Cut(k, "\x00")
		if seen[eco] {
			continue
		}
		seen[eco] = true
		parts := strings.Split(eco, ":")
		for i := 2; i < len(parts); i++ {
			base := strings.Join(parts[:i], ":")
			db.suffixes[base] = append(db.suffixes[base], eco)
		}
	}
}

// affects says whether version v is affected by e (in a range of type
// ECOSYSTEM, or listed in versions), and the version that fixes it: the
// first fixed event above it.
func (e entry) affects(v pkgversion.Version) (Hit, bool) {
	cmp := func(raw string) int {
		x, err := pkgversion.Parse(e.format, raw)
		if err != nil {
			return 0 // checkRanges refused events that do not parse
		}
		return v.Compare(x)
	}
	listed := false
	for _, x := range e.versions {
		if pv, err := pkgversion.Parse(e.format, x); err == nil && pv.Compare(v) == 0 {
			listed = true
			break
		}
	}
	for _, r := range e.ranges {
		affected, fixed := false, ""
		for _, ev := range r {
			switch ev.kind {
			case 'i':
				if ev.zero || cmp(ev.raw) >= 0 {
					affected, fixed = true, ""
				}
			case 'f':
				if cmp(ev.raw) >= 0 {
					affected = false
				} else if fixed == "" {
					fixed = ev.raw
				}
			case 'l':
				if cmp(ev.raw) > 0 {
					affected = false
				}
			}
		}
		if affected || (listed && fixed != "") {
			return e.hit(fixed), true
		}
	}
	if listed {
		return e.hit(""), true
	}
	return Hit{}, false
}

func (e entry) hit(fixed string) Hit {
	return Hit{ID: e.id, Aliases: e.aliases, From: e.where, Fixed: fixed}
}

var (
	schemaOnce sync.Once
	compiled   *jsonschema.Schema
	schemaErr  error
)

// schema is the OSV JSON schema, compiled once.
func schema() (*jsonschema.Schema, error) {
	schemaOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
		if err != nil {
			schemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		const url = "https://raw.githubusercontent.com/ossf/osv-schema/main/validation/schema.json"
		if err := c.AddResource(url, doc); err != nil {
			schemaErr = err
			return
		}
		compiled, schemaErr = c.Compile(url)
	})
	return compiled, schemaErr
}

// recordOf takes a Record out of a record the schema accepted (the
// generic JSON document it was checked as).
func recordOf(doc any) *Record {
	m, _ := doc.(map[string]any)
	r := &Record{ID: str(m["id"]), Withdrawn: str(m["withdrawn"]), Aliases: strs(m["aliases"]), Upstream: strs(m["upstream"]), Related: strs(m["related"])}
	affected, _ := m["affected"].([]any)
	for _, x := range affected {
		am, _ := x.(map[string]any)
		var a Affected
		pm, _ := am["package"].(map[string]any)
		a.Package.Ecosystem, a.Package.Name = str(pm["ecosystem"]), str(pm["name"])
		a.Versions = strs(am["versions"])
		ranges, _ := am["ranges"].([]any)
		for _, y := range ranges {
			rm, _ := y.(map[string]any)
			rg := Range{Type: str(rm["type"])}
			events, _ := rm["events"].([]any)
			for _, z := range events {
				em, _ := z.(map[string]any)
				rg.Events = append(rg.Events, Event{Introduced: str(em["introduced"]), Fixed: str(em["fixed"]), LastAffected: str(em["last_affected"]), Limit: str(em["limit"])})
			}
			a.Ranges = append(a.Ranges, rg)
		}
		r.Affected = append(r.Affected, a)
	}
	return r
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func strs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

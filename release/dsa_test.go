package release

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
)

// A Debian security update that ships a new upstream point release
// (openssl 3.0.11-1~deb12u2 -> 3.0.13-1~deb12u1 by a DSA) is a SECURITY
// release when the declared advisory says it fixes openssl, by its OSV
// record or --advisory ID=NAME; each advisory is credited with its own
// package changes only; a change no advisory claims keeps a security
// release out; a mapping naming a package the candidate does not change
// is refused, naming both.
func TestDSAUpstreamPointRelease(t *testing.T) {
	t.Parallel()
	prev := withBase(debian(t, "rootfs:a@sha256:1", bookworm,
		"openssl 3.0.11-1~deb12u2", "libssl3 3.0.11-1~deb12u2 openssl", "libc-bin 2.36-9+deb12u3 glibc", "curl 7.88.1-10+deb12u5"))
	cand := withBase(debian(t, "rootfs:a@sha256:2", bookworm,
		"openssl 3.0.13-1~deb12u1", "libssl3 3.0.13-1~deb12u1 openssl", "libc-bin 2.36-9+deb12u4 glibc", "curl 7.88.1-10+deb12u5"))
	two := []string{"DSA-6001-1", "DSA-6002-1"}

	// declared without saying what they fix: the upstream move is MINOR
	p, err := Propose(prev, cand, Rules{Advisories: two})
	if err != nil || p.Next != "1.5.0" {
		t.Fatalf("plan with bare advisories = %+v, %v; want 1.5.0 (MINOR)", p, err)
	}
	if err := Check(prev, cand, "1.4.3", Rules{Advisories: two}); !errors.Is(err, ErrNumber) {
		t.Errorf("1.4.3 with bare advisories = %v, want refused", err)
	}

	// each advisory names its package (binary or source name)
	ids, fixes, err := ParseAdvisories([]string{"DSA-6001-1=openssl", "DSA-6002-1=glibc"})
	if err != nil {
		t.Fatal(err)
	}
	r := Rules{Advisories: ids, AdvisoryFixes: fixes}
	p, err = Propose(prev, cand, r)
	if err != nil || p.Next != "1.4.3" || p.Level != "SECURITY" {
		t.Fatalf("plan = %+v, %v; want 1.4.3 (SECURITY)", p, err)
	}
	var openssl string
	for _, c := range p.Changes {
		if c.What == "package openssl" {
			openssl = c.Reason
		}
	}
	if want := "3.0.11-1~deb12u2 -> 3.0.13-1~deb12u1: new upstream version fixing DSA-6001-1 (--advisory DSA-6001-1=...): SECURITY"; openssl != want {
		t.Errorf("openssl's reason = %q, want %q", openssl, want)
	}
	if err := Check(prev, cand, "1.4.3", r); err != nil {
		t.Errorf("1.4.3 with each advisory's packages = %v", err)
	}
	got := map[string][]string{}
	for _, f := range FixesOf(prev, cand, r) {
		for _, pk := range f.Packages {
			got[f.Advisory] = append(got[f.Advisory], pk.Name)
		}
	}
	if !slices.Equal(got["DSA-6001-1"], []string{"libssl3", "openssl"}) || !slices.Equal(got["DSA-6002-1"], []string{"libc-bin"}) {
		t.Errorf("fixes = %v, want DSA-6001-1: libssl3, openssl; DSA-6002-1: libc-bin", got)
	}

	// one advisory named, the other bare: the bare one gets what is left
	r = Rules{Advisories: two, AdvisoryFixes: map[string][]string{"DSA-6001-1": {"openssl"}}}
	got = map[string][]string{}
	for _, f := range FixesOf(prev, cand, r) {
		for _, pk := range f.Packages {
			got[f.Advisory] = append(got[f.Advisory], pk.Name)
		}
	}
	if !slices.Equal(got["DSA-6002-1"], []string{"libc-bin"}) || slices.Contains(got["DSA-6002-1"], "openssl") {
		t.Errorf("fixes with one bare advisory = %v", got)
	}

	// every advisory named, a change none claims: not a security release
	r = Rules{Advisories: []string{"DSA-6001-1"}, AdvisoryFixes: map[string][]string{"DSA-6001-1": {"openssl"}}}
	err = Check(prev, cand, "1.4.3", r)
	if !errors.Is(err, ErrNumber) || !strings.Contains(err.Error(), "package libc-bin") || !strings.Contains(err.Error(), "no advisory claims") {
		t.Errorf("a change no advisory claims = %v", err)
	}
	if p, _ := Propose(prev, cand, r); p.Next != "1.5.0" || !strings.Contains(p.Note, "libc-bin") {
		t.Errorf("plan with an unclaimed change = %s, note %q", p.Next, p.Note)
	}

	// a name the candidate does not change
	r = Rules{Advisories: []string{"DSA-6001-1"}, AdvisoryFixes: map[string][]string{"DSA-6001-1": {"nginx"}}}
	if err := Check(prev, cand, "1.4.3", r); failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "DSA-6001-1 names nginx") || !strings.Contains(err.Error(), "openssl") {
		t.Errorf("a mapping naming an untouched package = %v", err)
	}

	// the OSV record says what the advisory fixes
	r = ClaimsFromOSV(Rules{Advisories: []string{"DSA-6001-1", "DSA-6002-1"}}, []OSVFix{
		{Advisory: "DSA-6001-1", Package: "openssl", From: "debian/DSA-6001-1.json"},
		{Advisory: "DSA-6001-1", Package: "libssl3", From: "debian/DSA-6001-1.json"},
		{Advisory: "DEBIAN-CVE-2026-1", Aliases: []string{"DSA-6002-1"}, Package: "libc-bin", From: "debian/DEBIAN-CVE-2026-1.json"},
	})
	p, err = Propose(prev, cand, r)
	if err != nil || p.Next != "1.4.3" {
		t.Fatalf("plan from OSV records = %+v, %v", p, err)
	}
	if flags := AdvisoryFlags([]OSVFix{{Advisory: "DSA-6001-1", Package: "openssl"}, {Advisory: "DSA-6001-1", Package: "libssl3"}}); !slices.Equal(flags, []string{"--advisory DSA-6001-1=libssl3,openssl"}) {
		t.Errorf("AdvisoryFlags = %q", flags)
	}
}

// --advisory values: IDs, ID=NAME,..., and IMAGEBAKE_ADVISORIES's comma
// split of a mapping.
func TestParseAdvisories(t *testing.T) {
	t.Parallel()
	ids, fixes, err := ParseAdvisories([]string{"DSA-6001-1=openssl", "libssl3", "CVE-2026-1", "DSA-6002-1=glibc"})
	if err != nil || !slices.Equal(ids, []string{"DSA-6001-1", "CVE-2026-1", "DSA-6002-1"}) ||
		!slices.Equal(fixes["DSA-6001-1"], []string{"openssl", "libssl3"}) || !slices.Equal(fixes["DSA-6002-1"], []string{"glibc"}) || fixes["CVE-2026-1"] != nil {
		t.Errorf("ParseAdvisories = %q, %v, %v", ids, fixes, err)
	}
	for _, bad := range []string{"DSA-1=", "heartbleed", "=openssl"} {
		if _, _, err := ParseAdvisories([]string{bad}); failure.Code(err) != failure.ExitUsage {
			t.Errorf("ParseAdvisories(%q) = %v, want a usage error", bad, err)
		}
	}
}

package versionq

import (
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		q   string
		pre bool
		yes []string
		no  []string
	}{
		{"2", false, []string{"2.0.0", "2.9.9"}, []string{"1.9.9", "3.0.0", "2.1.0-rc1"}},
		{"2.x", true, []string{"2.0.0-rc1", "2.1.0-rc1"}, []string{"3.0.0-rc1", "1.9.9"}},
		{"2.4", false, []string{"2.4.0", "2.4.7"}, []string{"2.5.0", "2.3.9"}},
		{"2.4.X", false, []string{"2.4.7"}, []string{"2.5.0"}},
		{"~2.4.1", false, []string{"2.4.1", "2.4.9"}, []string{"2.4.0", "2.5.0"}},
		{"^2.4.1", false, []string{"2.4.1", "2.9.0"}, []string{"2.4.0", "3.0.0"}},
		{"2.4.1", false, []string{"2.4.1"}, []string{"2.4.2"}},
		{"2.4.1-rc1", false, []string{"2.4.1-rc1"}, []string{"2.4.1"}},
		{">=2.1 <3", false, []string{"2.1.0", "2.9.9"}, []string{"2.0.9", "3.0.0"}},
	}
	for _, c := range cases {
		q, err := Parse(c.q, false)
		if err != nil {
			t.Fatalf("%s: %v", c.q, err)
		}
		for _, v := range c.yes {
			if !q.Match(semver.MustParse(v), c.pre) {
				t.Errorf("%q should match %s", c.q, v)
			}
		}
		for _, v := range c.no {
			if q.Match(semver.MustParse(v), c.pre) {
				t.Errorf("%q should not match %s", c.q, v)
			}
		}
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]string{
		"x.2":                    "left-anchored",
		"*":                      "left-anchored",
		"latest":                 "is not a version, a major, a major.minor or a constraint",
		"two":                    "is not a version",
		"9223372036854775807":    "too large",
		"~1.9223372036854775807": "too large",
	} {
		_, err := Parse(q, false)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", q, err, want)
		}
	}
	q, err := Parse("latest", true)
	if err != nil || !q.Latest || q.Match(semver.MustParse("2.0.0-rc1"), false) || !q.Match(semver.MustParse("9.0.0"), false) {
		t.Errorf("latest: %+v %v", q, err)
	}
	if q, _ := Parse("2.4", false); q.Major != 2 {
		t.Errorf("major of 2.4 = %d", q.Major)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"2", "2.x", "~2.4", "^1.2.3", ">=1 <2", "latest", "x.1", "1.2.3-rc.1", "2147483647.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s, true)
		if err != nil {
			return
		}
		q.Match(semver.MustParse("1.2.3"), true)
	})
}

func TestRewriteKeepsShape(t *testing.T) {
	t.Parallel()
	to := semver.MustParse("2.1.3")
	for in, want := range map[string]string{
		"1": "2", "1.x": "2.x", "1.4": "2.1", "1.4.X": "2.1.X", "~1.4": "~2.1",
		"^1.4.0": "^2.1.3", "1.4.2": "2.1.3", "latest": "latest", ">=1": ">=1",
	} {
		q, err := Parse(in, true)
		if err != nil {
			t.Fatal(err)
		}
		if got, note := q.Rewrite(to); got != want || note != "" {
			t.Errorf("Rewrite(%q) = %q, %q; want %q", in, got, note, want)
		}
	}
	q, _ := Parse("<2", true)
	if got, note := q.Rewrite(to); got != "<2" || !strings.Contains(note, "does not admit 2.1.3") {
		t.Errorf("Rewrite(<2) = %q, %q", got, note)
	}
}

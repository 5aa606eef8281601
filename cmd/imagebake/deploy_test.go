package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/signing"
)

// check, select and upgrade report every selection's problem in one run
// and exit with the most severe code: the obsolete release (4) is not
// hidden by the selections that match nothing (3).
func TestDeployReportsEverySelection(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "testdata", "catalog.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pub, key, err := signing.Generate(dir, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signing.LoadSigner(key, "")
	if err != nil {
		t.Fatal(err)
	}
	cat := filepath.Join(dir, "catalog.toml")
	os.WriteFile(cat, data, 0o644)
	os.WriteFile(cat+".minisig", signer.Sign(data, "catalog.toml", ""), 0o644)
	t.Setenv("IMAGEBAKE_TRUSTED_KEYS", pub)
	df := filepath.Join(dir, "deploy.yaml")
	src := "images:\n  gone:\n    image: nope\n    version: \"1\"\n  legacy:\n    image: refspec\n    version: 1.3.0\n  web:\n    image: refspec\n    version: \"1.4\"\n  typo:\n    image: refspec\n    version: \"7\"\n"
	os.WriteFile(df, []byte(src), 0o644)
	for _, c := range []struct {
		verb string
		code int
		also []string
	}{
		{"check", failure.ExitVerify, []string{"1 of the selections"}},
		{"select", failure.ExitVerify, []string{"1.3.0"}},
		{"upgrade", failure.ExitNotFound, nil}, // an obsolete release can be upgraded from
	} {
		t.Run(c.verb, func(t *testing.T) {
			root := newRootCommand()
			var out strings.Builder
			root.SetOut(&out)
			args := []string{c.verb, df, "--catalog", cat}
			if c.verb == "check" {
				args = append(args, "--now", "2026-10-10")
			}
			root.SetArgs(args)
			err := root.ExecuteContext(context.Background())
			if got := failure.Code(err); got != c.code {
				t.Fatalf("imagebake %s: exit %d (%v), want %d", c.verb, got, err, c.code)
			}
			for _, want := range append([]string{"image nope is not in the catalog", `no release of refspec matches "7"`}, c.also...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("imagebake %s error:\n%v\nwant it to contain %q", c.verb, err, want)
				}
			}
			if c.verb == "upgrade" && !strings.Contains(out.String(), "web: refspec 1.4.2 -> 1.5.0") && !strings.Contains(out.String(), "web: refspec 1.4.2 is the newest") {
				t.Errorf("upgrade did not plan the selections that resolve:\n%s", out.String())
			}
		})
	}
}

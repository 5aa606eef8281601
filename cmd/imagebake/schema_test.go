//go:build linux

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"

	"github.com/imagebake/imagebake/internal/testutil"
)

// docs/schemas holds what `imagebake schema` makes from the Go types: a
// field added to imagebake.toml or the deploy file without regenerating
// them fails here (imagebake schema deploy > docs/schemas/deploy.schema.json).
func TestSchemasAreFresh(t *testing.T) {
	t.Parallel()
	root := testutil.ModuleRoot(t)
	for _, name := range []string{"deploy", "config"} {
		want, err := schemaJSON(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, "docs", "schemas", name+".schema.json"))
		if err != nil || string(got) != string(want) {
			t.Errorf("docs/schemas/%s.schema.json is stale (%v): imagebake schema %s > docs/schemas/%s.schema.json", name, err, name, name)
		}
	}
	if _, err := schemaJSON("other"); err == nil {
		t.Error("schema of an unknown name printed something")
	}
}

// A real validator (python3-jsonschema) accepts the example deploy file
// and the example's imagebake.toml, and refuses each with a misspelt key.
func TestSchemasInAValidator(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 with python3-jsonschema is needed: make test installs it")
	}
	dir := t.TempDir()
	validate := func(schema string, doc any) error {
		t.Helper()
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "doc.json")
		testutil.Must(t, os.WriteFile(p, b, 0o644))
		s, err := schemaJSON(schema)
		if err != nil {
			t.Fatal(err)
		}
		sp := filepath.Join(dir, schema+".schema.json")
		testutil.Must(t, os.WriteFile(sp, s, 0o644))
		out, err := exec.Command("python3", "-c", `import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))`, p, sp).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "ValidationError") {
			t.Fatalf("the validator did not run: %v\n%s", err, out)
		}
		if err != nil {
			return &validationError{string(out)}
		}
		return nil
	}
	// the deploy file of deploy's tests, read as YAML
	raw, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "deploy", "testdata", "deploy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var df map[string]any
	if err := yaml.Unmarshal(raw, &df); err != nil {
		t.Fatal(err)
	}
	if err := validate("deploy", df); err != nil {
		t.Errorf("the example deploy file is refused: %v", err)
	}
	df["images"].(map[string]any)["web"].(map[string]any)["verison"] = "1.4"
	if err := validate("deploy", df); err == nil || !strings.Contains(err.Error(), "verison") {
		t.Errorf("a misspelt key in a deploy file = %v, want it refused by name", err)
	}
	// the example control repo's imagebake.toml
	ctl := testutil.Example(t, t.TempDir())
	var cfg map[string]any
	if _, err := toml.DecodeFile(filepath.Join(ctl, "imagebake.toml"), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := validate("config", cfg); err != nil {
		t.Errorf("the example's imagebake.toml is refused: %v", err)
	}
	cfg["arhces"] = []string{"amd64"}
	if err := validate("config", cfg); err == nil || !strings.Contains(err.Error(), "arhces") {
		t.Errorf("a misspelt key in imagebake.toml = %v, want it refused by name", err)
	}
}

type validationError struct{ out string }

func (e *validationError) Error() string { return e.out }

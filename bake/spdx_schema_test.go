package bake

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/imagebake/imagebake/internal/testutil"
)

// spdxSchema is the SPDX 2.3 JSON schema (IMAGEBAKE_SPDX_SCHEMA, else
// .cache/spdx/spdx-schema-2.3.json, which make test fetches:
// scripts/ensure-spdx-schema), compiled.
func spdxSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	schema := os.Getenv("IMAGEBAKE_SPDX_SCHEMA")
	if schema == "" {
		schema = filepath.Join(testutil.ModuleRoot(t), ".cache", "spdx", "spdx-schema-2.3.json")
	}
	sf, err := os.Open(schema)
	if err != nil {
		t.Fatalf("the SPDX 2.3 JSON schema is needed: make test fetches it (scripts/ensure-spdx-schema): %v", err)
	}
	defer sf.Close()
	doc, err := jsonschema.UnmarshalJSON(sf)
	if err != nil {
		t.Fatalf("%s: %v", schema, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("spdx-schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("spdx-schema.json")
	if err != nil {
		t.Fatalf("compiling %s: %v", schema, err)
	}
	return sch
}

// validSPDX validates the SBOM at p against the SPDX 2.3 JSON schema.
func validSPDX(t *testing.T, p string) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s is not JSON: %v", p, err)
	}
	if err := spdxSchema(t).Validate(inst); err != nil {
		t.Errorf("%s does not validate against the SPDX 2.3 schema:\n%v", p, err)
	}
}

// The schema check itself finds a broken SBOM: one without its
// spdxVersion, and one whose package lacks its SPDXID.
func TestSPDXSchemaCatchesBrokenSBOM(t *testing.T) {
	t.Parallel()
	sch := spdxSchema(t)
	good := `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"x","documentNamespace":"https://example.invalid/x",
"creationInfo":{"created":"2026-01-01T00:00:00Z","creators":["Tool: imagebake"]},
"packages":[{"SPDXID":"SPDXRef-a","name":"a","downloadLocation":"NOASSERTION"}]}`
	for name, text := range map[string]string{
		"good":          good,
		"no version":    strings.Replace(good, `"spdxVersion":"SPDX-2.3",`, "", 1),
		"no package id": strings.Replace(good, `"SPDXID":"SPDXRef-a",`, "", 1),
	} {
		var v any
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			t.Fatal(err)
		}
		err := sch.Validate(v)
		if (err == nil) != (name == "good") {
			t.Errorf("%s: validation = %v", name, err)
		}
	}
}

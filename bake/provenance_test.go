//go:build linux

package bake

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/imagebake/imagebake/internal/testutil"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// Every bake writes a SLSA v1 provenance beside the SBOM: the index and
// images as subjects, the control repo commit, every module, agent binary
// and base as resolved dependencies (no credentials in a URI), the CI
// workflow as the builder when the environment names one; verify checks
// it against the manifest.
func TestProvenance(t *testing.T) {
	t.Parallel()
	root, repo := example(t, map[string][]string{"amd64": {"2.4.1"}, "arm64": {"2.4.1"}})
	o := opts(root, repo, filepath.Join(root, "dist"))
	o.BuilderID = "https://github.example/acme/control/.github/workflows/golden-image.yml@refs/tags/v1.0.0"
	m, err := Bake(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(o.Out, "example-1.0.0")
	raw, err := os.ReadFile(filepath.Join(dir, ProvenanceName))
	if err != nil {
		t.Fatal(err)
	}
	// read by in-toto's own Go bindings, strictly (no field they do not
	// know), and checked by their Validate
	var st intoto.Statement
	if err := protojson.Unmarshal(raw, &st); err != nil {
		t.Fatalf("the provenance is not an in-toto Statement v1: %v", err)
	}
	if err := st.Validate(); err != nil {
		t.Errorf("in-toto's Validate: %v", err)
	}
	pj, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		t.Fatal(err)
	}
	var pred slsa.Provenance
	if err := protojson.Unmarshal(pj, &pred); err != nil {
		t.Fatalf("the predicate is not SLSA Provenance v1: %v", err)
	}
	if err := pred.Validate(); err != nil {
		t.Errorf("SLSA provenance's Validate: %v", err)
	}
	if st.GetType() != "https://in-toto.io/Statement/v1" || st.GetPredicateType() != "https://slsa.dev/provenance/v1" {
		t.Errorf("types %s, %s", st.GetType(), st.GetPredicateType())
	}
	if len(st.GetSubject()) != 3 || st.GetSubject()[0].GetDigest()["sha256"] != strings.TrimPrefix(m.IndexDigest, "sha256:") {
		t.Errorf("subjects = %+v; want the index and two images", st.GetSubject())
	}
	deps := map[string]*intoto.ResourceDescriptor{}
	for _, d := range pred.GetBuildDefinition().GetResolvedDependencies() {
		deps[d.GetName()] = d
	}
	if d := deps["control repo"]; d.GetDigest()["gitCommit"] != m.Repo.Commit || !strings.HasSuffix(d.GetUri(), "@refs/tags/v1.0.0") {
		t.Errorf("control repo dependency = %+v", d)
	}
	for _, x := range m.Puppetfile.Modules {
		if _, ok := deps["module "+x.Name]; !ok {
			t.Errorf("module %s is not a resolved dependency", x.Name)
		}
	}
	for _, im := range m.Images {
		if d := deps["base of "+im.Arch]; d.GetDigest()["sha256"] == "" {
			t.Errorf("the base of %s is not a resolved dependency: %+v", im.Arch, d)
		}
		if d := deps["agent binaries mozagent 2.4.1 linux/"+im.Arch]; d.GetDigest()["sha256"] != im.Agent.SHA256 {
			t.Errorf("the agent binaries of %s: %+v", im.Arch, d)
		}
	}
	rd := pred.GetRunDetails()
	if rd.GetBuilder().GetId() != "https://github.example/acme/control/.github/workflows/golden-image.yml@refs/tags/v1.0.0" || rd.GetMetadata().GetStartedOn() == nil || rd.GetMetadata().GetFinishedOn() == nil {
		t.Errorf("run details = %+v", rd)
	}
	if _, err := CheckArtifacts(ctx, filepath.Join(dir, manifest.FileName)); err != nil {
		t.Errorf("verify --artifacts-only of a fresh release: %v", err)
	}
	// a provenance that claims another commit is named by verify
	testutil.Must(t, os.WriteFile(filepath.Join(dir, ProvenanceName), []byte(strings.Replace(string(raw), m.Repo.Commit, strings.Repeat("0", 40), 1)), 0o644))
	if _, err := CheckArtifacts(ctx, filepath.Join(dir, manifest.FileName)); err == nil || !strings.Contains(err.Error(), ProvenanceName) {
		t.Errorf("verify of an edited provenance = %v, want it named", err)
	}
}

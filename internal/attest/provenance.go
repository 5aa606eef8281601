// Package attest writes and checks what a release says of itself for
// scanners and verifiers: the SPDX 2.3 SBOM and the SLSA v1 provenance
// (an in-toto Statement v1), both made from the release's manifest.
package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/redact"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// ProvenanceName is the release's SLSA v1 provenance, an in-toto Statement
// v1, beside the manifest and the SBOM (and published with them).
const ProvenanceName = "provenance.intoto.json"

// The statement's types.
const (
	statementType  = "https://in-toto.io/Statement/v1"
	provenanceType = "https://slsa.dev/provenance/v1"
	buildType      = "https://github.com/imagebake/imagebake/blob/main/docs/provenance.md#bake-v1"
)

type statement struct {
	Type          string     `json:"_type"`
	Subject       []subject  `json:"subject"`
	PredicateType string     `json:"predicateType"`
	Predicate     provenance `json:"predicate"`
}

type subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

type provenance struct {
	BuildDefinition buildDefinition `json:"buildDefinition"`
	RunDetails      runDetails      `json:"runDetails"`
}

type buildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   externalParameters   `json:"externalParameters"`
	InternalParameters   internalParameters   `json:"internalParameters"`
	ResolvedDependencies []resourceDescriptor `json:"resolvedDependencies"`
}

type externalParameters struct {
	Repository string   `json:"repository"`
	Tag        string   `json:"tag"`
	Release    string   `json:"release"`
	Arches     []string `json:"arches"`
	Builder    string   `json:"builder"`
	Advisories []string `json:"advisories,omitempty"`
}

type internalParameters struct {
	Epoch       int64  `json:"epoch"`
	Environment string `json:"environment"`
	Compressor  string `json:"compressor,omitempty"`
}

type resourceDescriptor struct {
	Name   string            `json:"name,omitempty"`
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest"`
}

type runDetails struct {
	Builder  builderID   `json:"builder"`
	Metadata runMetadata `json:"metadata"`
}

type builderID struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

type runMetadata struct {
	InvocationID string `json:"invocationId,omitempty"`
	StartedOn    string `json:"startedOn,omitempty"`
	FinishedOn   string `json:"finishedOn,omitempty"`
}

// provenanceOf is m's statement: its subjects and build definition follow
// from the manifest alone (a rebuild writes the same), its run details
// name the builder (imagebake and its version, or the CI workflow the
// environment names) and the times the release was made in.
func provenanceOf(m *manifest.Manifest, started, finished time.Time, builder string) statement {
	hex := func(d string) map[string]string { return map[string]string{"sha256": strings.TrimPrefix(d, "sha256:")} }
	var subs []subject
	if m.IndexDigest != "" {
		subs = append(subs, subject{Name: m.Family + "-" + m.Release, Digest: hex(m.IndexDigest)})
	}
	var arches []string
	for _, im := range m.Images {
		arches = append(arches, im.Arch)
		if im.Digest != "" {
			subs = append(subs, subject{Name: im.Name, Digest: hex(im.Digest)})
		}
	}
	deps := []resourceDescriptor{{Name: "control repo", URI: gitURIOf(m, m.Repo.URL, plainURL) + "@refs/tags/" + m.Repo.Tag, Digest: map[string]string{"gitCommit": m.Repo.Commit}}}
	for _, x := range m.Puppetfile.Modules {
		d := resourceDescriptor{Name: "module " + x.Name}
		switch {
		case x.Commit != "":
			d.URI, d.Digest = gitURIOf(m, x.Source, plainURL), map[string]string{"gitCommit": x.Commit}
		case x.SHA256 != "":
			d.URI, d.Digest = plainURL(x.URL), map[string]string{"sha256": x.SHA256}
		default:
			d.URI, d.Digest = x.Path, map[string]string{}
		}
		deps = append(deps, d)
	}
	for _, im := range m.Images {
		if a := im.Agent; !a.None() {
			deps = append(deps, resourceDescriptor{Name: fmt.Sprintf("agent binaries %s %s %s/%s", a.Name, a.Version, a.OS, a.Arch),
				URI: plainURL(strings.TrimSuffix(a.Source, "/") + "/" + a.Path), Digest: hex(a.SHA256)})
		}
		if d := im.Base.Digest; d != "" {
			deps = append(deps, resourceDescriptor{Name: "base of " + im.Arch, URI: plainURL(im.Base.Ref), Digest: hex(d)})
		}
	}
	st := statement{Type: statementType, Subject: subs, PredicateType: provenanceType, Predicate: provenance{
		BuildDefinition: buildDefinition{BuildType: buildType,
			ExternalParameters:   externalParameters{Repository: plainURL(m.Repo.URL), Tag: m.Repo.Tag, Release: m.Release, Arches: arches, Builder: m.Builder, Advisories: m.Advisories},
			InternalParameters:   internalParameters{Epoch: m.Epoch, Environment: m.Environment, Compressor: m.Imagebake.Compressor},
			ResolvedDependencies: deps},
		RunDetails: runDetails{Builder: builderOf(m.Imagebake.Version, builder)},
	}}
	if !started.IsZero() {
		st.Predicate.RunDetails.Metadata.StartedOn = started.UTC().Format(time.RFC3339)
	}
	if !finished.IsZero() {
		st.Predicate.RunDetails.Metadata.FinishedOn = finished.UTC().Format(time.RFC3339)
	}
	return st
}

// builderOf is who ran the build: id (the CI workflow the command found
// in its environment), else imagebake itself.
func builderOf(version, id string) builderID {
	if id == "" {
		id = "https://github.com/imagebake/imagebake"
	}
	return builderID{ID: id, Version: map[string]string{"imagebake": version}}
}

// GitURI is a git remote as an SPDX/SLSA download location: git+ and a
// URL (git+https://host/repo.git, git+file:///srv/git/control, an scp-like
// git@host:repo as git+ssh://git@host/repo), without credentials (an ssh
// user name is kept: it is who logs in); git:// stays as it is.
func GitURI(remote string) string {
	s := plainURL(remote)
	if u, err := url.Parse(remote); err == nil && u.Scheme == "ssh" && u.User != nil {
		u.User = url.User(u.User.Username()) // ssh's user is who logs in, not a secret
		s = u.String()
	}
	switch {
	case strings.HasPrefix(s, "git+") || strings.HasPrefix(s, "git://"):
		return s
	case strings.Contains(s, "://"):
		return "git+" + s
	case strings.HasPrefix(s, "/"):
		return "git+" + (&url.URL{Scheme: "file", Path: s}).String()
	}
	if user, rest, ok := strings.Cut(s, "@"); ok && !strings.Contains(user, "/") {
		if host, p, ok := strings.Cut(rest, ":"); ok {
			return "git+ssh://" + user + "@" + host + "/" + strings.TrimPrefix(p, "/")
		}
	}
	return "git+" + (&url.URL{Scheme: "file", Path: s}).String() // a relative path, as recorded
}

// gitURIOf is remote as the release m writes it: a URI (GitURI) from
// defaults 3 on; before, "git+" and old(remote), as those releases were
// made (their SBOM and provenance are checked byte for byte).
func gitURIOf(m *manifest.Manifest, remote string, old func(string) string) string {
	if m.Imagebake.Defaults >= 3 {
		return GitURI(remote)
	}
	return "git+" + old(remote)
}

// plainURL drops credentials from a URL (user:token@host).
func plainURL(s string) string { return redact.WithoutUser(s) }

// writeProvenance writes m's statement into dir.
func WriteProvenance(m *manifest.Manifest, dir string, started, finished time.Time, builder string) error {
	b, err := json.MarshalIndent(provenanceOf(m, started, finished, builder), "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, ProvenanceName), append(b, '\n'), 0o644)
}

// checkProvenance compares the release's provenance with the statement
// its manifest makes: the subjects and the build definition must be the
// same (the run details, builder and times, are the run's). A release
// made before provenance was written has none: nothing to check.
func CheckProvenance(dir string, m *manifest.Manifest) []string {
	p := filepath.Join(dir, ProvenanceName)
	raw, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", p, err)}
	}
	var got statement
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		return []string{fmt.Sprintf("%s is not imagebake's provenance: %v", p, err)}
	}
	want := provenanceOf(m, time.Time{}, time.Time{}, "")
	got.Predicate.RunDetails, want.Predicate.RunDetails = runDetails{}, runDetails{}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if !bytes.Equal(a, b) {
		return []string{fmt.Sprintf("%s: its subjects or build definition differ from what the manifest says", p)}
	}
	return nil
}

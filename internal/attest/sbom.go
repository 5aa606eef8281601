package attest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/package-url/packageurl-go"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/filehash"
	"github.com/imagebake/imagebake/manifests/lockfile"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// SBOMName is the SPDX 2.3 JSON SBOM beside the manifest.
const SBOMName = "sbom.spdx.json"

type spdxDoc struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      spdxCreation   `json:"creationInfo"`
	Packages          []spdxPackage  `json:"packages"`
	Relationships     []spdxRelation `json:"relationships"`
}

type spdxCreation struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID           string         `json:"SPDXID"`
	Name             string         `json:"name"`
	VersionInfo      string         `json:"versionInfo,omitempty"`
	DownloadLocation string         `json:"downloadLocation"`
	FilesAnalyzed    bool           `json:"filesAnalyzed"`
	Checksums        []spdxChecksum `json:"checksums,omitempty"`
	LicenseDeclared  string         `json:"licenseDeclared,omitempty"`
	Comment          string         `json:"comment,omitempty"`
	ExternalRefs     []spdxRef      `json:"externalRefs,omitempty"`
}

type spdxRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxRelation struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

var idRE = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func spdxID(kind, name string) string {
	return "SPDXRef-" + kind + "-" + idRE.ReplaceAllString(name, "-")
}

// writeSBOM writes the release's modules and agent binaries as SPDX 2.3.
// Its time is the build epoch and its namespace comes from the inputs
// digest, so it is as reproducible as the images.
func WriteSBOM(m *manifest.Manifest, name string) error {
	repoID := spdxID("Package", "control-repo")
	doc := spdxDoc{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              m.Family + "-" + m.Release,
		DocumentNamespace: "https://imagebake.invalid/spdx/" + m.Family + "-" + m.Release + "-" + strings.TrimPrefix(m.InputsDigest, "sha256:"),
		CreationInfo:      spdxCreation{Created: time.Unix(m.Epoch, 0).UTC().Format(time.RFC3339), Creators: []string{"Tool: imagebake-" + m.Imagebake.Version}},
		Packages: []spdxPackage{{SPDXID: repoID, Name: "control-repo", VersionInfo: m.Repo.Tag,
			DownloadLocation: gitURIOf(m, m.Repo.URL, asIs) + "@" + m.Repo.Commit, Comment: "commit " + m.Repo.Commit}},
		Relationships: []spdxRelation{{"SPDXRef-DOCUMENT", "DESCRIBES", repoID}},
	}
	for _, mod := range m.Puppetfile.Modules {
		p := spdxPackage{SPDXID: spdxID("Module", mod.Name), Name: mod.Name, DownloadLocation: "NOASSERTION"}
		switch mod.Kind {
		case "git":
			p.VersionInfo, p.DownloadLocation = mod.Commit, gitURIOf(m, mod.Source, asIs)+"@"+mod.Commit
			p.Comment = mod.RefType + " " + mod.Ref + ", commit " + mod.Commit
			if mod.ModuleVersion != "" {
				p.VersionInfo = mod.ModuleVersion // what metadata.json says
			}
		case "forge":
			p.VersionInfo, p.DownloadLocation = mod.Version, mod.URL
			p.Checksums = []spdxChecksum{{"SHA256", mod.SHA256}}
		}
		if purl := modulePURL(mod); purl != "" {
			p.ExternalRefs = []spdxRef{{"PACKAGE-MANAGER", "purl", purl}}
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelation{repoID, "DEPENDS_ON", p.SPDXID})
	}
	for _, im := range m.Images {
		if im.Agent.None() {
			continue
		}
		p := spdxPackage{SPDXID: spdxID("Agent", im.Agent.Name+"-"+im.Agent.Version+"-"+im.Arch), Name: im.Agent.Name,
			VersionInfo: im.Agent.Version, DownloadLocation: im.Agent.Source + "/" + im.Agent.Path,
			Checksums: []spdxChecksum{{"SHA256", im.Agent.SHA256}}, Comment: "for " + im.Name}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelation{"SPDXRef-DOCUMENT", "DESCRIBES", p.SPDXID})
		goPackages(&doc, p.SPDXID, im)
	}
	for _, im := range m.Images {
		basePackages(&doc, im, m.Imagebake.Defaults)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(name, append(b, '\n'), 0o644)
}

// goPackages adds what the agent binaries of im are built from, when they
// are a Go binary (its build information, recorded from defaults 3): the
// Go standard library at its version, the main module and every module
// linked in, as pkg:golang purls the way syft writes them, each contained
// in the agent package agentID.
func goPackages(doc *spdxDoc, agentID string, im manifest.Image) {
	g := im.Agent.GoBuild
	if g == nil {
		return
	}
	add := func(id, kind, path, version string) {
		if version == "(devel)" {
			version = ""
		}
		ns, name := "", path // pkg:golang/golang.org/x/sys: the path's last element is the name
		if i := strings.LastIndexByte(path, '/'); i > 0 {
			ns, name = path[:i], path[i+1:]
		}
		purl := packageurl.NewPackageURL(packageurl.TypeGolang, ns, name, version, nil, "").ToString()
		sp := spdxPackage{SPDXID: spdxID("Go", im.Arch+"-"+id+"-"+path), Name: path, VersionInfo: version,
			DownloadLocation: "NOASSERTION", ExternalRefs: []spdxRef{{"PACKAGE-MANAGER", "purl", purl}}, Comment: kind + " of " + im.Agent.Name + " for " + im.Name}
		if version == "" {
			sp.VersionInfo = "NOASSERTION"
		}
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, spdxRelation{agentID, "CONTAINS", sp.SPDXID})
	}
	add("std", "the Go standard library", "stdlib", strings.TrimPrefix(g.Go, "go"))
	mainPath, mainVersion, _ := strings.Cut(g.Main, "@")
	add("main", "the main module", mainPath, mainVersion)
	for _, d := range g.Deps {
		path, version, _ := strings.Cut(d, "@")
		add("dep", "a module linked in", path, version)
	}
}

// githubRE is a GitHub repository URL: its owner and repository.
var githubRE = regexp.MustCompile(`^(?:https?://|ssh://git@|git://|git@)github\.com[/:]([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$`)

// modulePURL is a module's package URL: pkg:github/OWNER/REPO@TAG (or the
// commit) for a GitHub remote, pkg:generic/AUTHOR/NAME@VERSION otherwise,
// the pinned commit as its vcs_url; a Forge module's with its download
// URL and sha256. "" for a local module.
func modulePURL(mod lockfile.Module) string {
	slug := mod.ModuleName
	if slug == "" {
		slug = strings.ToLower(strings.Replace(mod.Name, "/", "-", 1))
	}
	ns, name := "", slug
	if i := strings.IndexByte(slug, '-'); i > 0 {
		ns, name = slug[:i], slug[i+1:]
	}
	switch mod.Kind {
	case "git":
		q := packageurl.Qualifiers{{Key: "vcs_url", Value: "git+" + mod.Source + "@" + mod.Commit}} // as purls always had it
		if g := githubRE.FindStringSubmatch(mod.Source); g != nil {
			v := mod.Commit
			if mod.RefType == "tag" {
				v = mod.Ref
			}
			return packageurl.NewPackageURL(packageurl.TypeGithub, strings.ToLower(g[1]), strings.ToLower(g[2]), v, q, "").ToString()
		}
		v := mod.ModuleVersion
		if v == "" {
			v = mod.Commit
		}
		return packageurl.NewPackageURL(packageurl.TypeGeneric, ns, name, v, q, "").ToString()
	case "forge":
		q := packageurl.Qualifiers{{Key: "checksum", Value: "sha256:" + mod.SHA256}, {Key: "download_url", Value: mod.URL}}
		return packageurl.NewPackageURL(packageurl.TypeGeneric, ns, name, mod.Version, q, "").ToString()
	}
	return ""
}

func asIs(s string) string { return s }

// upstreamOf is a package's purl upstream= qualifier: its source package
// when that has another name (defaults 3), with the source's version when
// that differs from the binary's (defaults 4, as syft writes it:
// util-linux@2.38.1-5+deb12u3, bash@5.2.15-2); "" for none.
func upstreamOf(p manifest.Package, defaults int) string {
	switch {
	case defaults >= 4 && p.Source != "" && p.SourceVersion != "":
		return p.Source + "@" + p.SourceVersion
	case defaults >= 3 && p.Source != "" && p.Source != p.Name:
		return p.Source
	}
	return ""
}

// purlType is the package URL type of each package database format.
var purlType = map[string]string{"dpkg": packageurl.TypeDebian, "apk": packageurl.TypeApk, "rpm": packageurl.TypeRPM}

// basePackages adds im's base and its packages, each with its package URL
// (pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12&upstream=openssl):
// qualifiers sorted, a Debian epoch kept in the version (1:2.4.47-2), an
// rpm epoch in its own qualifier, as the purl spec says.
func basePackages(doc *spdxDoc, im manifest.Image, defaults int) {
	ps := im.Base.Packages
	if ps == nil {
		return
	}
	baseID := spdxID("Base", im.Arch)
	doc.Packages = append(doc.Packages, spdxPackage{SPDXID: baseID, Name: im.Base.Ref, VersionInfo: im.Base.Digest,
		DownloadLocation: "NOASSERTION", Comment: "the base of " + im.Name})
	doc.Relationships = append(doc.Relationships, spdxRelation{"SPDXRef-DOCUMENT", "DESCRIBES", baseID})
	namespace, distro := "", ""
	if os := im.Base.OS; os != nil {
		namespace, distro = os.ID, os.ID
		switch {
		case os.PointRelease != "" && defaults >= 4:
			distro += "-" + os.PointRelease // debian-12.15, as syft writes it
		case os.VersionID != "":
			distro += "-" + os.VersionID
		}
	}
	for _, p := range ps.List {
		q := packageurl.Qualifiers{}
		if p.Arch != "" {
			q = append(q, packageurl.Qualifier{Key: "arch", Value: p.Arch})
		}
		if distro != "" {
			q = append(q, packageurl.Qualifier{Key: "distro", Value: distro})
		}
		if up := upstreamOf(p, defaults); up != "" {
			// the source package, as syft writes it: Debian's OSV records
			// (and the DSAs) are keyed by it
			q = append(q, packageurl.Qualifier{Key: "upstream", Value: up})
		}
		version := p.Version
		if e, v, ok := strings.Cut(version, ":"); ok && ps.Format == "rpm" {
			// the purl spec puts an rpm epoch in a qualifier
			version = v
			q = append(q, packageurl.Qualifier{Key: "epoch", Value: e})
		}
		purl := packageurl.NewPackageURL(purlType[ps.Format], namespace, p.Name, version, q, "").ToString()
		if defaults >= 4 {
			// an epoch's colon percent-encoded, in the version and in
			// upstream=, as syft writes it (the scheme's is the only one left)
			purl = "pkg:" + strings.ReplaceAll(strings.TrimPrefix(purl, "pkg:"), ":", "%3A")
		}
		sp := spdxPackage{SPDXID: spdxID("BasePackage", im.Arch+"-"+p.Name+"-"+p.Arch), Name: p.Name, VersionInfo: p.Version,
			DownloadLocation: "NOASSERTION", ExternalRefs: []spdxRef{{"PACKAGE-MANAGER", "purl", purl}}}
		if up := upstreamOf(p, defaults); up != "" {
			sp.Comment = "source package " + strings.Replace(up, "@", " ", 1)
		}
		if p.License != "" {
			sp.LicenseDeclared = "NOASSERTION"
			sp.Comment = strings.TrimPrefix(sp.Comment+"; license "+p.License, "; ")
		}
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, spdxRelation{baseID, "CONTAINS", sp.SPDXID})
	}
}

// CheckSBOM compares the release's SBOM with the one its manifest makes.
func CheckSBOM(dir string, m *manifest.Manifest) []string {
	p := filepath.Join(dir, SBOMName)
	got, err := fileDigest(p)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", p, err)}
	}
	tmp, err := os.MkdirTemp("", "imagebake-sbom-")
	if err != nil {
		return []string{err.Error()}
	}
	defer os.RemoveAll(tmp)
	if err := WriteSBOM(m, filepath.Join(tmp, SBOMName)); err != nil {
		return []string{fmt.Sprintf("making the SBOM of %s: %v", dir, err)}
	}
	want, err := fileDigest(filepath.Join(tmp, SBOMName))
	if err != nil {
		return []string{err.Error()}
	}
	if got != want {
		return []string{fmt.Sprintf("%s: sha256 %s, the manifest's SBOM %s", p, got, want)}
	}
	return nil
}

func fileDigest(p string) (string, error) {
	h, err := filehash.SHA256(p)
	return "sha256:" + h, err
}

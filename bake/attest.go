package bake

import "github.com/imagebake/imagebake/internal/attest"

// The files a release keeps beside its manifest for scanners and
// verifiers (written by the attest package).
const (
	SBOMName       = attest.SBOMName       // the SPDX 2.3 JSON SBOM
	ProvenanceName = attest.ProvenanceName // the SLSA v1 provenance
)

package plugin

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/zclconf/go-cty/cty"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
)

//go:generate go tool packer-sdc mapstructure-to-hcl2 -type DatasourceConfig

// DatasourceConfig configures data source "imagebake-release": a manifest,
// or a store's catalog with family and version. With trusted_keys, the
// signatures are checked (a catalog is always checked).
type DatasourceConfig struct {
	Manifest    string   `mapstructure:"manifest"`
	Store       string   `mapstructure:"store"`
	Family      string   `mapstructure:"family"`
	Version     string   `mapstructure:"version"`
	TrustedKeys []string `mapstructure:"trusted_keys"`
}

// Datasource is data source "imagebake-release".
type Datasource struct {
	config DatasourceConfig
	m      *manifest.Manifest
}

// ConfigSpec implements packersdk.Datasource (datasource.hcl2spec.go, go generate).
func (d *Datasource) ConfigSpec() hcldec.ObjectSpec { return d.config.FlatMapstructure().HCL2Spec() }

// Configure implements packersdk.Datasource; the release is read here, so a
// missing or untrusted document stops the build before it starts.
func (d *Datasource) Configure(raws ...interface{}) error {
	if err := config.Decode(&d.config, nil, raws...); err != nil {
		return err
	}
	c := &d.config
	kr, err := signing.LoadKeyring(c.TrustedKeys...)
	if err != nil {
		return err
	}
	switch {
	case c.Manifest != "" && c.Store == "":
		if len(c.TrustedKeys) > 0 {
			if d.m, err = catalog.ReadSignedManifest(c.Manifest, kr); err != nil {
				return fmt.Errorf("imagebake-release: %w", err)
			}
			return nil
		}
		d.m, err = manifest.Read(c.Manifest)
	case c.Store != "" && c.Family != "" && c.Version != "":
		guard := &catalog.Guard{State: filepath.Join(defaultCache(), catalog.StateFile)}
		d.m, err = catalog.PublishedManifest(context.Background(), c.Store, c.Family, c.Version, kr, nil, guard)
		if err == nil && d.m == nil {
			err = fmt.Errorf("%s %s is not in the catalog of %s: %w", c.Family, c.Version, c.Store, failure.ErrNotFound)
		}
	default:
		return fmt.Errorf("imagebake-release: give manifest, or store with family and version")
	}
	if err != nil {
		return fmt.Errorf("imagebake-release: %w", err)
	}
	return nil
}

var outputType = map[string]cty.Type{
	"family": cty.String, "release": cty.String, "tag": cty.String, "commit": cty.String,
	"index_digest": cty.String, "arches": cty.List(cty.String),
	"image_names": cty.Map(cty.String), "image_digests": cty.Map(cty.String), "agent_versions": cty.Map(cty.String),
}

// OutputSpec implements packersdk.Datasource.
func (d *Datasource) OutputSpec() hcldec.ObjectSpec {
	s := hcldec.ObjectSpec{}
	for k, t := range outputType {
		s[k] = &hcldec.AttrSpec{Name: k, Type: t}
	}
	return s
}

// Execute implements packersdk.Datasource.
func (d *Datasource) Execute() (cty.Value, error) {
	m := d.m
	names, digests, agentv := map[string]cty.Value{}, map[string]cty.Value{}, map[string]cty.Value{}
	var arches []string
	for _, im := range m.Images {
		arches = append(arches, im.Arch)
		names[im.Arch] = cty.StringVal(im.Name)
		digests[im.Arch] = cty.StringVal(im.Digest)
		agentv[im.Arch] = cty.StringVal(im.Agent.Version)
	}
	sort.Strings(arches)
	av := make([]cty.Value, len(arches))
	for i, a := range arches {
		av[i] = cty.StringVal(a)
	}
	mapOf := func(m map[string]cty.Value) cty.Value {
		if len(m) == 0 {
			return cty.MapValEmpty(cty.String)
		}
		return cty.MapVal(m)
	}
	list := cty.ListValEmpty(cty.String)
	if len(av) > 0 {
		list = cty.ListVal(av)
	}
	return cty.ObjectVal(map[string]cty.Value{
		"family": cty.StringVal(m.Family), "release": cty.StringVal(m.Release), "tag": cty.StringVal(m.Repo.Tag),
		"commit": cty.StringVal(m.Repo.Commit), "index_digest": cty.StringVal(m.IndexDigest), "arches": list,
		"image_names": mapOf(names), "image_digests": mapOf(digests), "agent_versions": mapOf(agentv),
	}), nil
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/imagebake/imagebake/internal/ociremote"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/registry"
)

// addRegistryFlags registers --insecure-registry (default
// $IMAGEBAKE_INSECURE_REGISTRIES, comma-separated).
func addRegistryFlags(f *pflag.FlagSet, o *ociremote.Options) {
	f.StringArrayVar(&o.Insecure, "insecure-registry", nil, "registry host[:port] reached over plain HTTP (loopback always is); repeatable (default $IMAGEBAKE_INSECURE_REGISTRIES)")
}

func registryOptions(o registry.Options, g *globals) registry.Options {
	o.Options = remoteOptions(o.Options)
	o.Log = g.progress()
	return o
}

// remoteOptions fills what the environment says of registries.
func remoteOptions(o ociremote.Options) ociremote.Options {
	if len(o.Insecure) == 0 && os.Getenv("IMAGEBAKE_INSECURE_REGISTRIES") != "" {
		o.Insecure = strings.Split(os.Getenv("IMAGEBAKE_INSECURE_REGISTRIES"), ",")
	}
	return o
}

func newPushCommand(g *globals) *cobra.Command {
	var o registry.Options
	kf := &keyFlags{}
	cmd := &cobra.Command{
		Use:   "push dist/NAME-X.Y.Z REGISTRY/REPO",
		Short: "Push a release's images (tags X.Y.Z-ARCH) and index (tag X.Y.Z) with its SBOM and signed manifest as referrers",
		Long: `Push a release baked with the oci builder to an OCI registry: each image by
digest, tagged X.Y.Z-ARCH, then the image index, tagged X.Y.Z, then the SBOM
and the manifest (with its signature) attached to the index as OCI 1.1
referrers (the referrers tag sha256-DIGEST on registries without the
referrers API). Blobs the registry has are not sent again; pushing the same
release twice writes nothing. A tag that names other content is refused
(exit 4), before anything is written, unless --force: releases are
immutable.

The manifest is signed with --key (or $IMAGEBAKE_KEY); without one, the
manifest.toml.minisig beside it is used (a release directory of a store).
Credentials come from the Docker config (DOCKER_CONFIG,
~/.docker/config.json, credential helpers).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var sig []byte
			if kf.key != "" || os.Getenv("IMAGEBAKE_KEY") != "" {
				kr, err := kf.keyring()
				if err != nil {
					return err
				}
				s, err := kf.signer(kr)
				if err != nil {
					return err
				}
				mpath := filepath.Join(args[0], manifest.FileName)
				m, err := manifest.Read(mpath)
				if err != nil {
					return err
				}
				raw, err := os.ReadFile(mpath)
				if err != nil {
					return err
				}
				sig = s.Sign(raw, manifest.FileName, catalog.ManifestSubject(m.Family, m.Release))
			}
			pushed, err := registry.Push(cmd.Context(), args[0], args[1], sig, registryOptions(o, g))
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), pushed)
			}
			for _, p := range pushed {
				state := "pushed"
				if !p.New {
					state = "already there"
				}
				what := p.Name
				if p.Tag != "" {
					what += " (tag " + p.Tag + ")"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", p.Ref, what, state)
			}
			return nil
		},
	}
	kf.register(cmd, true)
	addRegistryFlags(cmd.Flags(), &o.Options)
	cmd.Flags().BoolVar(&o.Force, "force", false, "move a tag that names other content (releases should be immutable)")
	return cmd
}

package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/imagebake/imagebake/internal/cosignkey"
	"github.com/imagebake/imagebake/internal/ociremote"
	"github.com/imagebake/imagebake/internal/stall"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/registry"
)

// addRegistryFlags registers --insecure-registry (default
// $IMAGEBAKE_INSECURE_REGISTRIES, comma-separated).
func addRegistryFlags(f *pflag.FlagSet, o *ociremote.Options) {
	f.StringArrayVar(&o.Insecure, "insecure-registry", nil, "registry host[:port] reached over plain HTTP (loopback always is); repeatable (default $IMAGEBAKE_INSECURE_REGISTRIES)")
	f.DurationVar(&o.Stall, "stall-timeout", 0, "stop a transfer that receives nothing for this long (default $IMAGEBAKE_STALL_TIMEOUT, else "+stall.Default.String()+")")
}

func registryOptions(o registry.Options, g *globals) registry.Options {
	o.Options = remoteOptions(o.Options)
	o.Log = g.progress()
	return o
}

// remoteOptions fills what the environment says of registries.
func remoteOptions(o ociremote.Options) ociremote.Options {
	o.Insecure = listSetting(o.Insecure, envInsecure)
	if o.Stall == 0 {
		o.Stall = stall.Current() // the flag's or IMAGEBAKE_STALL_TIMEOUT's (root.go)
	}
	return o
}

// stallOr is d, or the default stall timeout when d is 0.
func stallOr(d time.Duration) time.Duration {
	if d <= 0 {
		return stall.Current()
	}
	return d
}

// stallFromEnv is IMAGEBAKE_STALL_TIMEOUT (0 when unset or not a
// duration: the default applies, and a bad value is said once).
func stallFromEnv(w io.Writer) time.Duration {
	d, err := stall.Parse(envSetting(stall.Env))
	if err != nil {
		fmt.Fprintf(w, "warning: %v\n", err)
	}
	return d
}

// pushLong is push's --help.
const pushLong = `Push a release baked with the oci builder to an OCI registry: each image by
digest, tagged X.Y.Z-ARCH, then the image index, tagged X.Y.Z, then the SBOM
and the manifest (with its signature) attached to the index as OCI 1.1
referrers (the referrers tag sha256-DIGEST on registries without the
referrers API). Blobs the registry has are not sent again; pushing the same
release twice writes nothing. A per-arch bake (bake --arch, its manifest
saying partial_of) is pushed for merge on another machine: each image under
X.Y.Z-ARCH with the partial's manifest attached, no index (X.Y.Z is the
merged release's); merge REGISTRY/REPO:X.Y.Z-ARCH ... takes them from there.
A tag that names other content is refused
(exit 4), before anything is written, unless --force: releases are
immutable.

The manifest is signed with --key (or $IMAGEBAKE_KEY); without one, the
manifest.toml.minisig beside it is used (a release directory of a store).
With --store (a directory or s3://BUCKET/PREFIX whose catalog holds the
release, published before), the push is recorded in the catalog, signed
with --key: deploy select then prints REGISTRY/REPO@sha256:... for each
image.

With --cosign-key (or $IMAGEBAKE_COSIGN_KEY: a cosign key file, its
password in $COSIGN_PASSWORD, or an AWS KMS key, awskms:///alias/NAME or
awskms://HOST:PORT/KEY-ID, with the usual AWS settings), the index and
every image are signed for cosign, and the provenance and the SBOM
attested on each (Sigstore bundles as referrers): cosign verify --key and
cosign verify-attestation --type slsaprovenance1 or spdxjson accept them,
offline with --insecure-ignore-tlog=true.

Credentials come from the Docker config (DOCKER_CONFIG,
~/.docker/config.json, credential helpers).`

func newPushCommand(g *globals) *cobra.Command {
	var o registry.Options
	var store string
	var cosignKey setting // the flag, else $IMAGEBAKE_COSIGN_KEY
	kf := &keyFlags{}
	cmd := &cobra.Command{
		Use:   "push dist/NAME-X.Y.Z REGISTRY/REPO",
		Short: "Push a release's images (tags X.Y.Z-ARCH) and index (tag X.Y.Z) with its SBOM and signed manifest as referrers",
		Long:  pushLong,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var sig []byte
			var err error
			if store != "" {
				if m, err := manifest.Read(filepath.Join(args[0], manifest.FileName)); err == nil && len(m.PartialOf) > 0 {
					return usageErr("%s is a per-arch bake (partial_of %v): it is not a release of the store; merge the arches, then push the merged release with --store", args[0], m.PartialOf)
				}
			}
			if store != "" && stringSetting(kf.key, envKey) == "" {
				return usageErr("--store records the push in the store's signed catalog: give --key or set IMAGEBAKE_KEY")
			}
			if stringSetting(kf.key, envKey) != "" {
				if sig, err = kf.signManifest(args[0]); err != nil {
					return err
				}
			}
			if k := stringSetting(cosignKey, envCosignKey); k != "" {
				// before anything is pushed: a key that does not open (or a
				// KMS that cannot be reached) stops it
				if o.Cosign, err = openCosignKey(cmd.Context(), k, o.Stall); err != nil {
					return err
				}
			}
			pushed, err := registry.Push(cmd.Context(), args[0], args[1], sig, registryOptions(o, g))
			if err != nil {
				return err
			}
			if store != "" {
				if err := kf.recordPush(cmd, store, args[0], args[1], o.Options); err != nil {
					return fmt.Errorf("pushed, but not recorded in %s: %w", store, err)
				}
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
	cmd.Flags().StringVar(&store, "store", "", "record the push in this store's catalog (a directory or s3://BUCKET/PREFIX)")
	cmd.Flags().Var(&cosignKey, "cosign-key", "sign for cosign with this cosign key file or awskms:// key (default $IMAGEBAKE_COSIGN_KEY; a file's password in $COSIGN_PASSWORD)")
	return cmd
}

// signManifest is the signature of the manifest of the release in dir
// by the command's key.
func (kf *keyFlags) signManifest(dir string) ([]byte, error) {
	kr, err := kf.keyring()
	if err != nil {
		return nil, err
	}
	s, err := kf.signer(kr)
	if err != nil {
		return nil, err
	}
	mpath := filepath.Join(dir, manifest.FileName)
	m, err := manifest.Read(mpath)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(mpath)
	if err != nil {
		return nil, err
	}
	return s.Sign(raw, manifest.FileName, catalog.ManifestSubject(m.Family, m.Release)), nil
}

// recordPush notes in the store's catalog that the release in dir was
// pushed to the repository of ref.
func (kf *keyFlags) recordPush(cmd *cobra.Command, store, dir, ref string, ro ociremote.Options) error {
	mpath := filepath.Join(dir, manifest.FileName)
	raw, err := os.ReadFile(mpath)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", mpath, err)
	}
	r, err := ro.Repository(ref)
	if err != nil {
		return err
	}
	repo := r.Name()
	sum := sha256.Sum256(raw)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	changed := false
	_, err = kf.updateCatalog(cmd.Context(), store, cmd.ErrOrStderr(), func(c *catalog.Catalog) error {
		changed, err = c.RecordPush(m.Family, m.Release, digest, repo)
		return err
	})
	if err == nil && changed {
		fmt.Fprintf(cmd.ErrOrStderr(), "recorded in %s: %s %s is in %s\n", store, m.Family, m.Release, repo)
	}
	return err
}

// openCosignKey opens a cosign key file (password in COSIGN_PASSWORD) or
// a KMS key URI (a KMS that sends nothing for stallAfter is given up).
func openCosignKey(ctx context.Context, ref string, stallAfter time.Duration) (crypto.Signer, error) {
	if cosignkey.IsKMS(ref) {
		return cosignkey.Open(ctx, ref, stallOr(stallAfter))
	}
	k, err := cosignkey.Load(ref, []byte(envSetting(envCosignPassword)))
	if err != nil {
		return nil, err
	}
	return k, nil
}

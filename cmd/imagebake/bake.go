package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/internal/cosignkey"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/ociremote"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
	"github.com/imagebake/imagebake/registry"
	"github.com/imagebake/imagebake/release"
)

// bakeLong is bake's --help.
const bakeLong = `Bake a release: resolve tag vX.Y.Z (or X.Y.Z) of the control repo, lock and
install its Puppetfile (a committed Puppetfile.lock is enforced), select the
agent binaries per arch, and build one image per arch named NAME-X.Y.Z-ARCH
into OUT/NAME-X.Y.Z/ with manifest.toml and sbom.spdx.json beside them.

The epoch (every mtime, every "created") is the release commit's commit time
unless --source-date-epoch or SOURCE_DATE_EPOCH says otherwise. Relative
paths in imagebake.toml (bases, stores) are relative to --context.

A release number names one content. When OUT/NAME-X.Y.Z already holds the
release baked from other inputs (a newer agent, a moved module tag), the
bake is refused with exit 4 naming each changed input, unless --force.
With --catalog, a release already published there is rebuilt from its
signed manifest's pins, whatever was published or moved since.
Arches already there that this bake does not build are kept (rebuilt from
their recorded pins, byte for byte), so per-arch bakes into one out add up.`

// bakeFlags are bake's flags.
type bakeFlags struct {
	o                                                              bake.Options
	epoch, cache, previous, template, packerBin, pinned, published string
	noCheck                                                        bool
	kf                                                             keyFlags
	remap                                                          []string
}

func newBakeCommand(g *globals) *cobra.Command {
	f := &bakeFlags{}
	cmd := &cobra.Command{
		Use:   "bake --repo URL|PATH --release X.Y.Z [--arch a,b] [--out dist] [--builder oci|rootfs]",
		Short: "Bake one image per arch from a tagged release of a control repo",
		Long:  bakeLong,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return f.run(cmd, g) },
	}
	f.register(cmd)
	return cmd
}

func (f *bakeFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.o.Repo, "repo", "", "control repo URL or path")
	fs.StringVar(&f.o.Release, "release", "", "release X.Y.Z (tag vX.Y.Z or X.Y.Z)")
	fs.StringSliceVar(&f.o.Arches, "arch", nil, "arches to build (default: all in imagebake.toml)")
	fs.StringVar(&f.o.Out, "out", "dist", "output directory")
	fs.StringVar(&f.o.Builder, "builder", "", "oci, rootfs or packer (default: imagebake.toml's, else oci)")
	fs.StringVar(&f.epoch, "source-date-epoch", "", "build epoch, seconds since 1970 (default $SOURCE_DATE_EPOCH, else the commit time)")
	addCacheFlag(fs, &f.cache)
	addContextFlag(fs, &f.o.Context)
	fs.StringArrayVar(&f.o.Stores, "store", nil, "agent binaries store; repeat for a chain (default $IMAGEBAKE_STORES, then imagebake.toml's)")
	fs.StringVar(&f.previous, "previous", "", "manifest.toml of the previous release: the number is checked against the changes")
	fs.BoolVar(&f.noCheck, "no-release-check", false, "skip the release number check")
	addAdvisoryFlag(cmd, &f.o.Advisories)
	fs.BoolVar(&f.o.Compile.Enabled, "compile", false, "compile gate: the base's own Puppet compiles the baked environment (puppet apply --noop) in each image this machine can run; a catalog that does not compile refuses the release (also [compile] enabled)")
	fs.StringVar(&f.o.Compile.Node, "node", "", "with --compile: the node name (default: the image's name)")
	fs.StringVar(&f.o.Compile.Facts, "facts", "", "with --compile: a YAML or JSON file of facts overriding the image's own")
	fs.DurationVar(&f.o.Compile.Timeout, "compile-timeout", 0, "with --compile: stop a Puppet run that takes longer (default 5m, or [compile] timeout)")
	fs.BoolVar(&f.o.IgnoreDependencies, "ignore-dependencies", false, "bake modules whose metadata.json dependencies are not pinned in range (recorded in the manifest; also [puppetfile] ignore_dependencies)")
	fs.BoolVar(&f.o.AgentsPerArch, "agents-per-arch", false, "take each arch's newest agent binaries (default: the newest version every arch has)")
	fs.StringVar(&f.pinned, "manifest", "", "manifest.toml of the release: rebuild exactly its pins (as verify does), whatever was published or moved since")
	fs.StringVar(&f.published, "catalog", "", "store or catalog (path or URL) the release may be published in: if it is, rebuild exactly its signed manifest's pins")
	f.kf.register(cmd, false)
	addRegistryFlags(fs, &f.o.Registry)
	fs.BoolVar(&f.o.Locked, "locked", false, "refuse inputs the control repo does not pin (no committed Puppetfile.lock, agent binaries by range), like cargo --locked")
	addRemapFlag(fs, &f.remap)
	fs.BoolVar(&f.o.Force, "force", false, "replace a release in --out baked from other inputs (a release number should name one content)")
	fs.StringVar(&f.template, "template", "", "with --builder packer: the embedded template (chroot, qemu, amazon-ebs)")
	fs.StringVar(&f.packerBin, "packer", "", "with --builder packer: the packer binary (default: packer on PATH)")
}

// run bakes: the settings, the pins to rebuild (--manifest, --catalog),
// the number check, then the bake.
func (f *bakeFlags) run(cmd *cobra.Command, g *globals) error {
	o := &f.o
	// an explicit --compile=false or --ignore-dependencies=false overrides
	// imagebake.toml, as flags do (flag > environment > file)
	o.Compile.Set = cmd.Flags().Changed("compile")
	o.IgnoreDependenciesSet = cmd.Flags().Changed("ignore-dependencies")
	if (o.Repo == "" || o.Release == "") && f.pinned == "" && (f.published == "" || o.Release == "") {
		return usageErr("--repo and --release are required (or --manifest, or --catalog with --release of a published release)")
	}
	o.Stores = listSetting(o.Stores, envStores)
	var err error
	if o.Advisories, o.AdvisoryFixes, err = release.ParseAdvisories(listSetting(o.Advisories, envAdvisories)); err != nil {
		return err
	}
	if o.Compile.CacheMax, err = compileCacheMax(setting{}); err != nil {
		return err
	}
	if o.Remaps, err = remaps(f.remap); err != nil {
		return err
	}
	o.BuilderID = builderIdentity()
	if o.Cache, err = cacheDir(f.cache); err != nil {
		return err
	}
	if o.Epoch, err = sourceDateEpoch(f.epoch); err != nil {
		return err
	}
	o.Version, o.Log, o.Registry, o.Verbose = clientVersion(), g.progress(), remoteOptions(o.Registry), g.verbose
	if f.pinned != "" {
		if o.Pinned, err = manifest.Read(f.pinned); err != nil {
			return err
		}
		if o.Release == "" {
			o.Release = o.Pinned.Release
		}
	}
	if f.published != "" {
		if f.pinned != "" {
			return usageErr("--catalog and --manifest both name the pins; give one")
		}
		if err := f.catalogHooks(cmd, g); err != nil {
			return err
		}
	}
	if f.previous != "" && !f.noCheck {
		if o.Previous, err = manifest.Read(f.previous); err != nil {
			return err
		}
	}
	o.Packer = bake.PackerOptions{Template: f.template, Packer: f.packerBin, Output: cmd.ErrOrStderr()}
	m, err := bake.Bake(cmd.Context(), *o)
	if err != nil {
		return err
	}
	return printBake(cmd, g, m)
}

// catalogHooks points the bake at the catalog of --catalog: a release
// published there is rebuilt from its signed manifest's pins, and the
// number is checked against the release before it (a store without a
// catalog yet is its first release: said in a note).
func (f *bakeFlags) catalogHooks(cmd *cobra.Command, g *globals) error {
	o := &f.o
	kr, err := f.kf.keyring()
	if err != nil {
		return err
	}
	guard, err := catalogGuard(f.cache, time.Time{})
	if err != nil {
		return err
	}
	var once sync.Once // one read of the catalog for both lookups
	var cat *catalog.Opened
	var catErr error
	open := func(ctx context.Context) (*catalog.Opened, error) {
		once.Do(func() { cat, catErr = catalog.Open(ctx, f.published, kr, nil, guard) })
		return cat, catErr
	}
	var noted sync.Once
	optional := func(ctx context.Context) (*catalog.Opened, error) {
		c, err := open(ctx)
		if errors.Is(err, failure.ErrNotFound) {
			noted.Do(func() {
				fmt.Fprintf(g.progress(), "note: %v; baking as the store's first release (no number to check against)\n", err)
			})
			return nil, nil
		}
		return c, err
	}
	o.Published = func(ctx context.Context, family, release string) (*manifest.Manifest, error) {
		c, err := optional(ctx)
		if c == nil || err != nil {
			return nil, err
		}
		return c.Manifest(ctx, family, release)
	}
	if o.Repo == "" {
		// the signed manifest names the control repo: rebuild its pins
		c, err := open(cmd.Context())
		if err != nil {
			return err
		}
		if o.Pinned, err = publishedOnly(cmd.Context(), c, o.Release); err != nil {
			return err
		}
		o.Repo, o.Published = o.Pinned.Repo.URL, nil
		if o.Stored, err = storedSources(cmd.Context(), c, o.Pinned); err != nil {
			return err
		}
	}
	if f.previous == "" && !f.noCheck {
		o.PreviousFrom = func(ctx context.Context, family, version string) (*manifest.Manifest, error) {
			c, err := optional(ctx)
			if c == nil || err != nil {
				return nil, err
			}
			return release.PreviousIn(ctx, c, family, version)
		}
	}
	return nil
}

// printBake prints a baked release: each image (or Packer artifact) with
// its digest.
func printBake(cmd *cobra.Command, g *globals, m *manifest.Manifest) error {
	if g.json {
		return printJSON(cmd.OutOrStdout(), m)
	}
	if m.Builder == bake.BuilderPacker {
		for _, a := range m.Artifacts {
			for _, f := range a.Files {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\tsha256:%s\t(%s %s)\n", f.Path, f.SHA256, a.BuilderID, a.ID)
			}
		}
		return nil
	}
	switch {
	case len(m.PartialOf) > 0: // its index is no release's: merge makes that one
		var baked []string
		for _, im := range m.Images {
			baked = append(baked, im.Arch)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s-%s\t(per-arch bake of %s, one part of %s: no release index until merge)\n", m.Family, m.Release, strings.Join(baked, ", "), strings.Join(m.PartialOf, ", "))
	case m.IndexDigest == "": // rootfs: one tarball per arch, no index
		fmt.Fprintf(cmd.OutOrStdout(), "%s-%s\t(%s builder: no index; one root file system per arch)\n", m.Family, m.Release, m.Builder)
	default:
		fmt.Fprintf(cmd.OutOrStdout(), "%s-%s\t%s\n", m.Family, m.Release, m.IndexDigest)
	}
	for _, im := range m.Images {
		fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", im.Name, im.Digest)
	}
	return nil
}

// verifyLong is verify's --help.
const verifyLong = `Given a manifest, hash every file of the release beside it (each blob of
the OCI layout, each rootfs tarball, the SBOM) against the manifest, then
rebuild the release from the manifest alone and compare every digest.
--artifacts-only hashes the files and skips the rebuild.

Given a registry reference (REGISTRY/REPO:X.Y.Z or REGISTRY/REPO@sha256:...),
pull the index, its images and every blob (each checked against its digest),
read the manifest attached to the index as a referrer, check its signature
with --trusted-key (or $IMAGEBAKE_TRUSTED_KEYS), and compare every digest
with it. Exit 4 names each difference.`

func newVerifyCommand(g *globals) *cobra.Command {
	var o bake.Options
	var ro registry.Options
	var cache, published, cosignPub string
	var artifactsOnly bool
	var remap []string
	kf := &keyFlags{}
	cmd := &cobra.Command{
		Use:   "verify dist/NAME-X.Y.Z/manifest.toml [--artifacts-only] | REGISTRY/REPO:X.Y.Z",
		Short: "Rebuild a release from its manifest alone and compare every digest, or check a pushed release (exit 4 on a difference)",
		Long:  verifyLong,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if isRegistryRef(args[0]) {
				kr, err := kf.keyring()
				if err != nil {
					return err
				}
				m, err := registry.Verify(cmd.Context(), args[0], kr, registryOptions(ro, g))
				if err != nil {
					return err
				}
				state, err := verifiedState(cmd, kr, published, cache, m)
				if err != nil {
					return err
				}
				if cosignPub != "" {
					if err := verifyCosign(cmd, args[0], cosignPub, m, registryOptions(ro, g)); err != nil {
						return err
					}
					state += "; cosign signatures and attestations verify"
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), m)
				}
				if _, arch, ok := registry.ArchTag(args[0]); ok {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: the %s image of %s-%s, signed; the release's index and %d images match its manifest (index %s)%s\n", args[0], arch, m.Family, m.Release, len(m.Images), m.IndexDigest, state)
					return nil
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s-%s, signed; index and %d images match the manifest (index %s)%s\n", args[0], m.Family, m.Release, len(m.Images), m.IndexDigest, state)
				return nil
			}
			if artifactsOnly {
				m, err := bake.CheckArtifacts(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), m)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: every file of %s-%s matches the manifest (%s; not rebuilt)\n", args[0], m.Family, m.Release, indexNote(m))
				return nil
			}
			return verifyRebuild(cmd, g, args[0], o, cache, remoteOptions(ro.Options), remap)
		},
	}
	cmd.Flags().BoolVar(&artifactsOnly, "artifacts-only", false, "hash the release's files against the manifest; no rebuild")
	addRemapFlag(cmd.Flags(), &remap)
	cmd.Flags().StringVar(&cosignPub, "cosign-key", "", "with a registry reference: also check the cosign signatures of the index and every image, and the provenance and SBOM attestations, with this cosign public key (a file, or an awskms:// key's public half)")
	cmd.Flags().StringVar(&published, "catalog", "", "with a registry reference: the store whose catalog says the release's lifecycle state (revoked or obsolete: exit 4)")
	addCacheFlag(cmd.Flags(), &cache)
	addContextFlag(cmd.Flags(), &o.Context)
	kf.register(cmd, false)
	addRegistryFlags(cmd.Flags(), &ro.Options)
	return cmd
}

// verifyRebuild rebuilds the release whose manifest is at name and
// compares every digest (verify MANIFEST).
func verifyRebuild(cmd *cobra.Command, g *globals, name string, o bake.Options, cache string, ro ociremote.Options, remap []string) error {
	var err error
	if o.Cache, err = cacheDir(cache); err != nil {
		return err
	}
	o.Version, o.Log, o.Registry = clientVersion(), g.progress(), ro
	if o.Remaps, err = remaps(remap); err != nil {
		return err
	}
	m, err := bake.Verify(cmd.Context(), name, o)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(cmd.OutOrStdout(), m)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: rebuilt %d images, every digest matches (%s)\n", name, len(m.Images), indexNote(m))
	return nil
}

// isRegistryRef says whether arg names an image in a registry rather
// than a file: no such file, and REGISTRY/REPO with a tag or digest.
func isRegistryRef(arg string) bool {
	if _, err := os.Stat(arg); err == nil {
		return false
	}
	host, rest, ok := strings.Cut(arg, "/")
	return ok && rest != "" && (strings.ContainsAny(host, ".:") || host == "localhost") && (strings.Contains(rest, ":") || strings.Contains(rest, "@"))
}

// publishedOnly is the signed manifest of the one family's release
// numbered release in c: bake --catalog without --repo rebuilds it.
func publishedOnly(ctx context.Context, c *catalog.Opened, release string) (*manifest.Manifest, error) {
	var fams []string
	for _, f := range c.Families {
		for _, r := range f.Releases {
			if r.Version == release {
				fams = append(fams, f.Name)
			}
		}
	}
	switch len(fams) {
	case 0:
		return nil, fmt.Errorf("%w: no release %s in %s; without --repo, bake --catalog rebuilds a published release", failure.ErrNotFound, release, c.Where)
	case 1:
		return c.Manifest(ctx, fams[0], release)
	}
	return nil, usageErr("release %s is in several families of %s (%s): pass --repo to say which control repo", release, c.Where, strings.Join(fams, ", "))
}

// verifiedState reads the state of the verified release m in the catalog of
// store ("": not asked): a revoked or obsolete release is an error (exit
// 4, naming its reason and replacement); otherwise a note for the line
// verify prints.
func verifiedState(cmd *cobra.Command, kr *signing.Keyring, store, cache string, m *manifest.Manifest) (string, error) {
	if store == "" {
		return "", nil
	}
	c, err := openCatalog(cmd.Context(), store, kr, cache)
	if err != nil {
		return "", err
	}
	var r *catalog.Release
	if f := c.Family(m.Family, false); f != nil {
		r = f.Release(m.Release)
	}
	switch {
	case r == nil:
		return "", fmt.Errorf("%w: %s-%s is not in the catalog of %s", failure.ErrNotFound, m.Family, m.Release, c.Where)
	case r.State == catalog.Revoked || r.State == catalog.Obsolete:
		repl := ""
		if r.Replacement != "" {
			repl = "; replacement: " + r.Replacement
		}
		return "", fmt.Errorf("%w: %s-%s matches its signed manifest, but %s says it is %s since %s: %s%s", failure.ErrVerify, m.Family, m.Release, c.Where, r.State, r.StateDate.Format("2006-01-02"), r.Reason, repl)
	}
	return "; " + r.State + " in " + c.Where, nil
}

// indexNote is "index sha256:..." or, for a release without one, what it
// has instead.
func indexNote(m *manifest.Manifest) string {
	if m.IndexDigest == "" {
		return m.Builder + " builder: one root file system per arch, no index"
	}
	return "index " + m.IndexDigest
}

// cosignPublic reads a cosign public key file, or the public half of a
// KMS key (awskms://).
func cosignPublic(ctx context.Context, ref string, stallAfter time.Duration) (*ecdsa.PublicKey, error) {
	if !cosignkey.IsKMS(ref) {
		return cosignkey.LoadPublic(ref)
	}
	k, err := cosignkey.Open(ctx, ref, stallOr(stallAfter))
	if err != nil {
		return nil, err
	}
	return k.Public().(*ecdsa.PublicKey), nil // Open takes ECDSA P-256 keys only
}

// verifyCosign checks the cosign signatures and attestations of the
// release m verified at ref.
func verifyCosign(cmd *cobra.Command, ref, pubPath string, m *manifest.Manifest, o registry.Options) error {
	pub, err := cosignPublic(cmd.Context(), pubPath, o.Stall)
	if err != nil {
		return err
	}
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", failure.ErrUsage, ref, err)
	}
	r, err := o.Repository(parsed.Context().String())
	if err != nil {
		return err
	}
	images := map[string]string{}
	for _, im := range m.Images {
		images[im.Arch] = im.Digest
	}
	return registry.VerifyCosign(cmd.Context(), r, m.IndexDigest, images, pub, o)
}

// storedSources are the sources the store keeps with release m (nil for
// a release published before stores kept them: a rebuild then reads
// every upstream, as it always did).
func storedSources(ctx context.Context, c *catalog.Opened, m *manifest.Manifest) (*bake.Stored, error) {
	b, err := c.ReleaseFile(ctx, m.Family, m.Release, manifest.SourcesFileName)
	if errors.Is(err, failure.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := manifest.ParseSources(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s in %s: %w", m.Family, m.Release, c.Where, err)
	}
	return &bake.Stored{Sources: s, Where: "the store " + c.Where, Read: func(ctx context.Context, blob string) (io.ReadCloser, error) {
		return c.Blob(ctx, strings.TrimPrefix(blob, "sha256:"))
	}}, nil
}

package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/builders"
	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/ociremote"
)

// baseLong is base's --help.
const baseLong = `Resolve REGISTRY/REPO:TAG to REGISTRY/REPO@sha256:DIGEST (the index, or the
image) and print it, then the linux/ARCH image digest of each --arch (default
the arches of imagebake.toml with --write, else amd64 and arm64). A tag
moves, a digest does not.

With --write, imagebake.toml (--config, default ./imagebake.toml) gets
[base] image = "REGISTRY/REPO@sha256:..." in place of the base it named
(or [bases.ARCH] with --for ARCH), keeping every comment and other line;
the file is replaced whole, and only after every arch was found.`

func newBaseCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "base", Short: "Bases in registries"}
	var o ociremote.Options
	var arches []string
	var write bool
	var config, forArch string
	pin := &cobra.Command{
		Use:   "pin REGISTRY/REPO:TAG [--arch a,b]",
		Short: "Resolve a tag to the digest to write in imagebake.toml, with each arch's platform image",
		Long:  baseLong,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw []byte
			if write {
				var err error
				if raw, err = os.ReadFile(config); err != nil {
					return fmt.Errorf("base pin --write: %w", err)
				}
				c, err := bake.ParseConfig(raw)
				if err != nil {
					return fmt.Errorf("%s: %w", config, err)
				}
				if len(arches) == 0 {
					arches = c.Arches
					if forArch != "" {
						arches = []string{forArch}
					}
				}
			} else if forArch != "" {
				return usageErr("--for goes with --write")
			}
			if len(arches) == 0 {
				arches = []string{"amd64", "arm64"}
			}
			p, err := remoteOptions(o).Pin(cmd.Context(), args[0], arches)
			if err != nil {
				return err
			}
			if write {
				table := "base"
				if forArch != "" {
					table = "bases." + forArch
				}
				out, err := bake.SetBaseImage(raw, table, p.Ref)
				if err != nil {
					return fmt.Errorf("%s: %w", config, err)
				}
				if err := atomicfile.WriteFile(config, out, fileMode(config)); err != nil {
					return err
				}
				fmt.Fprintf(g.progress(), "%s: [%s] image = %q\n", config, table, p.Ref)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), p)
			}
			fmt.Fprintln(cmd.OutOrStdout(), p.Ref)
			keys := make([]string, 0, len(p.Platforms))
			for a := range p.Platforms {
				keys = append(keys, a)
			}
			sort.Strings(keys)
			for _, a := range keys {
				fmt.Fprintf(cmd.OutOrStdout(), "  linux/%s\t%s\n", a, p.Platforms[a])
			}
			return nil
		},
	}
	pin.Flags().StringSliceVar(&arches, "arch", nil, "arches to resolve (default: imagebake.toml's with --write, else amd64,arm64)")
	pin.Flags().BoolVar(&write, "write", false, "write the pinned reference into imagebake.toml, keeping its comments")
	pin.Flags().StringVar(&config, "config", bake.ConfigName, "the imagebake.toml --write edits")
	pin.Flags().StringVar(&forArch, "for", "", "with --write: pin [bases.ARCH] of this arch instead of [base]")
	addRegistryFlags(pin.Flags(), &o)
	cmd.AddCommand(pin, newBaseShowCommand(g))
	return cmd
}

func newBaseShowCommand(g *globals) *cobra.Command {
	var o ociremote.Options
	var arch, cache string
	cmd := &cobra.Command{
		Use:   "show REGISTRY/REPO[:TAG|@sha256:...] | LAYOUT_DIR[@sha256:...] | ROOTFS.tar[.gz] [--arch A]",
		Short: "Print the OS and the installed packages of a base, read from its layers (nothing is run)",
		Long: `Read a base's layers in order (whiteouts applied) and print what it says it
is: the OS from /etc/os-release (or /usr/lib/os-release), the architecture
its packages (or /bin/sh) are built for, and every installed package from the
dpkg database (/var/lib/dpkg/status, the distroless status.d) or the apk
database (/lib/apk/db/installed). Nothing in the base is run, so any arch can
be read on any machine. A multi-arch index is read for --arch (default
amd64). With --json, the same as one object.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := showBase(cmd, args[0], arch, remoteOptions(o), cache)
			if err != nil {
				return err
			}
			found, err := builders.Inspect(cmd.Context(), b, arch)
			if err != nil {
				return err
			}
			info := found.Info
			got, others := info.Arch()
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"base": args[0], "digest": found.Digest, "os": info.OS,
					"arch": got, "other_arches": others, "format": info.Format, "packages": info.Packages, "notes": info.Notes})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "base\t%s\ndigest\t%s\n", args[0], found.Digest)
			if info.OS != nil {
				fmt.Fprintf(w, "os\t%s\t%s\n", info.OS, info.OS.PrettyName)
			}
			if got != "" {
				fmt.Fprintf(w, "arch\t%s\n", got)
			}
			if info.Format != "" {
				fmt.Fprintf(w, "packages\t%d (%s)\n", len(info.Packages), info.Format)
			}
			for _, p := range info.Packages {
				fmt.Fprintf(w, "  %s\t%s\t%s\n", p.Name, p.Version, p.Arch)
			}
			for _, n := range info.Notes {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&arch, "arch", "amd64", "the platform to read from a multi-arch index")
	addCacheFlag(cmd.Flags(), &cache)
	addRegistryFlags(cmd.Flags(), &o)
	return cmd
}

// showBase says where the base arg is: a rootfs tarball, an OCI layout
// directory (its only image or index, or the one after @), or a registry
// reference (a tag is resolved to its digest first).
func showBase(cmd *cobra.Command, arg, arch string, o ociremote.Options, cache string) (builders.Base, error) {
	path, digest, _ := strings.Cut(arg, "@")
	if fi, err := os.Stat(path); err == nil {
		if !fi.IsDir() {
			return builders.Base{Rootfs: path}, nil
		}
		if digest == "" {
			idx, err := layout.ImageIndexFromPath(path)
			if err != nil {
				return builders.Base{}, fmt.Errorf("%s is not an OCI layout: %w", path, err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				return builders.Base{}, fmt.Errorf("%s: %w", path, err)
			}
			if len(im.Manifests) != 1 {
				return builders.Base{}, usageErr("%s holds %d images or indexes: name one as %s@sha256:DIGEST", path, len(im.Manifests), path)
			}
			digest = im.Manifests[0].Digest.String()
		}
		return builders.Base{Layout: path, Digest: digest}, nil
	}
	dir, err := cacheDir(cache)
	if err != nil {
		return builders.Base{}, err
	}
	p, err := o.Pin(cmd.Context(), arg, []string{arch})
	if err != nil {
		return builders.Base{}, err
	}
	return builders.Base{Image: p.Ref, Remote: o, Cache: dir}, nil
}

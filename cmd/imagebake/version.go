package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// version is set at link time: -ldflags "-X main.version=1.2.3".
var version = ""

// clientVersion is the version of this binary: the link-time version, or
// the module version Go recorded, or "devel".
func clientVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func newVersionCommand(g *globals) *cobra.Command {
	var mpath, cpath, image string
	kf := &keyFlags{}
	cmd := &cobra.Command{
		Use:   "version [--manifest M | --catalog C --image NAME-X.Y.Z-ARCH]",
		Short: "Print imagebake's version, and an image's release, agent binaries and commit side by side",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mpath != "" || cpath != "" {
				return printImageVersions(cmd, g, kf, mpath, cpath, image)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"version": clientVersion(), "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imagebake %s (%s, %s/%s)\n", clientVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
	cmd.Flags().StringVar(&mpath, "manifest", "", "a release's manifest.toml (its signature is checked when trusted keys are given)")
	cmd.Flags().StringVar(&cpath, "catalog", "", "a store (directory or URL) or catalog.toml; with --image")
	cmd.Flags().StringVar(&image, "image", "", "image name NAME-X.Y.Z-ARCH, with --catalog")
	kf.register(cmd, false)
	return cmd
}

// printImageVersions prints client, image and agent versions side by side.
func printImageVersions(cmd *cobra.Command, g *globals, kf *keyFlags, mpath, cpath, image string) error {
	kr, err := kf.keyring()
	if err != nil {
		return err
	}
	if cpath != "" {
		if image == "" {
			return usageErr("--catalog needs --image NAME-X.Y.Z-ARCH")
		}
		o, err := openCatalog(cmd.Context(), cpath, kr, "")
		if err != nil {
			return err
		}
		if o.Notice != "" {
			fmt.Fprintln(g.progress(), o.Notice)
		}
		var fam, ver string
		var rel catalog.Release
		for _, f := range o.Families {
			for _, r := range f.Releases {
				for _, im := range r.Images {
					if im.Name == image {
						fam, ver, rel = f.Name, r.Version, r
					}
				}
			}
		}
		if fam == "" {
			return fmt.Errorf("image %s is not in the catalog %s: %w", image, o.Where, failure.ErrNotFound)
		}
		m, err := o.Manifest(cmd.Context(), fam, ver)
		if err != nil {
			return err
		}
		return showVersions(cmd, g, m, image, &rel)
	}
	var m *manifest.Manifest
	if len(listSetting(kf.trusted, envTrusted)) > 0 {
		if m, err = catalog.ReadSignedManifest(mpath, kr); err != nil {
			return err
		}
	} else if m, err = manifest.Read(mpath); err != nil {
		return err
	}
	return showVersions(cmd, g, m, image, nil)
}

// lifecycle describes a release's state for people: "active", or
// "revoked since 2026-05-02: CVE-2026-1; replacement: 1.0.1".
func lifecycle(r *catalog.Release) string {
	s := r.State
	if r.State != catalog.Active {
		if !r.StateDate.IsZero() {
			s += " since " + r.StateDate.Format("2006-01-02")
		}
		if r.Reason != "" {
			s += ": " + r.Reason
		}
		if r.Replacement != "" {
			s += "; replacement: " + r.Replacement
		}
	}
	return s
}

func showVersions(cmd *cobra.Command, g *globals, m *manifest.Manifest, image string, rel *catalog.Release) error {
	type row struct {
		Image, Arch, Agent, AgentVersion string
	}
	var rows []row
	for _, im := range m.Images {
		if image == "" || im.Name == image {
			rows = append(rows, row{im.Name, im.Arch, im.Agent.Name, im.Agent.Version})
		}
	}
	if g.json {
		out := map[string]any{"client": clientVersion(), "family": m.Family, "release": m.Release,
			"tag": m.Repo.Tag, "commit": m.Repo.Commit, "baked_by": m.Imagebake.Version, "images": rows}
		if rel != nil {
			out["state"], out["reason"], out["replacement"], out["history"] = rel.State, rel.Reason, rel.Replacement, rel.History
		}
		return printJSON(cmd.OutOrStdout(), out)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "client:   imagebake %s\n", clientVersion())
	fmt.Fprintf(w, "image:    %s %s (baked by imagebake %s)\n", m.Family, m.Release, m.Imagebake.Version)
	if rel != nil {
		fmt.Fprintf(w, "state:    %s\n", lifecycle(rel))
	}
	fmt.Fprintf(w, "control:  %s at %s (%s)\n", m.Repo.URL, m.Repo.Tag, m.Repo.Commit)
	for _, r := range rows {
		if r.Agent == "" {
			fmt.Fprintf(w, "agent:    %s none (no agent binaries) on %s\n", r.Image, r.Arch)
			continue
		}
		fmt.Fprintf(w, "agent:    %s %s %s on %s\n", r.Image, r.Agent, r.AgentVersion, r.Arch)
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/bake"
)

func newInitCommand(g *globals) *cobra.Command {
	var o bake.InitOptions
	var cache string
	var noCheck bool
	cmd := &cobra.Command{
		Use:   "init [DIR] [--family F] [--arches a,b] [--base scratch|ROOTFS.tar[.gz]|LAYOUT_DIR|REGISTRY/REPO@sha256:...]",
		Short: "Write imagebake.toml into a Puppet control repo, and check it with a dry bake",
		Long: `Write imagebake.toml at the root of the control repo DIR (default: the
current directory), for a control repo that has none.

init reads the Puppetfile (every module must parse), environment.conf and
hiera.yaml, and asks for nothing it can tell: the family is the
directory's name, the arches this machine's, the base scratch (an empty
image), unless --family, --arches and --base say otherwise. A base file or
OCI layout (its path taken from the current directory, as the shell
completes it) is pinned by its digest and must be inside DIR (bake's
--context). The images carry no agent binaries: add [agents] when you
publish some (imagebake agents publish).

Then a dry bake resolves HEAD with the new file as if committed: the
control repo's commit, every Puppetfile module pinned (fetched into the
cache), the base checked against its pin. Nothing is built. It prints the
commands that commit the file, tag a release and bake it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir = "."
			if len(args) == 1 {
				o.Dir = args[0]
			}
			r, err := bake.Init(o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			printInit(w, r)
			if !noCheck {
				if err := dryBake(cmd.Context(), g, w, r, o.Dir, cache); err != nil {
					return fmt.Errorf("%s is written, but a dry bake of it fails (fix it, then run imagebake init --force again): %w", r.Path, err)
				}
			}
			fmt.Fprintf(w, "\nnext: commit it, tag a release and bake it:\n  git -C %s add imagebake.toml && git -C %s commit -m \"imagebake: bake this control repo\"\n  git -C %s tag -a v1.0.0 -m \"release 1.0.0\"\n  imagebake bake --repo %s --release 1.0.0 --context %s --out dist\n",
				shellQuote(o.Dir), shellQuote(o.Dir), shellQuote(o.Dir), shellQuote(o.Dir), shellQuote(o.Dir))
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Family, "family", "", "image family (default: the directory's name)")
	cmd.Flags().StringSliceVar(&o.Arches, "arches", nil, "arches to bake, comma-separated (default: this machine's)")
	cmd.Flags().StringVar(&o.Base, "base", "scratch", "base: scratch, a root file system .tar[.gz] or OCI layout directory inside DIR, or REGISTRY/REPO@sha256:...")
	cmd.Flags().BoolVar(&o.Force, "force", false, "write over an existing imagebake.toml")
	cmd.Flags().BoolVar(&noCheck, "no-check", false, "skip the dry bake (it fetches the Puppetfile's modules)")
	cmd.Flags().StringVar(&cache, "cache", "", "cache directory for the dry bake (default $IMAGEBAKE_CACHE, else the user cache dir)")
	return cmd
}

// printInit says what init read and wrote.
func printInit(w io.Writer, r *bake.InitReport) {
	fmt.Fprintf(w, "wrote %s\n  family:  %s\n  arches:  %s\n  base:    %s\n  agents:  none\n", r.Path, r.Family, strings.Join(r.Arches, ", "), r.Base)
	if r.Modules != nil {
		var kinds []string
		n := 0
		for k, c := range r.Modules {
			kinds, n = append(kinds, fmt.Sprintf("%d %s", c, k)), n+c
		}
		sort.Strings(kinds)
		fmt.Fprintf(w, "  Puppetfile: %d modules (%s) into %s/\n", n, strings.Join(kinds, ", "), r.Moduledir)
	}
	if r.EnvironmentConf != nil {
		var kv []string
		for k, v := range r.EnvironmentConf {
			kv = append(kv, k+" = "+v)
		}
		sort.Strings(kv)
		fmt.Fprintf(w, "  environment.conf: %s\n", strings.Join(kv, "; "))
	}
	if r.HieraVersion != 0 {
		fmt.Fprintf(w, "  hiera.yaml: version %d\n", r.HieraVersion)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// dryBake resolves HEAD of the control repo at dir with r's config as if
// committed: nothing is built.
func dryBake(ctx context.Context, g *globals, w io.Writer, r *bake.InitReport, dir, cache string) error {
	head, changed, err := bake.WorkTreeHead(dir)
	if err != nil {
		return err
	}
	if head == "" {
		fmt.Fprintf(w, "no dry bake: the control repo has no commit yet; commit it, then run imagebake init --force again\n")
		return nil
	}
	if len(changed) > 0 {
		fmt.Fprintf(w, "note: %s changed since HEAD, and a bake reads a commit: the dry bake reads HEAD's; commit them to bake what init read\n", strings.Join(changed, ", "))
	}
	o := bake.Options{Repo: dir, Ref: head, Release: "1.0.0", Context: dir, Config: r.Config, Version: clientVersion(), Log: g.progress()}
	if o.Cache, err = cacheDir(cache); err != nil {
		return err
	}
	in, err := bake.Resolve(ctx, o)
	if err != nil {
		return err
	}
	var names []string
	for _, im := range in.Manifest.Images {
		names = append(names, im.Name)
	}
	fmt.Fprintf(w, "dry bake of HEAD (%s): %d modules pinned, images %s: ok\n", in.Manifest.Repo.Commit[:12], len(in.Manifest.Puppetfile.Modules), strings.Join(names, ", "))
	return nil
}

// shellQuote is s as a POSIX shell word: as is when it is only safe
// characters, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

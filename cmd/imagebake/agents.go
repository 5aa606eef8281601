package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/agents"
	"github.com/imagebake/imagebake/internal/s3obj"
)

// storeFlags is the store chain: repeated --store, else IMAGEBAKE_STORES
// (comma-separated), searched in order, private first.
type storeFlags struct {
	stores []string
}

func (f *storeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.stores, "store", nil, "store to search (a directory, file:// or http(s):// URL); repeat for a chain, private first (default $IMAGEBAKE_STORES)")
}

func (f *storeFlags) chain() (*agents.Chain, error) {
	list := listSetting(f.stores, envStores)
	if len(list) == 0 {
		return nil, usageErr("no store: give --store (repeat it for a chain) or set IMAGEBAKE_STORES")
	}
	var stores []agents.Store
	for _, s := range list {
		st, err := agents.NewStore(strings.TrimSpace(s), nil)
		if err != nil {
			return nil, err
		}
		stores = append(stores, st)
	}
	return agents.NewChain(stores...), nil
}

func newAgentsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "List, select, publish, index and mirror agent binaries",
	}
	cmd.AddCommand(newAgentsWithdrawCommand(g))
	cmd.AddCommand(newAgentsListCommand(g), newAgentsSelectCommand(g), newAgentsPublishCommand(g), newAgentsIndexCommand(g), newAgentsSyncCommand(g),
		newAgentsActivateCommand(g), newAgentsRollbackCommand(g), newAgentsStatusCommand(g), newAgentsPruneCommand(g))
	return cmd
}

func newAgentsListCommand(g *globals) *cobra.Command {
	f := &storeFlags{}
	var name string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the agent binaries every store of the chain holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			chain, err := f.chain()
			if err != nil {
				return err
			}
			ixs, errs := chain.Indexes(cmd.Context())
			type row struct {
				agents.Entry
				Store string `json:"store"`
			}
			var rows []row
			for i, ix := range ixs {
				if errs[i] != nil {
					return errs[i]
				}
				for _, e := range ix.Agents {
					if name == "" || e.Name == name {
						rows = append(rows, row{e, chain.Stores[i].Location()})
					}
				}
			}
			if g.json {
				if rows == nil {
					rows = []row{}
				}
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tVERSION\tPLATFORM\tSIZE\tSHA256\tSTATE\tSTORE")
			for _, r := range rows {
				state := "ok"
				if r.Withdrawn != nil { // kept for rebuilds, never selected
					state = "withdrawn: " + r.Withdrawn.Reason
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Name, r.Version, r.Platform(), r.Size, r.SHA256[:12], state, r.Store)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&name, "name", "", "only this agent")
	return cmd
}

func newAgentsSelectCommand(g *globals) *cobra.Command {
	f := &storeFlags{}
	var q agents.Query
	var major, version, constraint string
	var arches []string
	cmd := &cobra.Command{
		Use:   "select NAME (--major M | --version X.Y.Z | --constraint C) --arch A[,B]",
		Short: "Select the largest compatible agent binaries per arch",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 0
			for _, s := range []string{major, version, constraint} {
				if s != "" {
					n++
					q.Want = s
				}
			}
			if n != 1 {
				return usageErr("give exactly one of --major, --version and --constraint")
			}
			q.Name = args[0]
			chain, err := f.chain()
			if err != nil {
				return err
			}
			sels, err := chain.SelectArches(cmd.Context(), q, arches)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), sels)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ARCH\tVERSION\tFILE\tSHA256\tSTORE")
			for _, s := range sels {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Arch, s.Version, s.Path, s.SHA256, s.Source)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&major, "major", "", "largest version of this major (or major.minor, like --patch)")
	cmd.Flags().StringVar(&version, "version", "", "exactly this version")
	cmd.Flags().StringVar(&constraint, "constraint", "", "a semver constraint, e.g. '~2.4' or '>=2.1 <3'")
	cmd.Flags().StringSliceVar(&arches, "arch", []string{runtime.GOARCH}, "arches, comma-separated")
	cmd.Flags().StringVar(&q.OS, "os", "linux", "operating system")
	cmd.Flags().BoolVar(&q.Prerelease, "prerelease", false, "allow pre-releases")
	return cmd
}

func newAgentsPublishCommand(g *globals) *cobra.Command {
	var from, store, epoch string
	var o agents.PublishOptions
	cmd := &cobra.Command{
		Use:   "publish --from DIR --store DIR|s3://B/P --name N --version X.Y.Z --arch A [--os O]",
		Short: "Pack locally built agent binaries into a store (immutable versions)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || store == "" || o.Name == "" || o.Version == "" || o.Arch == "" {
				return usageErr("--from, --store, --name, --version and --arch are required")
			}
			var err error
			if o.Epoch, err = sourceDateEpoch(epoch); err != nil {
				return err
			}
			var e agents.Entry
			var added bool
			if s3obj.IsURL(store) {
				st, serr := agents.NewS3Store(cmd.Context(), store)
				if serr != nil {
					return serr
				}
				e, added, err = agents.PublishS3(cmd.Context(), st, from, o)
				reportRetries(cmd, "index", st.Retries.Load())
			} else {
				d, derr := agents.NewDirStore(strings.TrimPrefix(store, "file://"))
				if derr != nil {
					return derr
				}
				e, added, err = agents.Publish(cmd.Context(), d, from, o)
			}
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), e)
			}
			if !added {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is in %s already, the same bytes (sha256:%s): nothing to do\n", e.Path, store, e.SHA256)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s published into %s (sha256:%s)\n", e.Path, store, e.SHA256)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "directory holding the built binaries")
	cmd.Flags().StringVar(&store, "store", "", "store to publish into: a directory or s3://BUCKET/PREFIX")
	cmd.Flags().StringVar(&o.Name, "name", "", "agent name")
	cmd.Flags().StringVar(&o.Version, "version", "", "version X.Y.Z")
	cmd.Flags().StringVar(&o.Arch, "arch", "", "arch (amd64, arm64, ...)")
	cmd.Flags().StringVar(&o.OS, "os", "linux", "operating system")
	cmd.Flags().StringVar(&epoch, "source-date-epoch", "", "mtime ceiling of the archive (default $SOURCE_DATE_EPOCH, else 0)")
	return cmd
}

func newAgentsIndexCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "index DIR",
		Short: "Regenerate a directory store's tools/index.json from its tarballs, atomically",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.Contains(args[0], "://") {
				return usageErr("agents index rebuilds a directory store's index from its files; %s is not a directory (S3 and HTTP stores keep their index as they are published to)", args[0])
			}
			d, err := agents.NewDirStore(args[0])
			if err != nil {
				return err
			}
			ix, skipped, err := agents.Reindex(cmd.Context(), d)
			if err != nil {
				return err
			}
			for _, s := range skipped {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s does not follow NAME-X.Y.Z[-OS]-ARCH.tar.gz; not indexed\n", s)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), ix)
			}
			fmt.Fprintf(g.progress(), "indexed %d tarballs in %s\n", len(ix.Agents), d.Tools())
			return nil
		},
	}
}

func newAgentsSyncCommand(g *globals) *cobra.Command {
	var from, to string
	var o agents.SyncOptions
	cmd := &cobra.Command{
		Use:   "sync --from URL --to DIR|s3://B/P [--name N] [--major M] [--arch A,...]",
		Short: "Mirror a store for air-gapped sites: verified, resumable",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return usageErr("--from and --to are required")
			}
			src, err := agents.NewStore(from, nil)
			if err != nil {
				return err
			}
			w := g.progress()
			o.Progress = func(e agents.Entry, skipped bool) {
				verb := "fetched"
				if skipped {
					verb = "present"
				}
				fmt.Fprintf(w, "%s %s\n", verb, e.Path)
			}
			var rep *agents.SyncReport
			var where string
			if s3obj.IsURL(to) {
				dst, serr := agents.NewS3Store(cmd.Context(), to)
				if serr != nil {
					return serr
				}
				rep, err = agents.SyncS3(cmd.Context(), src, dst, o)
				where = dst.Location()
				reportRetries(cmd, "index", dst.Retries.Load())
			} else {
				dst, derr := agents.NewDirStore(strings.TrimPrefix(to, "file://"))
				if derr != nil {
					return derr
				}
				rep, err = agents.Sync(cmd.Context(), src, dst, o)
				where = dst.Tools()
			}
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"fetched": len(rep.Fetched), "skipped": len(rep.Skipped), "bytes": rep.Bytes})
			}
			fmt.Fprintf(w, "%d fetched (%d bytes), %d already present, into %s\n", len(rep.Fetched), rep.Bytes, len(rep.Skipped), where)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "store to mirror")
	cmd.Flags().StringVar(&to, "to", "", "store to mirror into: a directory or s3://BUCKET/PREFIX")
	cmd.Flags().StringVar(&o.Name, "name", "", "only this agent")
	cmd.Flags().StringVar(&o.Major, "major", "", "only this major version")
	cmd.Flags().StringSliceVar(&o.Arches, "arch", nil, "only these arches")
	return cmd
}

func newAgentsWithdrawCommand(g *globals) *cobra.Command {
	var store, version, arch, os_, reason string
	cmd := &cobra.Command{
		Use:   "withdraw NAME --version X.Y.Z --arch A [--os O] --reason TEXT --store DIR|s3://B/P",
		Short: "Mark a broken upload in a store's index: selection skips it; releases that pinned it still rebuild",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if store == "" || version == "" || arch == "" {
				return usageErr("--store, --version and --arch are required")
			}
			var e agents.Entry
			if s3obj.IsURL(store) {
				st, err := agents.NewS3Store(cmd.Context(), store)
				if err != nil {
					return err
				}
				e, err = agents.WithdrawS3(cmd.Context(), st, args[0], version, os_, arch, reason, time.Now())
				if err != nil {
					return err
				}
			} else {
				d, err := agents.NewDirStore(strings.TrimPrefix(store, "file://"))
				if err != nil {
					return err
				}
				if e, err = agents.Withdraw(cmd.Context(), d, args[0], version, os_, arch, reason, time.Now()); err != nil {
					return err
				}
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), e)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s withdrawn %s: %s\n", e.Path, e.Withdrawn.Date, e.Withdrawn.Reason)
			return nil
		},
	}
	cmd.Flags().StringVar(&store, "store", "", "store: a directory or s3://BUCKET/PREFIX")
	cmd.Flags().StringVar(&version, "version", "", "version X.Y.Z")
	cmd.Flags().StringVar(&arch, "arch", "", "arch (amd64, arm64, ...)")
	cmd.Flags().StringVar(&os_, "os", "linux", "operating system")
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown when selection skips it)")
	return cmd
}

// reportRetries tells, on stderr, how often a write to a shared store lost
// a race and was made again.
func reportRetries(cmd *cobra.Command, what string, n int64) {
	if n > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "the %s changed under this write %d times; it was read and changed again each time\n", what, n)
	}
}

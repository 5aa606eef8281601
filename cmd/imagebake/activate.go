package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/agents/activate"
)

// machineFlags are the flags of the machine-side agent verbs.
type machineFlags struct {
	root    string
	check   string
	timeout time.Duration
}

func (f *machineFlags) register(cmd *cobra.Command, withCheck bool) {
	cmd.Flags().StringVar(&f.root, "root", "/", "root of the machine (or image tree) whose agents to manage")
	if withCheck {
		cmd.Flags().StringVar(&f.check, "check", "", "shell command that must succeed before the switch (default: the agent's --version must print the version); sees $IMAGEBAKE_AGENT_DIR and $IMAGEBAKE_AGENT_VERSION")
		cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "how long the check may run")
	}
}

func printState(g *globals, cmd *cobra.Command, s *activate.State) error {
	if g.json {
		return printJSON(cmd.OutOrStdout(), s)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s: running %s (current -> %s)", s.Name, orNone(s.Running), orNone(s.Current))
	if s.Baked {
		fmt.Fprint(w, ", as baked into the image")
	}
	if s.Previous != "" {
		fmt.Fprintf(w, ", previous %s", s.Previous)
	}
	fmt.Fprintln(w)
	if s.Proposed != "" {
		fmt.Fprintf(w, "  upgrade to %s in progress since %s (or interrupted)\n", s.Proposed, s.ProposedAt.Format(time.RFC3339))
	}
	if s.LastError != "" {
		fmt.Fprintf(w, "  last error at %s: %s\n", s.LastErrorAt.Format(time.RFC3339), s.LastError)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func newAgentsActivateCommand(g *globals) *cobra.Command {
	f := &machineFlags{}
	sf := &storeFlags{}
	var version, cache string
	var major bool
	cmd := &cobra.Command{
		Use:   "activate NAME --version X.Y.Z [--root /] [--store S ...] [--check CMD] [--timeout D]",
		Short: "Install an agent version beside the running one, check it, and switch current atomically",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version == "" {
				return usageErr("--version is required")
			}
			chain, err := sf.chain()
			if err != nil {
				return err
			}
			if cache, err = cacheDir(cache); err != nil {
				return err
			}
			m := activate.NewMachine(f.root, args[0], time.Now)
			s, err := m.Activate(cmd.Context(), activate.Options{Version: version, Chain: chain, Cache: cache, Check: f.check, Timeout: f.timeout, AllowMajor: major})
			if s != nil {
				if perr := printState(g, cmd, s); perr != nil {
					return perr
				}
			}
			return err
		},
	}
	f.register(cmd, true)
	sf.register(cmd)
	cmd.Flags().StringVar(&version, "version", "", "version to activate")
	cmd.Flags().BoolVar(&major, "major", false, "allow a version of another major than the running one")
	addCacheFlag(cmd.Flags(), &cache)
	return cmd
}

func newAgentsRollbackCommand(g *globals) *cobra.Command {
	f := &machineFlags{}
	cmd := &cobra.Command{
		Use:   "rollback NAME [--root /]",
		Short: "Switch current back to the previous version, after the same check",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := activate.NewMachine(f.root, args[0], time.Now)
			s, err := m.Rollback(cmd.Context(), activate.Options{Check: f.check, Timeout: f.timeout})
			if s != nil {
				if perr := printState(g, cmd, s); perr != nil {
					return perr
				}
			}
			return err
		},
	}
	f.register(cmd, true)
	return cmd
}

func newAgentsStatusCommand(g *globals) *cobra.Command {
	f := &machineFlags{}
	cmd := &cobra.Command{
		Use:   "status [NAME] [--root /]",
		Short: "Print the recorded state of the machine's agents",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names := args
			if len(names) == 0 {
				files, _ := filepath.Glob(filepath.Join(f.root, "var", "lib", "imagebake", "agents", "*.toml"))
				for _, p := range files {
					names = append(names, strings.TrimSuffix(filepath.Base(p), ".toml"))
				}
				// and the agents a bake laid out, with nothing recorded since
				links, _ := filepath.Glob(filepath.Join(f.root, "opt", "*", "tools", "current"))
				for _, l := range links {
					if n := filepath.Base(filepath.Dir(filepath.Dir(l))); !slices.Contains(names, n) {
						names = append(names, n)
					}
				}
				sort.Strings(names)
			}
			if len(names) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no agent state under %s\n", filepath.Join(f.root, "var", "lib", "imagebake", "agents"))
				return nil
			}
			var all []*activate.State
			for _, n := range names {
				s, err := activate.NewMachine(f.root, n, time.Now).Status()
				if err != nil {
					return err
				}
				all = append(all, s)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), all)
			}
			for _, s := range all {
				if err := printState(g, cmd, s); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f.register(cmd, false)
	return cmd
}

func newAgentsPruneCommand(g *globals) *cobra.Command {
	f := &machineFlags{}
	var keep int
	cmd := &cobra.Command{
		Use:   "prune NAME --keep N [--root /]",
		Short: "Remove old version directories, never the current or previous one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keep < 1 {
				return usageErr("--keep must be at least 1")
			}
			removed, err := activate.NewMachine(f.root, args[0], time.Now).Prune(keep)
			if err != nil {
				return err
			}
			if g.json {
				if removed == nil {
					removed = []string{}
				}
				return printJSON(cmd.OutOrStdout(), removed)
			}
			for _, r := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", r)
			}
			return nil
		},
	}
	f.register(cmd, false)
	cmd.Flags().IntVar(&keep, "keep", 2, "version directories to keep (newest first)")
	return cmd
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/printable"
	"github.com/imagebake/imagebake/internal/progress"
	"github.com/imagebake/imagebake/internal/stall"
)

// globals are the flags every command has.
type globals struct {
	json    bool
	quiet   bool
	verbose bool
	// stderr is where the command's notes and warnings go: the command's
	// stderr, through the progress reporter when it draws bars
	stderr io.Writer
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "imagebake",
		Short:         "Bake golden images from a tagged Puppet control repo and pinned agent binaries",
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: `imagebake bakes golden images: one exact release of a Puppet control repo
(every Puppetfile module pinned) plus pinned agent binaries per CPU arch.

Settings come from, in order of precedence: flags, then the environment,
then files (imagebake.toml, the deploy file, the Puppetfile's forge line).
The environment: IMAGEBAKE_CACHE, IMAGEBAKE_STORES, IMAGEBAKE_TRUSTED_KEYS,
IMAGEBAKE_KEY, IMAGEBAKE_KEY_PASSWORD, IMAGEBAKE_COSIGN_KEY (and
COSIGN_PASSWORD), IMAGEBAKE_INSECURE_REGISTRIES, IMAGEBAKE_ADVISORIES,
IMAGEBAKE_COMPILE_CACHE_MAX, IMAGEBAKE_REMAP, IMAGEBAKE_STALL_TIMEOUT and
SOURCE_DATE_EPOCH; docs/settings.md pairs each with its flag and key.

Exit codes: 0 ok, 1 error, 2 usage error (bad flags or input files),
3 not found (tag, module, version, agent binaries), 4 verification failed
(stale lock, drift, checksum or digest mismatch), 5 internal error.`,
	}
	// a bar on stderr for long steps, on a terminal only (not in CI, not
	// with --quiet or --json)
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) {
		g.stderr = cmd.ErrOrStderr()
		if !g.quiet && !g.json && progress.Terminal(os.Stderr, noBars()) {
			// the reporter owns stderr: a line clears the bar first
			rep := progress.New(os.Stderr)
			cmd.SetContext(progress.With(cmd.Context(), rep))
			g.stderr = printable.Writer(rep.Writer())
			cmd.Root().SetErr(g.stderr)
		}
		// one stall rule for every HTTP client of the command: its
		// --stall-timeout, else IMAGEBAKE_STALL_TIMEOUT, else the default
		d := stallFromEnv(cmd.ErrOrStderr())
		if f := cmd.Flags().Lookup("stall-timeout"); f != nil && f.Changed {
			if v, err := time.ParseDuration(f.Value.String()); err == nil && v > 0 {
				d = v
			}
		}
		stall.SetCurrent(d)
	}
	// names, versions and error lines from modules, advisories and Puppet
	// are printed with their control characters escaped
	root.SetOut(printable.Writer(os.Stdout))
	root.SetErr(printable.Writer(os.Stderr))
	root.Version = clientVersion() // --version, as the version command prints it
	root.SetVersionTemplate(fmt.Sprintf("imagebake %s (%s, %s/%s)\n", clientVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH))
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print machine-readable JSON on stdout")
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "print no progress on stderr")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "also print the notes that are the same on every run (what a base lacks: a package database, /bin/sh)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v (see %s --help)", failure.ErrUsage, err, c.CommandPath())
	})
	root.AddCommand(newInitCommand(g), newVersionCommand(g), newCacheCommand(g), newPuppetfileCommand(g), newAgentsCommand(g), newBakeCommand(g), newVerifyCommand(g),
		newKeyCommand(g), newPublishCommand(g), newCatalogCommand(g), newStoreCommand(g), newReleaseCommand(g),
		newSelectCommand(g), newCheckCommand(g), newUpgradeCommand(g), newPackerCommand(g), newPushCommand(g), newMergeCommand(g), newBaseCommand(g),
		newDocsCommand(g), newSchemaCommand())
	strictGroups(root)
	usageOnBadArgs(root)
	return root
}

// usageOnBadArgs makes a wrong number of arguments a usage error (exit 2)
// that shows the command's usage line, for every command.
func usageOnBadArgs(c *cobra.Command) {
	for _, sub := range c.Commands() {
		usageOnBadArgs(sub)
	}
	if c.Args == nil {
		return
	}
	check := c.Args
	c.Args = func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return fmt.Errorf("%w: %v\nusage: %s (see %s --help)", failure.ErrUsage, err, cmd.UseLine(), cmd.CommandPath())
		}
		return nil
	}
}

// strictGroups makes every command that only groups others (catalog,
// agents, ...) refuse an unknown sub-command as a usage error (exit 2)
// instead of printing its help and exiting 0.
func strictGroups(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictGroups(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		var names []string
		for _, s := range cmd.Commands() {
			if s.IsAvailableCommand() {
				names = append(names, s.Name())
			}
		}
		return usageErr("unknown command %q for %q (commands: %s)", args[0], cmd.CommandPath(), strings.Join(names, ", "))
	}
}

// progress is where progress and warnings go: stderr, unless --quiet.
func (g *globals) progress() io.Writer {
	if g.quiet {
		return io.Discard
	}
	if g.stderr != nil {
		return g.stderr
	}
	return printable.Writer(os.Stderr)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// cacheDir applies flag > IMAGEBAKE_CACHE > the user cache dir.
// addCacheFlag declares --cache; cacheDir resolves it (flag >
// IMAGEBAKE_CACHE > the user cache directory).
func addCacheFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "cache", "", "cache directory: git mirrors, Forge tarballs, agent downloads (default $IMAGEBAKE_CACHE or ~/.cache/imagebake)")
}

// addContextFlag declares --context.
func addContextFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "context", ".", "directory that relative paths in imagebake.toml are relative to")
}

func cacheDir(flag string) (string, error) {
	if flag != "" { // an empty --cache is no choice: the default applies
		return flag, nil
	}
	if v := envSetting(envCache); v != "" {
		return v, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("%w: no cache directory: set --cache or IMAGEBAKE_CACHE (%v)", failure.ErrUsage, err)
	}
	return filepath.Join(base, "imagebake"), nil
}

// sourceDateEpoch applies flag > SOURCE_DATE_EPOCH; zero time means unset.
func sourceDateEpoch(flag string) (time.Time, error) {
	v, from := flag, "--source-date-epoch"
	if v == "" {
		v, from = envSetting(envSourceDateEpoch), envSourceDateEpoch
	}
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("%w: %s=%q is not a non-negative count of seconds since 1970", failure.ErrUsage, from, v)
	}
	return time.Unix(n, 0).UTC(), nil
}

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", failure.ErrUsage, fmt.Sprintf(format, args...))
}

package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/internal/gate"
)

// compileCacheMax is the compile cache's cap: the flag, else
// $IMAGEBAKE_COMPILE_CACHE_MAX, else bake's default; "0" or "none": no cap.
func compileCacheMax(flag setting) (int64, error) {
	v := stringSetting(flag, envCompileCacheMax)
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return 0, nil
	case "0", "none":
		return -1, nil
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n == 0 {
		return 0, usageErr("compile cache cap %q (--max-size or $%s) is not a size like 4GiB or 500MB", v, envCompileCacheMax)
	}
	return int64(n), nil
}

func newCacheCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cache", Short: "What imagebake keeps in its cache: the compile gate's unpacked bases (du, prune)"}
	var cache string
	du := &cobra.Command{
		Use:   "du",
		Short: "List the compile gate's unpacked bases with their sizes and last use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := cacheDir(cache)
			if err != nil {
				return err
			}
			where, entries, err := gate.Cache(dir)
			if err != nil && !os.IsNotExist(err) {
				return err
			}
			var total int64
			for _, e := range entries {
				total += e.Size
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"dir": where, "total": total, "bases": entries})
			}
			w := cmd.OutOrStdout()
			for _, e := range entries {
				fmt.Fprintf(w, "%s\t%s\tused %s\n", e.Key, humanize.IBytes(uint64(e.Size)), e.Used.UTC().Format(time.RFC3339))
			}
			fmt.Fprintf(w, "%s\t%s in %d unpacked bases\n", where, humanize.IBytes(uint64(total)), len(entries))
			return nil
		},
	}
	addCacheFlag(du.Flags(), &cache)
	var maxSize setting
	var olderThan time.Duration
	prune := &cobra.Command{
		Use:   "prune [--max-size 4GiB] [--older-than 720h]",
		Short: "Remove the compile gate's unpacked bases, least recently used first, to a size and an age (bases in use are kept)",
		Long: `prune removes unpacked bases of the compile gate's cache, least recently
used first, until the cache holds at most --max-size (default
$IMAGEBAKE_COMPILE_CACHE_MAX, else 4GiB; each bake keeps the cache under
that cap too), and every base not used for --older-than. A base a running
bake uses is kept. A base removed is unpacked again by its next bake.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := cacheDir(cache)
			if err != nil {
				return err
			}
			max, err := compileCacheMax(maxSize)
			if err != nil {
				return err
			}
			if max == 0 {
				max = gate.DefaultCacheMax
			}
			gone, err := gate.Prune(cmd.Context(), dir, max, olderThan, "")
			var freed int64
			for _, e := range gone {
				freed += e.Size
				fmt.Fprintf(g.progress(), "removed %s (%s, used %s)\n", e.Dir, humanize.IBytes(uint64(e.Size)), e.Used.UTC().Format(time.RFC3339))
			}
			if g.json {
				if jerr := printJSON(cmd.OutOrStdout(), map[string]any{"removed": gone, "freed": freed}); jerr != nil {
					return jerr
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %d unpacked bases, %s freed\n", len(gone), humanize.IBytes(uint64(freed)))
			}
			return err
		},
	}
	addCacheFlag(prune.Flags(), &cache)
	prune.Flags().Var(&maxSize, "max-size", "keep at most this much (4GiB, 500MB; none: no cap) (default $IMAGEBAKE_COMPILE_CACHE_MAX, else 4GiB)")
	prune.Flags().DurationVar(&olderThan, "older-than", 0, "also remove every base not used for this long (720h)")
	cmd.AddCommand(du, prune)
	return cmd
}

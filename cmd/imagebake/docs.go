package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newDocsCommand writes the command reference, one Markdown page per
// command, from the command tree (cobra's own generator): the pages are
// the --help texts, so they cannot drift from them. A test fails when
// docs/reference is not what this writes.
func newDocsCommand(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "docs --out DIR",
		Short: "Write the command reference (one Markdown page per command) into DIR",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := writeReference(cmd.Root(), out); err != nil {
				return err
			}
			fmt.Fprintf(g.progress(), "wrote the command reference into %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "docs/reference", "directory to write the pages into")
	return cmd
}

// writeReference writes root's reference into dir, replacing the pages an
// earlier run wrote there (imagebake*.md: a command since removed loses its
// page) and touching nothing else, so --out . is safe.
func writeReference(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing the command reference: %w", err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "imagebake*.md"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("replacing the command reference in %s: %w", dir, err)
		}
	}
	root.DisableAutoGenTag = true   // no date: the pages are committed
	root.InitDefaultCompletionCmd() // cobra adds "completion" when it runs; the reference has it either way
	return doc.GenMarkdownTree(root, dir)
}

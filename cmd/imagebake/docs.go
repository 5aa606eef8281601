package main

import (
	"fmt"
	"os"

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

// writeReference writes root's reference into dir, replacing what is there.
func writeReference(root *cobra.Command, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true   // no date: the pages are committed
	root.InitDefaultCompletionCmd() // cobra adds "completion" when it runs; the reference has it either way
	return doc.GenMarkdownTree(root, dir)
}

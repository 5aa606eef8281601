package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"
)

// table prints tab-separated rows (the first is the header) as aligned
// columns; on a terminal too narrow for them, as one block per row (the
// first column, then each other as "header: value"), so nothing wraps
// mid-column. Pipes and files always get the columns.
type table struct {
	w     io.Writer
	buf   bytes.Buffer
	width int // the terminal's columns; 0: not a terminal
}

func newTable(w io.Writer) *table { return &table{w: w, width: terminalWidth()} }

// terminalWidth is stdout's width when it is a terminal, else 0.
func terminalWidth() int {
	fd := int(os.Stdout.Fd())
	if !term.IsTerminal(fd) {
		return 0
	}
	w, _, err := term.GetSize(fd)
	if err != nil {
		return 0
	}
	return w
}

func (t *table) Write(p []byte) (int, error) { return t.buf.Write(p) }

// Flush prints the rows.
func (t *table) Flush() error {
	var cols bytes.Buffer
	tw := tabwriter.NewWriter(&cols, 0, 4, 2, ' ', 0)
	if _, err := tw.Write(t.buf.Bytes()); err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if t.width == 0 || widest(cols.String()) <= t.width {
		_, err := t.w.Write(cols.Bytes())
		return err
	}
	lines := strings.Split(strings.TrimRight(t.buf.String(), "\n"), "\n")
	header := strings.Split(lines[0], "\t")
	for _, l := range lines[1:] {
		cells := strings.Split(l, "\t")
		fmt.Fprintln(t.w, cells[0])
		for i := 1; i < len(cells) && i < len(header); i++ {
			fmt.Fprintf(t.w, "  %s: %s\n", strings.ToLower(header[i]), cells[i])
		}
	}
	return nil
}

func widest(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		n = max(n, len([]rune(l)))
	}
	return n
}

package main

import (
	"fmt"
	"strings"
	"testing"
)

// Rows fit a wide terminal (or a pipe) as columns; a narrow terminal gets
// one block per row, nothing cut.
func TestTableFitsTheTerminal(t *testing.T) {
	t.Parallel()
	rows := func(tb *table) {
		fmt.Fprintln(tb, "SELECTION\tRELEASE\tDIGEST")
		fmt.Fprintf(tb, "web\t1.0.1\tsha256:%s\n", strings.Repeat("a", 64))
	}
	var wide strings.Builder
	tb := &table{w: &wide, width: 200}
	rows(tb)
	if err := tb.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(wide.String(), "SELECTION  RELEASE  DIGEST\nweb        1.0.1    sha256:") {
		t.Errorf("a wide terminal got:\n%s", wide.String())
	}
	var narrow strings.Builder
	tb = &table{w: &narrow, width: 60}
	rows(tb)
	if err := tb.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "web\n  release: 1.0.1\n  digest: sha256:" + strings.Repeat("a", 64) + "\n"
	if narrow.String() != want {
		t.Errorf("a narrow terminal got:\n%s\nwant:\n%s", narrow.String(), want)
	}
	var pipe strings.Builder
	tb = &table{w: &pipe} // not a terminal
	rows(tb)
	if err := tb.Flush(); err != nil || !strings.Contains(pipe.String(), "SELECTION") {
		t.Errorf("a pipe got:\n%s (%v)", pipe.String(), err)
	}
}

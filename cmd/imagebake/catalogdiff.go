package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/imagebake/imagebake/bake"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/puppet/compiled"
)

// catalogChanges is what a candidate changes on the nodes: each node's
// catalog compiled from the candidate against the one the previous
// release keeps.
type catalogChanges struct {
	Against string           `json:"against"`
	Nodes   []*compiled.Diff `json:"nodes"`
	// New are nodes the previous release has no catalog of; Gone, nodes
	// only it has.
	New  []string `json:"new_nodes,omitempty"`
	Gone []string `json:"gone_nodes,omitempty"`
	// Note says why there is no diff (the previous release keeps no
	// catalogs) and how to get one.
	Note string `json:"note,omitempty"`
}

// compileCandidate bakes the candidate as release number with the compile
// gate into a temporary directory and reads the catalogs it keeps. A
// catalog that does not compile is the bake's error (exit 4).
func (f *candidateFlags) compileCandidate(ctx context.Context, number string) (map[string]*compiled.Catalog, error) {
	out, err := os.MkdirTemp("", "imagebake-candidate-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	o := f.o
	o.Release, o.Out = number, out
	o.Compile.Enabled, o.Compile.Set = true, true
	m, err := bake.Bake(ctx, o)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(out, m.Family+"-"+m.Release)
	return keptCatalogs(m, func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }, dir)
}

// keptCatalogs reads the catalogs m records with read, each checked
// against its recorded digest, by node.
func keptCatalogs(m *manifest.Manifest, read func(name string) ([]byte, error), where string) (map[string]*compiled.Catalog, error) {
	out := map[string]*compiled.Catalog{}
	var errs []error
	for _, im := range m.Images {
		for _, nc := range im.Catalogs {
			b, err := read(nc.File)
			if err != nil {
				errs = append(errs, fmt.Errorf("the catalog of node %s of %s %s (%s in %s): %w", nc.Node, m.Family, m.Release, nc.File, where, err))
				continue
			}
			sum := sha256.Sum256(b)
			if got := "sha256:" + hex.EncodeToString(sum[:]); got != nc.SHA256 {
				errs = append(errs, fmt.Errorf("%w: the catalog of node %s of %s %s (%s in %s) has sha256 %s; its manifest records %s", failure.ErrVerify, nc.Node, m.Family, m.Release, nc.File, where, got, nc.SHA256))
				continue
			}
			c, err := compiled.Parse(b)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: %s in %s: %v", failure.ErrVerify, nc.File, where, err))
				continue
			}
			out[nc.Node] = c
		}
	}
	return out, errors.Join(errs...)
}

// previousCatalogs reads the catalogs the previous release keeps: from
// the store --catalog names, or next to the --previous manifest file.
// nil, nil: it keeps none.
func (f *candidateFlags) previousCatalogs(ctx context.Context, prev *manifest.Manifest) (map[string]*compiled.Catalog, error) {
	n := 0
	for _, im := range prev.Images {
		n += len(im.Catalogs)
	}
	if n == 0 {
		return nil, nil
	}
	if _, err := os.Stat(f.previous); err == nil || f.opened == nil {
		dir := filepath.Dir(f.previous)
		return keptCatalogs(prev, func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }, dir)
	}
	return keptCatalogs(prev, func(name string) ([]byte, error) {
		return f.opened.ReleaseFile(ctx, prev.Family, prev.Release, name)
	}, f.opened.Where)
}

// catalogDiff compiles the candidate and diffs its catalogs against the
// previous release's.
func (f *candidateFlags) catalogDiff(ctx context.Context, prev *manifest.Manifest, number string) (*catalogChanges, error) {
	old, err := f.previousCatalogs(ctx, prev)
	if err != nil {
		return nil, err
	}
	cand, err := f.compileCandidate(ctx, number)
	if err != nil {
		return nil, err
	}
	ch := &catalogChanges{Against: prev.Release, Nodes: []*compiled.Diff{}}
	if old == nil {
		src := "--catalog STORE"
		if f.catalog != "" {
			src = "--catalog " + f.catalog
		}
		ch.Note = fmt.Sprintf("%s %s keeps no compiled catalogs (it was baked without the compile gate), so there is nothing to diff against; make them with: imagebake bake %s --release %s --compile --out DIR, then give --previous DIR/%s-%s/manifest.toml",
			prev.Family, prev.Release, src, prev.Release, prev.Family, prev.Release)
		return ch, nil
	}
	for _, node := range slices.Sorted(maps.Keys(cand)) {
		o, ok := old[node]
		if !ok {
			ch.New = append(ch.New, node)
			continue
		}
		ch.Nodes = append(ch.Nodes, compiled.Compare(o, cand[node]))
	}
	for _, node := range slices.Sorted(maps.Keys(old)) {
		if _, ok := cand[node]; !ok {
			ch.Gone = append(ch.Gone, node)
		}
	}
	return ch, nil
}

// print writes the changes for people.
func (ch *catalogChanges) print(w io.Writer) {
	if ch.Note != "" {
		fmt.Fprintf(w, "catalog changes: none shown: %s\n", ch.Note)
		return
	}
	fmt.Fprintf(w, "catalog changes against %s:\n", ch.Against)
	for _, d := range ch.Nodes {
		if d.Empty() {
			fmt.Fprintf(w, "  node %s: no change\n", d.Node)
			continue
		}
		fmt.Fprintf(w, "  node %s: %d added, %d removed, %d changed\n", d.Node, len(d.Added), len(d.Removed), len(d.Changed))
		for _, l := range d.Lines() {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	for _, n := range ch.New {
		fmt.Fprintf(w, "  node %s: new (%s has no catalog of it)\n", n, ch.Against)
	}
	for _, n := range ch.Gone {
		fmt.Fprintf(w, "  node %s: no longer compiled (only %s has its catalog)\n", n, ch.Against)
	}
}

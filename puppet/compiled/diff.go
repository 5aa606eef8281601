package compiled

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// Diff is what changes between two catalogs of one node, resource by
// resource. What has no effect on the node is left out, as
// octocatalog-diff leaves it out: classes themselves (what they declare is
// compared, not their parameters), tags, the manifest file and line a
// resource was declared at, exported resources, the ordering parameters
// before and require, and the order of notify and subscribe. Unlike
// octocatalog-diff, the tag metaparameter is left out too: like the tags
// Puppet adds, it only selects resources for puppet agent --tags.
type Diff struct {
	Node    string   `json:"node"`
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []Change `json:"changed"`
}

// Change is a resource in both catalogs whose parameters differ.
type Change struct {
	Resource   string        `json:"resource"`
	Parameters []ParamChange `json:"parameters"`
}

// ParamChange is one parameter's old and new value (nil: unset).
type ParamChange struct {
	Name string `json:"name"`
	Old  any    `json:"old"`
	New  any    `json:"new"`
}

// Empty says nothing changes.
func (d *Diff) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

// Compare diffs the catalog a node had (old) with the one it gets (new).
func Compare(old, new *Catalog) *Diff {
	d := &Diff{Node: new.Node, Added: []string{}, Removed: []string{}, Changed: []Change{}}
	a, b := effective(old), effective(new)
	for _, ref := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[ref]; !ok {
			d.Added = append(d.Added, ref)
		}
	}
	for _, ref := range slices.Sorted(maps.Keys(a)) {
		nb, ok := b[ref]
		if !ok {
			d.Removed = append(d.Removed, ref)
			continue
		}
		if ch := paramChanges(a[ref], nb); len(ch) > 0 {
			d.Changed = append(d.Changed, Change{Resource: ref, Parameters: ch})
		}
	}
	return d
}

// effective is each resource's parameters that have an effect, by the
// reference that names it on the node (a File by its path).
func effective(c *Catalog) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, r := range c.Resources {
		if r.Exported || r.Type == "Class" {
			continue
		}
		params := map[string]any{}
		for k, v := range r.Parameters {
			params[k] = v
		}
		title := r.Title
		if p, ok := params["path"].(string); ok && r.Type == "File" {
			title = p
			delete(params, "path")
		}
		delete(params, "before")
		delete(params, "require")
		delete(params, "tag")
		for _, k := range []string{"notify", "subscribe"} {
			params[k] = sortedAny(params[k])
			if params[k] == nil {
				delete(params, k)
			}
		}
		out[r.Type+"["+title+"]"] = params
	}
	return out
}

func sortedAny(v any) any {
	l, ok := v.([]any)
	if !ok {
		return v
	}
	out := append([]any{}, l...)
	sort.Slice(out, func(i, j int) bool { return render(out[i]) < render(out[j]) })
	return out
}

func paramChanges(a, b map[string]any) []ParamChange {
	names := map[string]bool{}
	for k := range a {
		names[k] = true
	}
	for k := range b {
		names[k] = true
	}
	var out []ParamChange
	for _, k := range slices.Sorted(maps.Keys(names)) {
		if !same(a[k], b[k]) {
			out = append(out, ParamChange{Name: k, Old: a[k], New: b[k]})
		}
	}
	return out
}

// same compares JSON values, numbers by value (1 and 1.0 are one).
func same(a, b any) bool {
	if na, ok := a.(json.Number); ok {
		if nb, ok := b.(json.Number); ok {
			fa, ea := na.Float64()
			fb, eb := nb.Float64()
			if ea == nil && eb == nil {
				return fa == fb
			}
			return na == nb
		}
	}
	return reflect.DeepEqual(a, b)
}

// Lines is the diff as people read it, one line each:
//
//   - File[/etc/golden-new]
//   - Package[telnet]
//     ~ Ini_setting[app] value: 'info' -> 'debug'
func (d *Diff) Lines() []string {
	var out []string
	for _, r := range d.Added {
		out = append(out, "+ "+r)
	}
	for _, r := range d.Removed {
		out = append(out, "- "+r)
	}
	for _, c := range d.Changed {
		for _, p := range c.Parameters {
			out = append(out, nested(c.Resource, p.Name, p.Old, p.New)...)
		}
	}
	return out
}

// nested is one changed value's lines: a hash in both catalogs shows each
// key that changed (config_files.list.ext), as octocatalog-diff does.
func nested(ref, name string, old, new any) []string {
	a, aok := old.(map[string]any)
	b, bok := new.(map[string]any)
	if !aok || !bok {
		return []string{fmt.Sprintf("~ %s %s: %s -> %s", ref, name, render(old), render(new))}
	}
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if !same(a[k], b[k]) {
			out = append(out, nested(ref, name+"."+k, a[k], b[k])...)
		}
	}
	return out
}

// render shows a value as Puppet code writes it: 'string', 42, true,
// [a, b], {k => v}, undef; long values are cut.
func render(v any) string {
	s := renderFull(v)
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func renderFull(v any) string {
	switch x := v.(type) {
	case nil:
		return "undef"
	case string:
		var b strings.Builder
		b.WriteByte('\'')
		for _, r := range x {
			switch {
			case r == '\\' || r == '\'':
				b.WriteByte('\\')
				b.WriteRune(r)
			case r == '\n':
				b.WriteString(`\n`)
			case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
				fmt.Fprintf(&b, `\u%04x`, r) // no terminal control from a catalog
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('\'')
		return b.String()
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = renderFull(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, renderFull(k)+" => "+renderFull(x[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

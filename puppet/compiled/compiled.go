// Package compiled reads the catalogs Puppet compiles (puppet catalog
// compile), writes them normalised (reproducible: no timestamps or UUIDs,
// resources and edges sorted) and diffs two of them by resource, as
// octocatalog-diff does.
package compiled

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Catalog is a node's compiled catalog, normalised.
type Catalog struct {
	Node        string     `json:"node"`
	Environment string     `json:"environment"`
	Classes     []string   `json:"classes"`
	Resources   []Resource `json:"resources"`
	Edges       []Edge     `json:"edges"`
}

// Resource is one resource of a catalog.
type Resource struct {
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Exported   bool           `json:"exported,omitempty"`
	File       string         `json:"file,omitempty"`
	Line       int            `json:"line,omitempty"`
	Tags       []string       `json:"tags,omitempty"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

// Ref is the resource's reference: Type[title].
func (r Resource) Ref() string { return r.Type + "[" + r.Title + "]" }

// Edge is a containment edge.
type Edge struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// MaxSize bounds a catalog read.
const MaxSize = 64 << 20

// ErrFormat marks bytes that are not a catalog.
var ErrFormat = errors.New("not a Puppet catalog")

// raw is what Puppet prints (catalog_format 1 and 2).
type raw struct {
	Name        string `json:"name"`
	Environment string `json:"environment"`
	Resources   []struct {
		Type       string         `json:"type"`
		Title      any            `json:"title"`
		Exported   bool           `json:"exported"`
		File       string         `json:"file"`
		Line       int            `json:"line"`
		Tags       []string       `json:"tags"`
		Parameters map[string]any `json:"parameters"`
		Sensitive  []string       `json:"sensitive_parameters"`
	} `json:"resources"`
	Edges []Edge `json:"edges"`
}

// FromPuppet reads what `puppet catalog compile` printed: Puppet's log
// lines (Notice: …) then the catalog's JSON. The catalog is normalised.
func FromPuppet(out []byte) (*Catalog, error) {
	i := bytes.Index(out, []byte("\n{"))
	switch {
	case bytes.HasPrefix(out, []byte("{")):
		i = 0
	case i < 0:
		return nil, fmt.Errorf("%w: no JSON object in Puppet's output", ErrFormat)
	default:
		i++
	}
	return Parse(out[i:])
}

// Parse reads a catalog: Puppet's JSON, or one this package wrote.
func Parse(b []byte) (*Catalog, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d MiB", ErrFormat, len(b), MaxSize>>20)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var r raw
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	var n Catalog
	if err := json.Unmarshal(b, &struct {
		Node *string `json:"node"`
	}{&n.Node}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if n.Node == "" {
		n.Node = r.Name
	}
	if n.Node == "" {
		return nil, fmt.Errorf("%w: it names no node", ErrFormat)
	}
	n.Environment = r.Environment
	seen := map[string]bool{}
	for i, x := range r.Resources {
		title, ok := x.Title.(string)
		if !ok {
			title = fmt.Sprint(x.Title)
		}
		if x.Type == "" {
			return nil, fmt.Errorf("%w: resource %d has no type", ErrFormat, i)
		}
		res := Resource{Type: x.Type, Title: title, Exported: x.Exported, File: x.File, Line: x.Line, Tags: sortedSet(x.Tags), Parameters: hideSensitive(x.Parameters, x.Sensitive)}
		if seen[res.Ref()] {
			return nil, fmt.Errorf("%w: %s is in it twice", ErrFormat, res.Ref())
		}
		seen[res.Ref()] = true
		if res.Type == "Class" {
			n.Classes = append(n.Classes, res.Title)
		}
		n.Resources = append(n.Resources, res)
	}
	n.Classes = sortedSet(n.Classes)
	if n.Classes == nil {
		n.Classes = []string{}
	}
	sort.Slice(n.Resources, func(i, j int) bool {
		a, b := n.Resources[i], n.Resources[j]
		return a.Type < b.Type || a.Type == b.Type && a.Title < b.Title
	})
	if n.Resources == nil {
		n.Resources = []Resource{}
	}
	n.Edges = append([]Edge{}, r.Edges...)
	sort.Slice(n.Edges, func(i, j int) bool {
		a, b := n.Edges[i], n.Edges[j]
		return a.Source < b.Source || a.Source == b.Source && a.Target < b.Target
	})
	return &n, nil
}

// Marshal is c's normalised JSON: the same catalog gives the same bytes.
func (c *Catalog) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// hideSensitive replaces the values of Sensitive parameters with their
// digest: a stored catalog (published with the release) shows that such a
// value changed, never the value.
func hideSensitive(params map[string]any, names []string) map[string]any {
	for _, n := range names {
		v, ok := params[n]
		if !ok {
			continue
		}
		b, _ := json.Marshal(v)
		sum := sha256.Sum256(b)
		params[n] = "Sensitive [sha256 " + hex.EncodeToString(sum[:]) + "]"
	}
	return params
}

func sortedSet(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// FileName is the release file a node's catalog is kept in.
func FileName(node string) string { return "catalog-" + node + ".json" }

// IsFileName says whether name is a catalog's release file.
func IsFileName(name string) bool {
	return strings.HasPrefix(name, "catalog-") && strings.HasSuffix(name, ".json")
}

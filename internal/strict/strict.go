// Package strict decodes TOML documents in which every key must be known:
// a typo in a lock, manifest, catalog or imagebake.toml is an error, not a
// silently ignored setting.
package strict

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// DecodeTOML decodes b into v and fails on syntax errors and unknown keys.
func DecodeTOML(b []byte, v any) error {
	md, err := toml.Decode(string(b), v)
	if err != nil {
		return err
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("unknown keys %s", strings.Join(keys, ", "))
	}
	// The TOML library matches keys to fields ignoring case, so `Family`
	// would set family, and `family` and `Family` would both be taken.
	// Keys are case-sensitive here: each must be a field's exact name.
	var bad []string
	for _, k := range md.Keys() {
		if msg := exactKey(reflect.TypeOf(v), k); msg != "" {
			bad = append(bad, msg)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("keys are case-sensitive: %s", strings.Join(bad, "; "))
	}
	return nil
}

// exactKey follows key through t's toml tags and returns a message when a
// part matches a field only when case is ignored.
func exactKey(t reflect.Type, key toml.Key) string {
	for i, part := range key {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Map:
			t = t.Elem()
			continue
		case reflect.Struct:
		default:
			return ""
		}
		fs := fieldsOf(t)
		if ft, ok := fs.exact[part]; ok {
			t = ft
			continue
		}
		if name, ok := fs.folded[strings.ToLower(part)]; ok {
			return fmt.Sprintf("%s is not a key; did you mean %s?", key[:i+1].String(), append(toml.Key{}, append(key[:i:i], name)...).String())
		}
		return ""
	}
	return ""
}

// fields are a struct type's TOML keys: each with its field's type, and
// by lower case (what the TOML library would match ignoring case).
type fields struct {
	exact  map[string]reflect.Type
	folded map[string]string
}

// fieldCache holds the fields of each struct type seen: a manifest has
// thousands of keys, each walked from the top.
var fieldCache sync.Map // reflect.Type -> *fields

func fieldsOf(t reflect.Type) *fields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*fields)
	}
	fs := &fields{exact: map[string]reflect.Type{}, folded: map[string]string{}}
	for j := 0; j < t.NumField(); j++ {
		f := t.Field(j)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := fs.exact[name]; !dup {
			fs.exact[name] = f.Type
		}
		fs.folded[strings.ToLower(name)] = name
	}
	fieldCache.Store(t, fs)
	return fs
}

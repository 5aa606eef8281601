// Package strict decodes TOML documents in which every key must be known:
// a typo in a lock, manifest, catalog or imagebake.toml is an error, not a
// silently ignored setting.
package strict

import (
	"fmt"
	"strings"

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
	return nil
}

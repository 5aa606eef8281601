package gate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/sandbox"
	"github.com/imagebake/imagebake/manifests/manifest"
)

// MaxFacts bounds a fact set's size.
const MaxFacts = 16 << 20

// ReadFactSet reads a fact set: what `facter --yaml` or `facter --json`
// prints on a node (a mapping of fact names to values), or the
// {name, values} form Puppet and onceover keep facts in.
func ReadFactSet(name string) (map[string]any, string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, "", fmt.Errorf("fact set: %w", err)
	}
	if len(b) > MaxFacts {
		return nil, "", fmt.Errorf("%w: fact set %s: %d bytes, more than %d MiB", failure.ErrUsage, name, len(b), MaxFacts>>20)
	}
	facts, err := parseFactSet(b)
	if err != nil {
		return nil, "", fmt.Errorf("%w: fact set %s %v", failure.ErrUsage, name, err)
	}
	sum := sha256.Sum256(b)
	return facts, "sha256:" + hex.EncodeToString(sum[:]), nil
}

// parseFactSet parses a fact set's bytes (see ReadFactSet).
func parseFactSet(b []byte) (map[string]any, error) {
	// Puppet's own fact files carry a Ruby tag on the document
	b = bytes.Replace(b, []byte("!ruby/object:Puppet::Node::Facts"), nil, 1)
	var raw any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("is not YAML or JSON: %v", err)
	}
	m, ok := raw.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, fmt.Errorf("is not a mapping of fact names to values (what facter --yaml prints)")
	}
	if v, ok := m["values"].(map[string]any); ok {
		if _, named := m["name"]; named {
			m = v
		}
	}
	norm, err := jsonValue(m, 0)
	if err != nil {
		return nil, err
	}
	return norm.(map[string]any), nil
}

// jsonValue is v as JSON holds it (YAML's non-string keys and times are
// refused or written as strings).
func jsonValue(v any, depth int) (any, error) {
	if depth > 64 {
		return nil, errors.New("nests deeper than 64 levels")
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			j, err := jsonValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = j
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			j, err := jsonValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
		return out, nil
	case nil, string, bool, int, int64, uint64, float64:
		return x, nil
	}
	return fmt.Sprint(v), nil
}

// hostFacts are facts Facter reads from the machine it runs on, not from
// the image: the gate leaves them out of a base's facts, so that a
// catalog does not depend on the machine that baked it.
var hostFacts = []string{"memory", "memoryfree", "memorysize", "processors", "processorcount", "physicalprocessorcount",
	"system_uptime", "uptime", "uptime_days", "uptime_hours", "uptime_seconds", "load_averages", "disks", "partitions",
	"mountpoints", "filesystems", "dmi", "hypervisors", "is_virtual", "virtual", "kernelrelease", "kernelversion",
	"kernelmajversion", "networking", "interfaces", "ipaddress", "ipaddress6", "macaddress", "netmask", "network",
	"mtu_lo", "hostname", "fqdn", "domain", "timezone", "identity", "blockdevices", "blockdevice_sda_size", "ssh",
	"sshfp_rsa", "sshdsakey", "serialnumber", "uuid", "facterversion", "path", "env_windows_installdir", "ec2_metadata", "gce", "cloud"}

// BaseFacts are the base's own facts: Facter run once in the sandbox on
// the base (no module code: only the base's own facts), what describes
// the machine left out; cached in cacheDir (facts.json) when it is set.
func BaseFacts(ctx context.Context, im *manifest.Image, lower []string, cacheDir string) (map[string]any, error) {
	cached := filepath.Join(cacheDir, "facts.json")
	if cacheDir != "" {
		if b, err := os.ReadFile(cached); err == nil {
			var f map[string]any
			if json.Unmarshal(b, &f) == nil && len(f) > 0 {
				return f, nil
			}
		}
	}
	facter := path.Join(path.Dir(im.Puppet.Program()), "facter")
	var out capped
	out.max = MaxFacts
	res, err := sandbox.Run(ctx, sandbox.Spec{
		Lower:    lower,
		Writable: []string{"/tmp", "/run", "/var/tmp"},
		Args:     []string{facter, "--json"},
		Env:      []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"},
		Stdout:   &out,
	})
	var ee *sandbox.ExitError
	if err != nil && !errors.As(err, &ee) { // Facter exits 1 for what a sandbox lacks (/sys), facts printed
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("running %s on the base of %s: %w: %s", facter, im.Name, err, lastLines(string(res.Output), 5))
	}
	var f map[string]any
	if err := json.Unmarshal(out.buf.Bytes(), &f); err != nil || len(f) == 0 {
		return nil, fmt.Errorf("%s on the base of %s printed no facts (%v): %s", facter, im.Name, err, lastLines(string(res.Output), 5))
	}
	for _, k := range hostFacts {
		delete(f, k)
	}
	for k := range f {
		// legacy per-interface facts (ipaddress_eth0, ...)
		if strings.Contains(k, "_") && (strings.HasPrefix(k, "ipaddress") || strings.HasPrefix(k, "macaddress") || strings.HasPrefix(k, "netmask") || strings.HasPrefix(k, "network") || strings.HasPrefix(k, "mtu")) {
			delete(f, k)
		}
	}
	if cacheDir != "" {
		b, _ := json.Marshal(f)
		if err := atomicfile.WriteFile(cached, b, 0o644); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// NodeFacts are the facts a node is compiled with: its fact set (or the
// base's facts, with the node's name as its host name), the --facts
// overrides, and clientcert.
func NodeFacts(node string, set, base map[string]any, overrides map[string]string) map[string]any {
	f := map[string]any{}
	src := set
	if src == nil {
		src = base
	}
	for k, v := range src {
		f[k] = v
	}
	if set == nil {
		host, domain, _ := strings.Cut(node, ".")
		f["hostname"], f["fqdn"] = host, node
		f["networking"] = map[string]any{"hostname": host, "fqdn": node, "domain": domain}
		if domain != "" {
			f["domain"] = domain
		}
	}
	for k, v := range overrides {
		f[k] = v
	}
	f["clientcert"] = node
	return f
}

// WriteFactsYAML writes facts where Puppet's yaml facts terminus reads
// a node's: DIR/facts/NODE.yaml, as a Puppet::Node::Facts.
func WriteFactsYAML(dir, node string, facts map[string]any) error {
	b, err := json.Marshal(facts) // JSON is YAML
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "--- !ruby/object:Puppet::Node::Facts\nname: %q\nvalues: %s\n", node, b)
	if err := os.MkdirAll(filepath.Join(dir, "facts"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "facts", node+".yaml"), buf.Bytes(), 0o644)
}

// FactArch is the Go arch a fact set's node runs on ("" when it does
// not say).
func FactArch(f map[string]any) string {
	a, _ := f["architecture"].(string)
	if os, ok := f["os"].(map[string]any); ok {
		if x, ok := os["architecture"].(string); ok {
			a = x
		}
	}
	switch a {
	case "x86_64", "amd64", "x64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "ppc64le", "s390x", "riscv64":
		return a
	case "i386", "i686", "x86":
		return "386"
	}
	return ""
}

// capped keeps what is written up to max bytes; past that, writes fail.
type capped struct {
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.max {
		return 0, fmt.Errorf("more than %d MiB of output", c.max>>20)
	}
	return c.buf.Write(p)
}

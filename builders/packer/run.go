// Package packer drives Packer for `imagebake bake --builder packer`: it
// renders an embedded template, installs imagebake's Packer plugin (the
// packer-plugin-imagebake binary, package builders/packer/plugin) and runs
// packer. It does not link the Packer SDK, so imagebake stays lean.
package packer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/imagebake/imagebake/internal/atomicfile"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/templates"
)

// PluginVersion is the version packer-plugin-imagebake reports to Packer.
const PluginVersion = "0.1.0"

// FindPlugin returns the packer-plugin-imagebake binary: beside the
// running imagebake, or on PATH.
func FindPlugin() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "packer-plugin-imagebake")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("packer-plugin-imagebake")
	if err != nil {
		return "", fmt.Errorf("no packer-plugin-imagebake beside imagebake or on PATH (make build makes bin/packer-plugin-imagebake): %w", failure.ErrNotFound)
	}
	return p, nil
}

// InstallPlugin copies the plugin binary self into dir in Packer's versioned
// plugin layout, with its _SHA256SUM file, and returns its path.
func InstallPlugin(self, dir string) (string, error) {
	name := fmt.Sprintf("packer-plugin-imagebake_v%s_x5.0_%s_%s", PluginVersion, runtime.GOOS, runtime.GOARCH)
	dst := filepath.Join(dir, "github.com", "imagebake", "imagebake", name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	in, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer in.Close()
	h := sha256.New()
	if err := atomicfile.Write(dst, 0o755, func(w io.Writer) error {
		_, err := io.Copy(io.MultiWriter(w, h), in)
		return err
	}); err != nil {
		return "", err
	}
	return dst, atomicfile.WriteFile(dst+"_SHA256SUM", []byte(hex.EncodeToString(h.Sum(nil))), 0o644)
}

// RunOptions say how to run one template.
type RunOptions struct {
	Packer   string            // the packer binary
	Template string            // an embedded template's name
	Plugin   string            // the packer-plugin-imagebake binary
	WorkDir  string            // where the template, var file and plugins go
	Vars     map[string]string // template variables
	Stdout   io.Writer
}

// Run renders the template and runs `packer build` on it. Packer's
// network check-in is disabled.
func Run(ctx context.Context, o RunOptions) error {
	tmpl, err := templates.Get(o.Template)
	if err != nil {
		return err
	}
	if o.Packer == "" {
		if o.Packer, err = exec.LookPath("packer"); err != nil {
			return fmt.Errorf("no packer on PATH: install packer 1.9.4 or name it with --packer: %w", failure.ErrNotFound)
		}
	}
	// absolute, so that no path given to packer can read as an option
	wd, err := filepath.Abs(o.WorkDir)
	if err != nil {
		return err
	}
	o.WorkDir = wd
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return err
	}
	plugins := filepath.Join(o.WorkDir, "plugins")
	if _, err := InstallPlugin(o.Plugin, plugins); err != nil {
		return err
	}
	tf := filepath.Join(o.WorkDir, o.Template+".pkr.hcl")
	if err := os.WriteFile(tf, tmpl, 0o644); err != nil {
		return err
	}
	vars, err := json.MarshalIndent(o.Vars, "", "  ")
	if err != nil {
		return err
	}
	vf := filepath.Join(o.WorkDir, "imagebake.pkrvars.json")
	if err := os.WriteFile(vf, vars, 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, o.Packer, "build", "-color=false", "-var-file="+vf, tf)
	cmd.Dir = o.WorkDir
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "PACKER_PLUGIN_PATH="+plugins)
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("packer build of template %s (in %s): %w", o.Template, o.WorkDir, err)
	}
	return nil
}

// Command modproxy writes a one-module Go proxy directory (the GOPROXY
// file:// layout) holding the main module at HEAD of the git work tree, so
// scripts/check-go-install can run `go install MODULE/cmd/imagebake@VERSION`
// exactly as a user does, refusals (replace or exclude directives) included.
//
//	go run ./internal/tools/modproxy REPO VERSION OUTDIR
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: modproxy REPO VERSION OUTDIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "modproxy:", err)
		os.Exit(1)
	}
}

func run(repo, version, out string) error {
	// go.mod as committed, like the zip
	gomod, err := exec.Command("git", "-C", repo, "show", "HEAD:go.mod").Output()
	if err != nil {
		return fmt.Errorf("reading go.mod at HEAD of %s: %w", repo, err)
	}
	path := modfile.ModulePath(gomod)
	if path == "" {
		return fmt.Errorf("no module line in go.mod at HEAD of %s", repo)
	}
	m := module.Version{Path: path, Version: version}
	if err := module.Check(m.Path, m.Version); err != nil {
		return err
	}
	esc, err := module.EscapePath(path)
	if err != nil {
		return err
	}
	dir := filepath.Join(out, filepath.FromSlash(esc), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	z, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		return err
	}
	// the committed tree, as a tag would publish it (nested modules and
	// ignored files such as .cache/ are left out)
	if err := zip.CreateFromVCS(z, m, repo, "HEAD", ""); err != nil {
		z.Close()
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	info := fmt.Sprintf(`{"Version":%q,"Time":%q}`+"\n", version, time.Unix(0, 0).UTC().Format(time.RFC3339))
	for name, b := range map[string][]byte{
		version + ".mod":  gomod,
		version + ".info": []byte(info),
		"list":            []byte(version + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

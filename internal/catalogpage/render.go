package catalogpage

import (
	"bytes"
	_ "embed"
	"html/template"
	"os"
	"path/filepath"

	"github.com/imagebake/imagebake/internal/atomicfile"
)

//go:embed page.html.tmpl
var pageText string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{"join": joinOr}).Parse(pageText))

// Render returns the page's HTML.
func (p *Page) Render() ([]byte, error) {
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write renders the page into dir/index.html (dir made if need be), whole
// or not at all.
func (p *Page) Write(dir string) (string, error) {
	b, err := p.Render()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := filepath.Join(dir, FileName)
	return name, atomicfile.WriteFile(name, b, 0o644)
}

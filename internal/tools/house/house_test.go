// Package house keeps the code's shape: no function of the project (tests
// and generated code aside) over 80 lines or cyclomatic complexity 25;
// every goroutine reports its panic as a bug (failure.Crash); the
// environment is read in the settings files only.
package house

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagebake/imagebake/internal/testutil"
)

const maxLines, maxComplexity = 80, 25

func TestFunctionsStaySmall(t *testing.T) {
	seen := 0
	eachFile(t, func(rel string, fset *token.FileSet, f *ast.File) {
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			seen++
			lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
			if c := complexity(fd.Body); lines > maxLines || c > maxComplexity {
				t.Errorf("%s %s: %d lines, cyclomatic complexity %d (limits %d and %d): split it", rel, fd.Name.Name, lines, c, maxLines, maxComplexity)
			}
		}
	})
	if seen < 500 {
		t.Fatalf("read only %d functions: the walk missed the tree", seen)
	}
}

// Every goroutine the program starts (go func, errgroup's and WaitGroup's
// Go) defers failure.Crash first, so that its panic is exit 5 and a bug
// report, not Go's exit 2 (the usage-error code).
func TestGoroutinesReportPanics(t *testing.T) {
	seen := 0
	eachFile(t, func(rel string, fset *token.FileSet, f *ast.File) {
		if strings.HasPrefix(rel, "bench/") || strings.HasPrefix(rel, "internal/tools/") {
			return
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var lit *ast.FuncLit
			switch n := n.(type) {
			case *ast.GoStmt:
				lit, _ = n.Call.Fun.(*ast.FuncLit)
				if lit == nil {
					t.Errorf("%s: go %s: start goroutines as func literals that defer failure.Crash", fset.Position(n.Pos()), types(n.Call.Fun))
					return true
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "Go" || len(n.Args) != 1 {
					return true
				}
				if lit, _ = n.Args[0].(*ast.FuncLit); lit == nil {
					return true
				}
			default:
				return true
			}
			seen++
			if !defersCrash(lit) {
				t.Errorf("%s: a goroutine without `defer failure.Crash()` first: its panic would exit 2 with no bug report", fset.Position(lit.Pos()))
			}
			return true
		})
	})
	if seen < 15 {
		t.Fatalf("found only %d goroutines: the walk missed the tree", seen)
	}
}

func types(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return "…"
}

func defersCrash(lit *ast.FuncLit) bool {
	if len(lit.Body.List) == 0 {
		return false
	}
	d, ok := lit.Body.List[0].(*ast.DeferStmt)
	if !ok {
		return false
	}
	sel, ok := d.Call.Fun.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Crash" && fmt.Sprint(sel.X) == "failure"
}

// The environment is read in the settings files only (the command's and
// the Packer plugin's), where each variable is named beside its flag;
// test helpers and the build tools aside.
func TestEnvironmentReadInOnePlace(t *testing.T) {
	allowed := map[string]bool{"cmd/imagebake/settings.go": true, "builders/packer/plugin/settings.go": true}
	eachFile(t, func(rel string, fset *token.FileSet, f *ast.File) {
		if allowed[rel] || strings.HasPrefix(rel, "internal/testutil/") || strings.HasPrefix(rel, "internal/tools/") || strings.HasPrefix(rel, "bench/") {
			return
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || fmt.Sprint(sel.X) != "os" {
				return true
			}
			switch sel.Sel.Name {
			case "Getenv", "LookupEnv": // os.Environ hands the environment on to a child, unread
				if !pathForMessage(fset, f, sel) {
					t.Errorf("%s: os.%s outside the settings files: read the setting in cmd/imagebake/settings.go and pass it in", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	})
}

// pathForMessage allows os.Getenv("PATH") where the sandbox names the PATH
// it searched in an error message.
func pathForMessage(fset *token.FileSet, f *ast.File, sel *ast.SelectorExpr) bool {
	return strings.HasSuffix(fset.Position(f.Pos()).Filename, "internal/sandbox/run_linux.go") && sel.Sel.Name == "Getenv"
}

// eachFile parses every Go file of the project (tests, generated code and
// testdata aside) and hands it to fn with its path from the module root.
func eachFile(t *testing.T, fn func(rel string, fset *token.FileSet, f *ast.File)) {
	t.Helper()
	root := testutil.ModuleRoot(t)
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.HasSuffix(p, ".hcl2spec.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fn(filepath.ToSlash(rel), fset, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// complexity is 1 plus each branch: if, for, range, case, &&, ||.
func complexity(body *ast.BlockStmt) int {
	c := 1
	ast.Inspect(body, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.IfStmt, *ast.ForStmt, *ast.RangeStmt, *ast.CaseClause, *ast.CommClause:
			c++
		case *ast.BinaryExpr:
			if x.Op == token.LAND || x.Op == token.LOR {
				c++
			}
		}
		return true
	})
	return c
}

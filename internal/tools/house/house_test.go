// Package house keeps the code's shape: no function of the project (tests
// and generated code aside) over 80 lines or cyclomatic complexity 25.
package house

import (
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
	root := testutil.ModuleRoot(t)
	fset := token.NewFileSet()
	seen := 0
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
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			seen++
			lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
			if c := complexity(fd.Body); lines > maxLines || c > maxComplexity {
				rel, _ := filepath.Rel(root, p)
				t.Errorf("%s %s: %d lines, cyclomatic complexity %d (limits %d and %d): split it", rel, fd.Name.Name, lines, c, maxLines, maxComplexity)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 500 {
		t.Fatalf("read only %d functions: the walk missed the tree", seen)
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

package assembly_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// source is one parsed non-test Go file of the module, by its path from the module's root.
type source struct {
	path string
	file *ast.File
}

// sources parses every non-test Go file of the module.
func sources(t *testing.T) []source {
	t.Helper()
	root := ".."
	fset := token.NewFileSet()
	var out []source
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		out = append(out, source{path: filepath.ToSlash(rel), file: f})
		return nil
	})
	if err != nil {
		t.Fatalf("read the module's sources: %v", err)
	}
	if len(out) < 50 {
		t.Fatalf("found %d Go files: the walk did not start at the module's root", len(out))
	}
	return out
}

// literalType names the type of a composite literal as "pkg.Type" (or the package's own
// "Type" as dir.Type), "" for any other expression.
func literalType(pkgDir string, e ast.Expr) string {
	switch x := e.(type) {
	case *ast.SelectorExpr:
		if id, ok := x.X.(*ast.Ident); ok {
			return id.Name + "." + x.Sel.Name
		}
	case *ast.Ident:
		return filepath.Base(pkgDir) + "." + x.Name
	}
	return ""
}

// Outside tests, the engine, the HTTP server, the orchestrator and the workers are each built in
// exactly one file: the assembly's. A second place that builds one is a second wiring.
func TestPartsAreBuiltInOnePlace(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"engine.Engine":          "assembly/assembly.go",
		"producers.Server":       "assembly/assembly.go",
		"producers.Intake":       "assembly/assembly.go",
		"consumers.Orchestrator": "assembly/assembly.go",
		"consumers.Worker":       "assembly/assembly.go",
		"consumers.Sweeper":      "assembly/assembly.go",
		"consumers.Launcher":     "assembly/routes.go",
		"consumers.DeadLetters":  "assembly/routes.go",
		"http.Server":            "assembly/serve.go",
	}
	found := map[string][]string{}
	for _, s := range sources(t) {
		ast.Inspect(s.file, func(n ast.Node) bool {
			if lit, ok := n.(*ast.CompositeLit); ok {
				name := literalType(filepath.Dir(s.path), lit.Type)
				if _, ok := want[name]; ok && !slices.Contains(found[name], s.path) {
					found[name] = append(found[name], s.path)
				}
			}
			return true
		})
	}
	for name, file := range want {
		if got := found[name]; len(got) != 1 || got[0] != file {
			t.Errorf("%s is built in %v; want only in %s", name, got, file)
		}
	}
}

// No file outside engine/ and the store adapters writes to the store: every move of a run goes
// through the engine. And only consumers.Loop (and the queue adapters themselves) receives from
// a queue: there is one consumer loop.
func TestOneOwnerPerKindOfChange(t *testing.T) {
	t.Parallel()
	writes := []string{"CreateRun", "UpdateOrder", "UpdateRun", "AppendEvents"}
	for _, s := range sources(t) {
		owner := strings.HasPrefix(s.path, "engine/") || strings.HasPrefix(s.path, "store/")
		loop := s.path == "consumers/loop.go" || strings.HasPrefix(s.path, "queues/")
		ast.Inspect(s.file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			// A store write: x.Store.Write(...) or st.Write(...) on a store.
			if inner, ok := sel.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "Store" && slices.Contains(writes, sel.Sel.Name) && !owner {
				t.Errorf("%s calls Store.%s: store writes belong in engine/", s.path, sel.Sel.Name)
			}
			if sel.Sel.Name == "Receive" && len(call.Args) == 2 && !loop && mentionsReceiveOptions(call.Args[1]) {
				t.Errorf("%s receives from a queue: only consumers.Loop consumes queues", s.path)
			}
			return true
		})
	}
}

func mentionsReceiveOptions(e ast.Expr) bool {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return false
	}
	sel, ok := lit.Type.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "ReceiveOptions"
}

// Command layers checks that the files of a package reference each other one
// way: each file uses only what files below it in a declared order define.
// A reader who starts at the top meets every name before it is explained
// below, and never has to climb back up. make verify runs it on pkg/gang.
//
//	go run ./hack/layers            check the packages in orders
//	go run ./hack/layers -graph DIR print every reference between DIR's files
//
// References are resolved by the type checker: a use of a function, method,
// type, constant, package variable or struct field counts for the file that
// declares it. Test files are not checked.
package main

import (
	"flag"
	"fmt"
	"go/types"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/tools/go/packages"
)

// orders lists, per package, its files from top to bottom.
var orders = map[string][]string{
	"./pkg/gang": {
		// How the plugin is built and what runs beside it.
		"wiring.go", "status.go",
		// The informers' events, then one pod's path through the extension
		// points, from PreEnqueue to Permit.
		"handlers.go", "guard.go",
		"enqueue.go", "queuesort.go", "prefilter.go", "filter.go", "postfilter.go", "preempt.go",
		"reserve.go", "permit.go",
		// What the extension points share: releasing, rejecting and
		// forgetting a group; planning it; the plugin's cache readers.
		"release.go", "reject.go", "plan.go", "gang.go",
		// The group memory: one lock, the phases, the members.
		"tracker.go", "state.go", "members.go",
		"metrics.go",
	},
}

// reference is one use, in file from, of a name declared in file to.
type reference struct {
	from, to string
	names    []string
}

func main() {
	graph := flag.String("graph", "", "print the references between the files of this package directory and exit")
	flag.Parse()
	if *graph != "" {
		refs, err := references(*graph)
		if err != nil {
			fail(err)
		}
		for _, r := range refs {
			fmt.Printf("%s -> %s %v\n", r.from, r.to, r.names)
		}
		return
	}
	bad := false
	dirs := make([]string, 0, len(orders))
	for dir := range orders {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		problems, err := check(dir, orders[dir])
		if err != nil {
			fail(err)
		}
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "%s: %s\n", dir, p)
			bad = true
		}
	}
	if bad {
		fmt.Fprintln(os.Stderr, "files must reference only files below them in hack/layers' order (move the name down, or the file up)")
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "layers:", err)
	os.Exit(1)
}

// check returns every reference in dir that points up the order, and every
// file of the package the order does not place.
func check(dir string, order []string) ([]string, error) {
	refs, files, err := load(dir)
	if err != nil {
		return nil, err
	}
	rank := map[string]int{}
	for i, f := range order {
		rank[f] = i
	}
	var problems []string
	for _, f := range files {
		if _, ok := rank[f]; !ok {
			problems = append(problems, fmt.Sprintf("%s is not in the order", f))
		}
	}
	for _, f := range order {
		if !slices.Contains(files, f) {
			problems = append(problems, fmt.Sprintf("%s is in the order but not in the package", f))
		}
	}
	for _, r := range refs {
		from, okFrom := rank[r.from]
		to, okTo := rank[r.to]
		if okFrom && okTo && to < from {
			problems = append(problems, fmt.Sprintf("%s uses %s from %s, above it", r.from, strings.Join(r.names, ", "), r.to))
		}
	}
	return problems, nil
}

func references(dir string) ([]reference, error) {
	refs, _, err := load(dir)
	return refs, err
}

// load type-checks the package in dir and returns the references between
// its non-test files, sorted, and those files' names.
func load(dir string) ([]reference, []string, error) {
	cfg := &packages.Config{
		Mode:       packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo,
		BuildFlags: []string{"-trimpath"}, // the build cache make's targets fill
	}
	pkgs, err := packages.Load(cfg, dir)
	if err != nil {
		return nil, nil, err
	}
	if len(pkgs) != 1 {
		return nil, nil, fmt.Errorf("%s: want one package, got %d", dir, len(pkgs))
	}
	p := pkgs[0]
	if len(p.Errors) > 0 {
		return nil, nil, fmt.Errorf("%s: %v", dir, p.Errors[0])
	}
	var files []string
	for _, f := range p.GoFiles {
		files = append(files, filepath.Base(f))
	}
	names := map[[2]string]map[string]bool{}
	for id, obj := range p.TypesInfo.Uses {
		if obj.Pkg() != p.Types || local(obj, p.Types) {
			continue
		}
		from := filepath.Base(p.Fset.Position(id.Pos()).Filename)
		to := filepath.Base(p.Fset.Position(obj.Pos()).Filename)
		if from == to || strings.HasSuffix(from, "_test.go") {
			continue
		}
		edge := [2]string{from, to}
		if names[edge] == nil {
			names[edge] = map[string]bool{}
		}
		names[edge][obj.Name()] = true
	}
	var refs []reference
	for edge, set := range names {
		r := reference{from: edge[0], to: edge[1]}
		for n := range set {
			r.names = append(r.names, n)
		}
		sort.Strings(r.names)
		refs = append(refs, r)
	}
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].from != refs[j].from {
			return refs[i].from < refs[j].from
		}
		return refs[i].to < refs[j].to
	})
	return refs, files, nil
}

// local: obj is a function's variable or parameter, which no other file can
// name (its declaring file is the one using it).
func local(obj types.Object, pkg *types.Package) bool {
	v, ok := obj.(*types.Var)
	return ok && !v.IsField() && v.Parent() != pkg.Scope()
}

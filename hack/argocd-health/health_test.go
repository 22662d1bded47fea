// Runs the Argo CD health checks in resource_customizations/ with gopher-lua, the Lua 5.1 interpreter Argo CD
// embeds: every <group>/<Kind>/health_test.yaml lists test objects (inputPath) and the health status and message
// that <group>/<Kind>/health.lua must return for them, in the format Argo CD's own resource_customizations use.
//
//	cd hack/argocd-health && GOFLAGS=-mod=mod go test ./...
//
// MODELHUB_HEALTH_OBJECTS=<dir> additionally runs every check on each <dir>/<Kind>/*.json object (objects
// captured from a live cluster by the e2e tests) and requires a valid status.
package argocdhealth

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

const customizations = "../../resource_customizations"

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type testCase struct {
	HealthStatus healthStatus `json:"healthStatus"`
	InputPath    string       `json:"inputPath"`
}

type testFile struct {
	Tests []testCase `json:"tests"`
}

// The statuses Argo CD knows (gitops-engine health.HealthStatusCode).
var validStatus = map[string]bool{"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true,
	"Missing": true, "Unknown": true}

// toLua turns a decoded JSON value into the Lua value a health script sees as `obj`.
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []any:
		t := L.NewTable()
		for _, item := range x {
			t.Append(toLua(L, item))
		}
		return t
	case map[string]any:
		t := L.NewTable()
		for k, item := range x {
			t.RawSetString(k, toLua(L, item))
		}
		return t
	default:
		panic(fmt.Sprintf("unexpected JSON value %T", v))
	}
}

// runHealth evaluates script with obj bound to the object and returns the table it returns.
func runHealth(script string, object map[string]any) (healthStatus, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	// The libraries Argo CD opens for health scripts (no io, os or package).
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath}} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.fn), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, err
		}
	}
	L.SetGlobal("obj", toLua(L, object))
	if err := L.DoString(script); err != nil {
		return healthStatus{}, err
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("health.lua returned %s, not a table", L.Get(-1).Type())
	}
	out := healthStatus{}
	if s, ok := ret.RawGetString("status").(lua.LString); ok {
		out.Status = string(s)
	}
	if m, ok := ret.RawGetString("message").(lua.LString); ok {
		out.Message = string(m)
	}
	if !validStatus[out.Status] {
		return out, fmt.Errorf("health.lua returned status %q", out.Status)
	}
	return out, nil
}

func readObject(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func kindDirs(t *testing.T) []string {
	dirs, err := filepath.Glob(filepath.Join(customizations, "*", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no resource customizations under %s (%v)", customizations, err)
	}
	sort.Strings(dirs)
	return dirs
}

func TestHealthChecks(t *testing.T) {
	for _, dir := range kindDirs(t) {
		script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		var tests testFile
		if err := yaml.UnmarshalStrict(raw, &tests); err != nil {
			t.Fatalf("%s/health_test.yaml: %v", dir, err)
		}
		if len(tests.Tests) == 0 {
			t.Fatalf("%s/health_test.yaml lists no tests", dir)
		}
		listed := map[string]bool{}
		for _, tc := range tests.Tests {
			tc := tc
			listed[filepath.Clean(tc.InputPath)] = true
			t.Run(filepath.Base(dir)+"/"+filepath.Base(tc.InputPath), func(t *testing.T) {
				obj, err := readObject(filepath.Join(dir, tc.InputPath))
				if err != nil {
					t.Fatal(err)
				}
				got, err := runHealth(string(script), obj)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.HealthStatus {
					t.Errorf("got  %s: %q\nwant %s: %q", got.Status, got.Message, tc.HealthStatus.Status, tc.HealthStatus.Message)
				}
			})
		}
		// every test object is used by a test
		files, _ := filepath.Glob(filepath.Join(dir, "testdata", "*.yaml"))
		for _, f := range files {
			rel, _ := filepath.Rel(dir, f)
			if !listed[rel] {
				t.Errorf("%s is not listed in %s/health_test.yaml", rel, dir)
			}
		}
	}
}

// TestLiveObjects runs the checks on objects captured from a real cluster (see the package comment).
func TestLiveObjects(t *testing.T) {
	root := os.Getenv("MODELHUB_HEALTH_OBJECTS")
	if root == "" {
		t.Skip("MODELHUB_HEALTH_OBJECTS not set")
	}
	for _, dir := range kindDirs(t) {
		kind := filepath.Base(dir)
		script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
		if err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(root, kind, "*.json"))
		for _, f := range files {
			obj, err := readObject(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := runHealth(string(script), obj)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			// the expected status is the file name's prefix: <status>_<anything>.json
			want := ""
			base := filepath.Base(f)
			for _, s := range []string{"Healthy", "Progressing", "Degraded"} {
				if len(base) > len(s) && base[:len(s)] == s {
					want = s
				}
			}
			if want != "" && got.Status != want {
				t.Errorf("%s: got %s (%q), want %s", f, got.Status, got.Message, want)
			}
			fmt.Printf("%s/%s: %s: %s\n", kind, base, got.Status, got.Message)
		}
	}
}

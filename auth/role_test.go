package auth_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/pxperf/pxperf/auth"
)

// performanceServiceRoles is the role each PerformanceService RPC needs:
// the table the package documentation promises.
func performanceServiceRoles() map[string]auth.Role {
	return map[string]auth.Role{
		"Publish":       auth.RolePublish,
		"PublishStream": auth.RolePublish,
		"Subscribe":     auth.RoleView,
		"ListEntries":   auth.RoleView,
		"GetEntry":      auth.RoleView,
		"GetStats":      auth.RoleView,
		"WatchStats":    auth.RoleView,
		"GetConfig":     auth.RoleView,
		"ListResources": auth.RoleView,
		"ListLogFiles":  auth.RoleView,
		"ReadArchive":   auth.RoleView,
		"UpdateConfig":  auth.RoleAdmin,
		"Optimize":      auth.RoleAdmin,
		"CloseResource": auth.RoleAdmin,
	}
}

func TestRequiredRole(t *testing.T) {
	type want struct {
		role auth.Role
		need bool
	}
	tests := map[string]want{
		"/grpc.health.v1.Health/Check":                                   {0, false},
		"/grpc.health.v1.Health/Watch":                                   {0, false},
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {0, false},
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {0, false},
		"/pxperf.v1.PerformanceService/DeleteEverything":                 {auth.RoleAdmin, true},
		"/pxperf.v2.PerformanceService/Publish":                          {auth.RoleAdmin, true},
		"/other.Service/GetStats":                                        {auth.RoleAdmin, true},
		"/grpc.health.v1.HealthX/Check":                                  {auth.RoleAdmin, true},
		"":                                                               {auth.RoleAdmin, true},
	}
	for m, r := range performanceServiceRoles() {
		tests["/pxperf.v1.PerformanceService/"+m] = want{r, true}
	}
	for method, w := range tests {
		t.Run(method, func(t *testing.T) {
			role, need := auth.RequiredRole(method)
			if role != w.role || need != w.need {
				t.Errorf("got (%v, %v), want (%v, %v)", role, need, w.role, w.need)
			}
		})
	}
}

// TestEveryRPCHasARole keeps the table in step with the proto: a new RPC
// fails this test until someone decides which role it needs (until then
// it needs admin).
func TestEveryRPCHasARole(t *testing.T) {
	proto, err := os.ReadFile("../proto/pxperf/v1/service.proto")
	if err != nil {
		t.Fatal(err)
	}
	rpcs := regexp.MustCompile(`(?m)^\s*rpc\s+(\w+)\s*\(`).FindAllStringSubmatch(string(proto), -1)
	table := performanceServiceRoles()
	if len(rpcs) != len(table) {
		t.Errorf("service.proto has %d RPCs, the role table %d", len(rpcs), len(table))
	}
	for _, m := range rpcs {
		if _, ok := table[m[1]]; !ok {
			t.Errorf("RPC %s has no role in the table; add it to RequiredRole, the package doc and this test", m[1])
		}
	}
}

func TestParseRole(t *testing.T) {
	tests := []struct {
		in      string
		want    auth.Role
		wantErr bool
	}{
		{"view", auth.RoleView, false},
		{"publish", auth.RolePublish, false},
		{"admin", auth.RoleAdmin, false},
		{"Admin", auth.RoleAdmin, false},
		{"proxy", auth.RoleProxy, false},
		{"", 0, true},
		{"root", 0, true},
		{"view ", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := auth.ParseRole(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got (%v, %v), want (%v, error %v)", got, err, tt.want, tt.wantErr)
			}
			if err == nil {
				if back, err := auth.ParseRole(got.String()); err != nil || back != got {
					t.Errorf("ParseRole(%q) = (%v, %v), want %v", got.String(), back, err, got)
				}
			}
		})
	}
	if got := auth.Role(0).String(); got != "Role(0)" {
		t.Errorf("Role(0).String() = %q, want \"Role(0)\"", got)
	}
}

func TestIdentityAllows(t *testing.T) {
	all := []auth.Role{auth.RoleView, auth.RolePublish, auth.RoleAdmin, auth.RoleProxy}
	tests := []struct {
		roles []auth.Role
		want  []bool // for view, publish, admin, proxy
	}{
		{nil, []bool{false, false, false, false}},
		{[]auth.Role{auth.RoleView}, []bool{true, false, false, false}},
		{[]auth.Role{auth.RolePublish}, []bool{false, true, false, false}},
		{[]auth.Role{auth.RoleView, auth.RolePublish}, []bool{true, true, false, false}},
		{[]auth.Role{auth.RoleAdmin}, []bool{true, true, true, true}},
		{[]auth.Role{auth.RoleProxy}, []bool{false, false, false, true}},
	}
	for _, tt := range tests {
		id := auth.Identity{Name: "x", Roles: tt.roles}
		for i, r := range all {
			if got := id.Allows(r); got != tt.want[i] {
				t.Errorf("roles %v: Allows(%v) = %v, want %v", tt.roles, r, got, tt.want[i])
			}
		}
	}
}

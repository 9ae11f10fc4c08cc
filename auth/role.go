package auth

import (
	"fmt"
	"strings"
)

// Role is a permission a bearer token grants. Its zero value is not a valid
// role. See the package documentation for what each role may call.
type Role int

// The roles. [RoleAdmin] implies the others; [RoleView], [RolePublish]
// and [RoleProxy] are independent of each other.
const (
	// RoleView may call the read-only RPCs.
	RoleView Role = iota + 1
	// RolePublish may call Publish and PublishStream.
	RolePublish
	// RoleAdmin may call every RPC, and use the recording proxy.
	RoleAdmin
	// RoleProxy may use the recording proxy (Basic Proxy-Authorization,
	// the token's name as user and the token as password), and call no
	// RPC.
	RoleProxy
)

// String returns the role's name as [ParseRole] accepts it: "view",
// "publish", "admin" or "proxy"; "Role(N)" for an invalid role.
func (r Role) String() string {
	switch r {
	case RoleView:
		return "view"
	case RolePublish:
		return "publish"
	case RoleAdmin:
		return "admin"
	case RoleProxy:
		return "proxy"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

func (r Role) valid() bool { return r >= RoleView && r <= RoleProxy }

// ParseRole parses a role name: "view", "publish", "admin" or "proxy", in
// any case.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(s) {
	case "view":
		return RoleView, nil
	case "publish":
		return RolePublish, nil
	case "admin":
		return RoleAdmin, nil
	case "proxy":
		return RoleProxy, nil
	}
	return 0, fmt.Errorf("unknown role %q (want view, publish, admin or proxy)", s)
}

// Identity is who a bearer token belongs to, and what it may do.
type Identity struct {
	// Name identifies the token's holder in logs, errors and resource
	// owners. Required; it never contains the token.
	Name string
	// Roles are the roles the token grants; at least one.
	Roles []Role
}

// Allows reports whether id may call a method that needs role r: it holds
// r, or it holds [RoleAdmin].
func (id Identity) Allows(r Role) bool {
	for _, have := range id.Roles {
		if have == r || have == RoleAdmin {
			return true
		}
	}
	return false
}

// rolesString lists roles as "view,publish", or "none".
func rolesString(roles []Role) string {
	if len(roles) == 0 {
		return "none"
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = r.String()
	}
	return strings.Join(names, ",")
}

const performanceService = "/pxperf.v1.PerformanceService/"

// RequiredRole returns the role a call of fullMethod
// ("/package.Service/Method") needs, or false when it needs none. It is
// the default table for [Interceptors]; the package documentation lists it.
// Unknown methods need [RoleAdmin].
func RequiredRole(fullMethod string) (Role, bool) {
	if strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.") {
		return 0, false
	}
	switch fullMethod {
	case performanceService + "Publish",
		performanceService + "PublishStream":
		return RolePublish, true
	case performanceService + "Subscribe",
		performanceService + "ListEntries",
		performanceService + "GetEntry",
		performanceService + "GetStats",
		performanceService + "WatchStats",
		performanceService + "GetConfig",
		performanceService + "ListResources",
		performanceService + "ListLogFiles",
		performanceService + "ReadArchive":
		return RoleView, true
	}
	// UpdateConfig, Optimize, CloseResource, and anything not listed.
	return RoleAdmin, true
}

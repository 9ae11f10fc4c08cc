package auth_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pxperf/pxperf/auth"
)

const (
	tokA = "aaaaaaaaaaaaaaaa0001"
	tokB = "bbbbbbbbbbbbbbbb0002"
	tokC = "cccccccccccccccc0003"
)

func writeTokenFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is subject to the umask.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadTokens(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    map[string]auth.Identity // token → identity
		wantErr string                   // a part of the error, after the path
	}{
		{
			name: "roles, comments and blank lines",
			content: "# pxperf tokens\n\n" +
				"publish  ci " + tokA + "\n" +
				"   # indented comment\n" +
				"view,publish\talice\t" + tokB + "\r\n" +
				"ADMIN,view ops " + tokC, // no final newline
			want: map[string]auth.Identity{
				tokA: {Name: "ci", Roles: []auth.Role{auth.RolePublish}},
				tokB: {Name: "alice", Roles: []auth.Role{auth.RoleView, auth.RolePublish}},
				tokC: {Name: "ops", Roles: []auth.Role{auth.RoleAdmin, auth.RoleView}},
			},
		},
		{
			name:    "a name on two lines, a role twice",
			content: "view bob " + tokA + "\nview,view bob " + tokB + "\n",
			want: map[string]auth.Identity{
				tokA: {Name: "bob", Roles: []auth.Role{auth.RoleView}},
				tokB: {Name: "bob", Roles: []auth.Role{auth.RoleView}},
			},
		},
		{name: "empty", content: "", wantErr: ": no tokens"},
		{name: "comments only", content: "# nothing\n\n", wantErr: ": no tokens"},
		{name: "two fields", content: "# c\nview " + tokA + "\n", wantErr: ":2: want 3 fields"},
		{name: "four fields", content: "view a b " + tokA, wantErr: ":1: want 3 fields"},
		{name: "unknown role", content: "view ok " + tokA + "\nroot x " + tokB, wantErr: `:2: unknown role "root"`},
		{name: "empty role", content: "view, x " + tokA, wantErr: `:1: unknown role ""`},
		{name: "short token", content: "\n\n\nview x 0123456789abcde", wantErr: `:4: token of "x": 15 bytes long, shorter than the minimum of 16`},
		{name: "non-ASCII token", content: "view x 0123456789abcdé", wantErr: `:1: token of "x": byte 14 is not printable ASCII`},
		{name: "control byte in token", content: "view x 0123456789abcdef\x7f", wantErr: `:1: token of "x": byte 16`},
		{name: "non-printable name", content: "view a\x01b " + tokA, wantErr: ":1: identity name"},
		{name: "duplicate token", content: "view a " + tokA + "\nadmin b " + tokB + "\nadmin c " + tokA, wantErr: `:3: token of "c" is the same as on line 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTokenFile(t, tt.content, 0o600)
			got, err := auth.LoadTokens(path)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got %d tokens, want error %q", got.Len(), tt.wantErr)
				}
				if !strings.Contains(err.Error(), path+tt.wantErr) {
					t.Errorf("got error %q, want it to contain %q", err, path+tt.wantErr)
				}
				for _, tok := range []string{tokA, tokB, "0123456789abcde"} {
					if strings.Contains(err.Error(), tok) {
						t.Errorf("error %q contains a token", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Len() != len(tt.want) {
				t.Errorf("Len: got %d, want %d", got.Len(), len(tt.want))
			}
			for tok, want := range tt.want {
				id, ok := got.Lookup(tok)
				if !ok {
					t.Errorf("Lookup(%q): not found", tok)
					continue
				}
				if diff := cmp.Diff(id, want); diff != "" {
					t.Errorf("Lookup(%q) (-got +want):\n%s", tok, diff)
				}
			}
		})
	}
}

func TestLoadTokensFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not checked on Windows")
	}
	content := "view a " + tokA + "\n"
	tests := []struct {
		mode    os.FileMode
		wantErr bool
	}{
		{0o600, false},
		{0o640, false},
		{0o400, false},
		{0o644, true},
		{0o602, true},
		{0o666, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			path := writeTokenFile(t, content, tt.mode)
			_, err := auth.LoadTokens(path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "chmod o-rwx "+path) {
				t.Errorf("error %q does not say how to fix it", err)
			}
		})
	}
}

func TestLoadTokensMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing")
	_, err := auth.LoadTokens(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error naming %s", err, path)
	}
	if !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("error %v does not wrap fs.ErrNotExist", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestNewTokens(t *testing.T) {
	view := []auth.Role{auth.RoleView}
	tests := []struct {
		name    string
		m       map[string]auth.Identity
		wantErr string
	}{
		{"empty", nil, ""},
		{"good", map[string]auth.Identity{tokA: {Name: "a", Roles: view}}, ""},
		{"short token", map[string]auth.Identity{"short": {Name: "a", Roles: view}}, `token of "a": 5 bytes long`},
		{"space in token", map[string]auth.Identity{"0123456789 abcdef": {Name: "a", Roles: view}}, `token of "a": byte 10`},
		{"no name", map[string]auth.Identity{tokA: {Roles: view}}, "identity has no name"},
		{"no role", map[string]auth.Identity{tokA: {Name: "a"}}, `identity "a" has no role`},
		{"invalid role", map[string]auth.Identity{tokA: {Name: "a", Roles: []auth.Role{7}}}, `identity "a": invalid role Role(7)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.NewTokens(tt.m)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.Len() != len(tt.m) {
					t.Errorf("Len: got %d, want %d", got.Len(), len(tt.m))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestTokensLookup(t *testing.T) {
	roles := []auth.Role{auth.RoleView}
	m := map[string]auth.Identity{}
	for i := range 50 {
		m[fmt.Sprintf("token-%016d", i)] = auth.Identity{Name: fmt.Sprint("id", i), Roles: roles}
	}
	tokens, err := auth.NewTokens(m)
	if err != nil {
		t.Fatal(err)
	}
	// The caller's slice was copied.
	roles[0] = auth.RoleAdmin
	for tok, want := range m {
		got, ok := tokens.Lookup(tok)
		if !ok || got.Name != want.Name || !cmp.Equal(got.Roles, []auth.Role{auth.RoleView}) {
			t.Fatalf("Lookup(%q) = %v, %v; want %s with role view", tok, got, ok, want.Name)
		}
		// A caller changing what it got changes nothing inside.
		got.Roles[0] = auth.RoleAdmin
	}
	if got, _ := tokens.Lookup("token-0000000000000007"); got.Roles[0] != auth.RoleView {
		t.Errorf("Lookup returned shared roles: %v", got.Roles)
	}
	for _, tok := range []string{"", "token-000000000000000", "token-00000000000000070", "TOKEN-0000000000000007"} {
		if id, ok := tokens.Lookup(tok); ok {
			t.Errorf("Lookup(%q) = %v, want not found", tok, id)
		}
	}
	var none *auth.Tokens
	if _, ok := none.Lookup("token-0000000000000007"); ok || none.Len() != 0 {
		t.Error("a nil Tokens knows a token")
	}
}

func TestTokensLookupBasic(t *testing.T) {
	const aliceTok, bobTok = "alice-token-0123456789", "bob-token-0123456789"
	tokens, err := auth.NewTokens(map[string]auth.Identity{
		aliceTok: {Name: "alice", Roles: []auth.Role{auth.RoleProxy}},
		bobTok:   {Name: "bob", Roles: []auth.Role{auth.RoleView}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, password, want string // want "" for no identity
	}{
		{"alice", aliceTok, "alice"},
		{"bob", bobTok, "bob"},
		{"alice", bobTok, ""},   // another's token
		{"bob", aliceTok, ""},   // another's token
		{"alic", aliceTok, ""},  // a prefix of the name
		{"alice", "alice", ""},  // the name as its own token
		{"", "", ""},            // nothing
		{"Alice", aliceTok, ""}, // names are exact
	}
	for _, tt := range tests {
		id, ok := tokens.LookupBasic(tt.user, tt.password)
		if ok != (tt.want != "") || id.Name != tt.want {
			t.Errorf("LookupBasic(%q, %q) = %v, %v; want %q", tt.user, tt.password, id, ok, tt.want)
		}
	}
	var none *auth.Tokens
	if _, ok := none.LookupBasic("", ""); ok {
		t.Error("a nil Tokens knows empty credentials")
	}
}

func BenchmarkTokensLookup(b *testing.B) {
	m := map[string]auth.Identity{}
	for i := range 20 {
		m[fmt.Sprintf("token-%016d", i)] = auth.Identity{Name: fmt.Sprint("id", i), Roles: []auth.Role{auth.RoleView}}
	}
	tokens, err := auth.NewTokens(m)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := tokens.Lookup("token-0000000000000013"); !ok {
			b.Fatal("not found")
		}
	}
}

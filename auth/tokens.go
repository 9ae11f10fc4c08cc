package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"unicode"
)

// MinTokenBytes is the shortest token [LoadTokens] and [NewTokens] accept.
const MinTokenBytes = 16

// maxTokenFileBytes bounds what LoadTokens reads: a token file is a few
// lines, so anything larger is the wrong file.
const maxTokenFileBytes = 1 << 20

// Tokens maps bearer tokens to the [Identity] each grants. Create it with
// [LoadTokens] or [NewTokens]; it is immutable and safe for concurrent use.
// A nil *Tokens knows no token.
//
// Only SHA-256 digests of the tokens are kept. [Tokens.Lookup] compares
// the digest of the presented token with every known digest in constant
// time, so its timing reveals neither how much of a token matched nor which
// token did.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	sum [sha256.Size]byte
	id  Identity
}

// NewTokens returns the tokens in m, each mapped to its identity. Every
// token must be at least [MinTokenBytes] bytes of printable ASCII other
// than space, and every identity needs a name and at least one valid role.
// An empty m gives a Tokens that knows no token. Errors name the identity,
// never the token.
func NewTokens(m map[string]Identity) (*Tokens, error) {
	t := &Tokens{entries: make([]tokenEntry, 0, len(m))}
	// Sorted by name so that the first error reported is stable.
	toks := make([]string, 0, len(m))
	for tok := range m {
		toks = append(toks, tok)
	}
	slices.SortFunc(toks, func(a, b string) int { return strings.Compare(m[a].Name, m[b].Name) })
	for _, tok := range toks {
		id := m[tok]
		if err := checkIdentity(id); err != nil {
			return nil, err
		}
		if err := checkToken(tok); err != nil {
			return nil, fmt.Errorf("token of %q: %w", id.Name, err)
		}
		t.entries = append(t.entries, tokenEntry{sum: sha256.Sum256([]byte(tok)), id: cloneIdentity(id)})
	}
	return t, nil
}

// LoadTokens reads a token file: one token per line, as
//
//	ROLE[,ROLE...] NAME TOKEN
//
// separated by spaces or tabs, for example
//
//	# producers
//	publish       ci-runner   6f1c0f5b0d2e4a7c9b8e3d2a1f0e9c8b
//	view,publish  alice       0b7e2d4c6a8f1e3d5c7b9a0e2f4d6c8a
//	admin         ops         9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d
//
// ROLE is view, publish, admin or proxy (see [ParseRole]); NAME names the
// holder in logs and errors; TOKEN is at least [MinTokenBytes] bytes of
// printable ASCII (generate one with `openssl rand -hex 32`). Blank lines
// and lines whose first non-blank character is '#' are ignored. Several
// lines may share a NAME (to rotate its token), never a TOKEN.
//
// The file must not be readable or writable by all users (mode 0600 or
// 0640 suit it): it holds secrets, and LoadTokens refuses it otherwise, as
// ssh refuses a private key, so that the mistake is fixed rather than
// logged and forgotten. It must hold at least one token. Errors name the
// file and line; they never contain a token.
func LoadTokens(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o006 != 0 {
		return nil, fmt.Errorf("token file %s: mode %v lets every user read or change it; run chmod o-rwx %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	if len(data) > maxTokenFileBytes {
		return nil, fmt.Errorf("token file %s: larger than %d bytes", path, maxTokenFileBytes)
	}
	return parseTokens(path, string(data))
}

// parseTokens parses the contents of a token file named name.
func parseTokens(name, data string) (*Tokens, error) {
	t := &Tokens{}
	firstLine := make(map[[sha256.Size]byte]int) // digest → line it is on
	for i, line := range strings.Split(data, "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s:%d: want 3 fields, ROLE[,ROLE...] NAME TOKEN; got %d", name, n, len(fields))
		}
		var id Identity
		id.Name = fields[1]
		for r := range strings.SplitSeq(fields[0], ",") {
			role, err := ParseRole(r)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, n, err)
			}
			if !slices.Contains(id.Roles, role) {
				id.Roles = append(id.Roles, role)
			}
		}
		if err := checkIdentity(id); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if err := checkToken(fields[2]); err != nil {
			return nil, fmt.Errorf("%s:%d: token of %q: %w", name, n, id.Name, err)
		}
		sum := sha256.Sum256([]byte(fields[2]))
		if prev, dup := firstLine[sum]; dup {
			return nil, fmt.Errorf("%s:%d: token of %q is the same as on line %d; every token must be different", name, n, id.Name, prev)
		}
		firstLine[sum] = n
		t.entries = append(t.entries, tokenEntry{sum: sum, id: id})
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("%s: no tokens", name)
	}
	return t, nil
}

func checkIdentity(id Identity) error {
	if id.Name == "" {
		return errors.New("identity has no name")
	}
	if strings.IndexFunc(id.Name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("identity name %q has a non-printable character", id.Name)
	}
	if len(id.Roles) == 0 {
		return fmt.Errorf("identity %q has no role", id.Name)
	}
	for _, r := range id.Roles {
		if !r.valid() {
			return fmt.Errorf("identity %q: invalid role %v", id.Name, r)
		}
	}
	return nil
}

// checkToken reports what is wrong with tok, without quoting it.
func checkToken(tok string) error {
	if len(tok) < MinTokenBytes {
		return fmt.Errorf("%d bytes long, shorter than the minimum of %d", len(tok), MinTokenBytes)
	}
	for i := 0; i < len(tok); i++ {
		// Visible ASCII only: a token goes in an HTTP/2 header and a
		// whitespace-separated file.
		if c := tok[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("byte %d is not printable ASCII or is a space", i)
		}
	}
	return nil
}

func cloneIdentity(id Identity) Identity {
	id.Roles = slices.Clone(id.Roles)
	return id
}

// Lookup returns the identity token grants, or false if t does not know
// token. The returned identity is a copy the caller may keep and modify.
func (t *Tokens) Lookup(token string) (Identity, bool) {
	if t == nil {
		return Identity{}, false
	}
	sum := sha256.Sum256([]byte(token))
	match := -1
	for i := range t.entries {
		eq := subtle.ConstantTimeCompare(sum[:], t.entries[i].sum[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return Identity{}, false
	}
	return cloneIdentity(t.entries[match].id), true
}

// LookupBasic returns the identity of HTTP Basic credentials: the identity
// named user whose token is password, or false if there is none. It
// compares as [Tokens.Lookup] does, and the name in constant time too, so
// its timing reveals neither which token nor how much of a name matched.
func (t *Tokens) LookupBasic(user, password string) (Identity, bool) {
	id, ok := t.Lookup(password)
	if subtle.ConstantTimeCompare([]byte(id.Name), []byte(user)) != 1 || !ok {
		return Identity{}, false
	}
	return id, true
}

// Len returns how many tokens t knows.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.entries)
}

package auth

import (
	"strings"
	"testing"
)

func FuzzParseTokens(f *testing.F) {
	f.Add("view,publish alice 0123456789abcdef\n# c\nadmin ops fedcba9876543210\n")
	f.Add("view x short\n")
	f.Add("view, a 0123456789abcdef\r\n\n")
	f.Fuzz(func(t *testing.T, data string) {
		tokens, err := parseTokens("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Errorf("error %q does not start with the file name", err)
			}
			return
		}
		if tokens.Len() == 0 {
			t.Error("accepted a file without tokens")
		}
		for _, e := range tokens.entries {
			if err := checkIdentity(e.id); err != nil {
				t.Errorf("accepted a bad identity: %v", err)
			}
		}
		// Every accepted line's token is found again.
		for line := range strings.SplitSeq(data, "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && !strings.HasPrefix(f[0], "#") {
				if _, ok := tokens.Lookup(f[2]); !ok {
					t.Errorf("token on line %q not found", line)
				}
			}
		}
	})
}

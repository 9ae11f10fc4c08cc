package replay

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sh runs script with sh in a clean environment (no proxy variables, no
// curlrc) and env.
func sh(t *testing.T, ctx context.Context, script string, env ...string) ([]byte, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "sh", path)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, errors.Join(err, errors.New(stderr.String()))
	}
	return out, nil
}

// The shell reads every quoted string back as it was.
func TestQuote(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, s := range []string{"", "plain", "it's", "'", "''", `a'b'c`, "$HOME `id` $(id) \\n \"x\" *", "line\nbreak", "tab\there", "ünïcödé", "-n"} {
		out, err := sh(t, ctx, "printf '%s' "+quote(s))
		if err != nil || string(out) != s {
			t.Errorf("sh printf %%s %s = %q, %v; want %q", quote(s), out, err, s)
		}
	}
	for s, want := range map[string]string{"GET": "GET", "MKCALENDAR": "MKCALENDAR", "X-1.0_a": "X-1.0_a", "A$B": `'A$B'`, "it's": `'it'\''s'`, "": "''"} {
		if got := word(s); got != want {
			t.Errorf("word(%q) = %s, want %s", s, got, want)
		}
	}
}

// printf writes the exact bytes of its format, each of the 256 bytes
// included, and a leading '-'.
func TestPrintfFormat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	for _, body := range [][]byte{every, []byte("-v x"), []byte("--"), []byte("%s%d%%\\n\\0"), []byte("7\x0012")} {
		out, err := sh(t, ctx, "printf "+quote(printfFormat(body)))
		if err != nil || !bytes.Equal(out, body) {
			t.Errorf("printf %s = %q, %v; want %q", quote(printfFormat(body)), out, err, body)
		}
	}
}

// The command lines Curl writes, whole.
func TestCurl(t *testing.T) {
	proxyURL := &url.URL{Scheme: "http", Host: "127.0.0.1:3128"}
	for _, tc := range []struct {
		name  string
		entry string // the name of a requestCase
		opts  CurlOptions
		want  string
	}{
		{
			name: "GET", entry: "GET as recorded",
			want: `curl 'http://example.test/a/b?q=1&r=%20x' \
  -H 'Accept: application/json' \
  -H 'User-Agent: test/1' \
  -H 'X-Multi: one' \
  -H 'X-Multi: two'
`,
		},
		{
			name: "redacted", entry: "redacted headers are left out",
			want: `# Left out, redacted when recorded: Authorization, Cookie, X-Api-Key. Give them with -H 'Name: value'.
curl 'http://example.test/private' \
  -H 'X-Public: 1'
`,
		},
		{
			name: "given again", entry: "given headers replace redacted and recorded ones, and are added",
			opts: CurlOptions{Header: http.Header{"Authorization": {"Bearer it's-me"}, "Accept": {"c"}, "X-New": {"new"}, "X-Drop": {""}}},
			want: `# Left out, redacted when recorded: Cookie. Give them with -H 'Name: value'.
curl 'http://example.test/private' \
  -H 'Authorization: Bearer it'\''s-me' \
  -H 'Accept: c' \
  -H 'X-New: new'
`,
		},
		{
			name: "JSON body", entry: "a body with its type and quotes",
			want: `curl 'http://example.test/api' \
  -H 'Content-Type: application/json' \
  --data-binary '{"name": "O'\''Brien", "n": "$x"}
'
`,
		},
		{
			name: "body without a type", entry: "a body without any type is sent without one",
			want: `curl 'http://example.test/raw' \
  -X PATCH \
  -H 'Content-Type:' \
  --data-binary 'raw'
`,
		},
		{
			name: "binary body", entry: "a binary body",
			want: `printf '\000\001\177\200\377\047%%\\-\015\012\033[31m' | curl 'http://example.test/bin' \
  -H 'Content-Type: application/octet-stream' \
  --data-binary @-
`,
		},
		{
			name: "a body that starts with @", entry: "a body that starts with @ is not a file name",
			want: `printf '@/etc/passwd' | curl 'http://example.test/at' \
  -H 'Content-Type: text/plain' \
  --data-binary @-
`,
		},
		{
			name: "HEAD", entry: "HEAD",
			want: `curl 'http://example.test/head' \
  --head \
  -H 'Accept: */*'
`,
		},
		{
			name: "Host and an empty header", entry: "a Host that differs from the url's is sent",
			opts: CurlOptions{Header: http.Header{"X-Empty": {"", ""}}},
			want: `curl 'http://127.0.0.1:8080/vhost' \
  -H 'Host: site.example.test' \
  -H 'X-Empty;' \
  -H 'X-Empty;'
`,
		},
		{
			name: "glob and dot segments", entry: "a url curl would glob or resolve",
			want: `curl 'http://example.test/a/../b/./c?list[]=1&set={x}' \
  --globoff \
  --path-as-is
`,
		},
		{
			name: "part of a body", entry: "a truncated body is sent in part when asked", opts: CurlOptions{TruncatedBody: true},
			want: `# The request body was not recorded whole (3 of its 10 bytes were recorded): this sends the part that was.
curl 'http://example.test/big' \
  -H 'Content-Type: text/plain' \
  --data-binary 'abc'
`,
		},
		{
			name: "through the recording proxy", entry: "DELETE without a body", opts: CurlOptions{Proxy: proxyURL},
			want: `curl 'http://example.test/item/1' \
  -X DELETE \
  --proxy 'http://127.0.0.1:3128' \
  --proxy-header 'Pxperf-Replay-Of: 17'
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := findCase(t, tc.entry)
			got, err := Curl(rc.entry, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Curl =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func findCase(t *testing.T, name string) requestCase {
	t.Helper()
	for _, tc := range requestCases() {
		if tc.name == name {
			return tc
		}
	}
	t.Fatalf("no request case %q", name)
	return requestCase{}
}

// Curl's errors are Request's.
func TestCurlErrors(t *testing.T) {
	for _, tc := range requestCases() {
		if tc.err == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Curl(tc.entry, CurlOptions{Header: tc.header}); !errors.Is(err, tc.err) {
				t.Errorf("Curl: %v, want an error wrapping %q", err, tc.err)
			}
		})
	}
}

// The commands Curl writes, run by sh, make curl send the recorded
// request: method, target, headers and body, byte for byte.
func TestCurlRuns(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed: the command lines are not run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	target, got := newTarget(t)
	addr := strings.TrimPrefix(target.URL, "http://")
	for _, tc := range requestCases() {
		if tc.err != nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := Curl(tc.at(addr), CurlOptions{Header: tc.header, TruncatedBody: tc.truncated})
			if err != nil {
				t.Fatal(err)
			}
			out, err := sh(t, ctx, cmd)
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if want := "ok"; tc.method != "HEAD" && string(out) != want {
				t.Errorf("curl printed %q, want %q", out, want)
			}
			// curl's own: the two it always sends unless told otherwise,
			// the body's length, and Expect for a large body.
			tc.check(t, receive(t, ctx, got), addr, "User-Agent", "Accept", "Content-Length", "Expect")
		})
	}
}

// A body goes as a quoted argument only when it shows what it is.
func TestTextBody(t *testing.T) {
	for _, tc := range []struct {
		body string
		want bool
	}{
		{"plain", true},
		{"tab\tand newline\n", true},
		{"héllo ✓", true},
		{"it's $HOME", true},
		{"crlf\r\n", false},
		{"nul\x00", false},
		{"esc\x1b[2J", false},
		{"del\x7f", false},
		{"c1\u0085", false},
		{"bidi \u202eoverride", false},
		{"invalid \xff", false},
		{"@file", false},
		{strings.Repeat("x", maxArgBody), true},
		{strings.Repeat("x", maxArgBody+1), false},
	} {
		if got := textBody([]byte(tc.body)); got != tc.want {
			t.Errorf("textBody(%.20q) = %v, want %v", tc.body, got, tc.want)
		}
	}
}

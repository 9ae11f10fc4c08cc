package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// assets returns the asset paths the page names.
func assets(t *testing.T, page string) []string {
	t.Helper()
	got := regexp.MustCompile(`(?:href|src)="(/assets/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(got) != 2 {
		t.Fatalf("the page names %d assets, want 2 (script and stylesheet):\n%s", len(got), page)
	}
	return []string{got[0][1], got[1][1]}
}

func get(t *testing.T, h http.Handler, method, path string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Result(), string(body)
}

func TestHandler(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	_, page := get(t, h, "GET", "/", nil)
	names := assets(t, page)
	var script, style string
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, ".js"):
			script = n
		case strings.HasSuffix(n, ".css"):
			style = n
		}
	}
	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
		wantType   string
		wantCache  string
	}{
		{"page", "GET", "/", nil, http.StatusOK, "text/html; charset=utf-8", "no-cache"},
		{"page, HEAD", "HEAD", "/", nil, http.StatusOK, "text/html; charset=utf-8", "no-cache"},
		{"script", "GET", script, nil, http.StatusOK, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"stylesheet", "GET", style, nil, http.StatusOK, "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{"index.html by name", "GET", "/index.html", nil, http.StatusNotFound, "", ""},
		{"unknown asset", "GET", "/assets/app.js", nil, http.StatusNotFound, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, h, tt.method, tt.path, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus != http.StatusOK {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type %q, want %q", got, tt.wantType)
			}
			if got := resp.Header.Get("Cache-Control"); got != tt.wantCache {
				t.Errorf("Cache-Control %q, want %q", got, tt.wantCache)
			}
			if tt.method == "GET" && body == "" {
				t.Error("empty body")
			}
			etag := resp.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			again, _ := get(t, h, "GET", tt.path, map[string]string{"If-None-Match": etag})
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("GET with If-None-Match: its ETag: status %d, want 304", again.StatusCode)
			}
		})
	}
}

// The page holds nothing the gateway's CSP (default-src 'self',
// script-src 'self') would block: no inline script or style, no handler
// attributes, nothing from another origin.
func TestPageKeepsCSP(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	_, page := get(t, h, "GET", "/", nil)
	for _, tag := range regexp.MustCompile(`<script[^>]*>[^<]*`).FindAllString(page, -1) {
		if !strings.Contains(tag, ` src="`) || !strings.HasSuffix(tag, ">") {
			t.Errorf("the page has an inline script: %q", tag)
		}
	}
	bad := []struct{ what, re string }{
		{"a style element", `<style`},
		{"a style attribute", `\sstyle=`},
		{"an event handler attribute", `\son[a-z]+=`},
		{"a resource from another origin", `(?:src|href)="(?:https?:)?//`},
	}
	for _, b := range bad {
		if m := regexp.MustCompile(b.re).FindString(page); m != "" {
			t.Errorf("the page has %s: %q", b.what, m)
		}
	}
}

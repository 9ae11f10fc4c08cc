// Package web serves pxperf's browser UI: a single page whose script and
// stylesheet esbuild builds from src/ into dist/ (npm run build, in this
// directory). dist/ is committed and embedded in the binary, so building
// pxperf needs no npm; .ci/run rebuilds it and fails when the committed
// copy is stale.
//
// The page is written for the gateway's Content-Security-Policy: no inline
// script, no inline style; it calls PerformanceService over Connect on the
// origin it came from.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// AssetsPrefix is the path under which [New]'s handler serves the script
// and the stylesheet, whose names carry a hash of their content.
const AssetsPrefix = "/assets/"

// file is one file of the bundle, ready to serve.
type file struct {
	name    string
	content []byte
	ctype   string
	etag    string
	cache   string
}

// New returns a handler that serves the UI: GET / the page, GET
// /assets/NAME the script and the stylesheet. Mount it at "/" and at
// [AssetsPrefix]; it answers 404 for any other path. The page is revalidated
// on every load (Cache-Control: no-cache, with an ETag), so a new binary's
// page is seen at once; the assets, named by their hash, are cached for a
// year as immutable. It is safe for concurrent use.
func New() (http.Handler, error) {
	return newHandler(dist)
}

// handler serves the files of a bundle by path.
type handler map[string]*file

// newHandler reads the bundle in fsys (a dist/ directory holding
// index.html and assets/).
func newHandler(fsys fs.FS) (handler, error) {
	h := handler{}
	err := fs.WalkDir(fsys, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		content, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(content)
		f := &file{
			name:    path.Base(p),
			content: content,
			ctype:   mime.TypeByExtension(path.Ext(p)),
			etag:    `"` + hex.EncodeToString(sum[:12]) + `"`,
			cache:   "public, max-age=31536000, immutable",
		}
		urlPath := strings.TrimPrefix(p, "dist")
		if urlPath == "/index.html" {
			urlPath = "/"
			f.cache = "no-cache"
		}
		if f.ctype == "" {
			f.ctype = "application/octet-stream"
		}
		h[urlPath] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: reading the embedded bundle: %w", err)
	}
	if h["/"] == nil {
		return nil, fmt.Errorf("web: the embedded bundle has no index.html: run npm run build in web/")
	}
	return h, nil
}

// ServeHTTP serves the file at r's path, with its type, ETag and caching
// headers, answering conditional and HEAD requests as [http.ServeContent]
// does.
func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := h[r.URL.Path]
	if f == nil {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	hd.Set("Cache-Control", f.cache)
	hd.Set("ETag", f.etag)
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.content))
}

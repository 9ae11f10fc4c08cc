package main

import (
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

var updateHAR = flag.Bool("update-har", false, "rewrite web/testdata/har.json with what entryToHAR writes")

// TestHARTestdata holds entryToHAR to web/testdata/har.json, which the web
// UI's Node test (web/test/har.test.ts) holds its HAR builder to: the two
// write the same HAR for the same entry. With -update-har it writes the
// file's expected HAR instead.
func TestHARTestdata(t *testing.T) {
	const path = repoRoot + "/web/testdata/har.json"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []struct {
			Name  string          `json:"name"`
			Entry json.RawMessage `json:"entry"`
			HAR   any             `json:"har"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	for i, c := range file.Cases {
		var e pxperfv1.Entry
		if err := protojson.Unmarshal(c.Entry, &e); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		data, err := json.Marshal(entryToHAR(&e))
		if err != nil {
			t.Fatal(err)
		}
		var got any
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		if *updateHAR {
			file.Cases[i].HAR = got
		} else if diff := cmp.Diff(got, c.HAR); diff != "" {
			t.Errorf("%s: entryToHAR differs from %s (-got +want):\n%s", c.Name, path, diff)
		}
	}
	if *updateHAR {
		out, err := json.MarshalIndent(file, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

package web

import (
	"encoding/json"
	"flag"
	"os"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/pxperf/pxperf/replay"
	"google.golang.org/protobuf/encoding/protojson"
)

var update = flag.Bool("update", false, "rewrite testdata/curl.json with what replay.Curl writes")

// curlCase is one case of testdata/curl.json: an entry (protojson) and the
// command replay.Curl writes for it.
type curlCase struct {
	Name  string          `json:"name"`
	Entry json.RawMessage `json:"entry"`
	Curl  string          `json:"curl"`
}

// TestCurlTestdata holds replay.Curl, with a truncated request body sent
// as recorded as the UI sends it, to testdata/curl.json, which the Node
// test (test/curl.test.ts) holds the UI's curl.ts to: the two write the
// same commands. With -update it writes the file instead.
func TestCurlTestdata(t *testing.T) {
	const path = "testdata/curl.json"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []curlCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	for i, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			var e pxperfv1.Entry
			if err := protojson.Unmarshal(c.Entry, &e); err != nil {
				t.Fatal(err)
			}
			got, err := replay.Curl(&e, replay.CurlOptions{TruncatedBody: true})
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				file.Cases[i].Curl = got
			} else if got != c.Curl {
				t.Errorf("replay.Curl:\n%s\nwant (%s):\n%s", got, path, c.Curl)
			}
		})
	}
	if *update {
		out, err := json.MarshalIndent(file, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

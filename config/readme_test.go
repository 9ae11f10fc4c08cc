package config

import (
	"os"
	"strings"
	"testing"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// The README documents every config field (unit, default, limits, live or
// not): a field added to the contract must be added there too.
func TestReadmeListsEveryConfigField(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	groups := (&pxperfv1.Config{}).ProtoReflect().Descriptor().Fields()
	for i := range groups.Len() {
		g := groups.Get(i)
		fields := g.Message().Fields()
		for j := range fields.Len() {
			path := string(g.Name()) + "." + string(fields.Get(j).Name())
			if !strings.Contains(string(readme), "| `"+path+"` |") {
				t.Errorf("README.md has no row for config field %s", path)
			}
		}
	}
}

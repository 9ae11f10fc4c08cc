package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"
)

// maxFileBytes bounds a config file: a real one is a few kilobytes.
const maxFileBytes = 1 << 20

// ErrFile is wrapped by errors reading or parsing a config file.
var ErrFile = errors.New("config file")

// LoadFile reads the YAML (or JSON) config file at path over base and
// returns the result; base is not modified. It does not validate: call
// [Validate] once every source is applied.
//
// The file uses the protojson names of [pxperfv1.Config] (max_entries or
// maxEntries; durations as strings such as "30s"; enums by name), and may
// give any subset of fields: groups merge field by field, while a list
// (logs.policies) or a scalar replaces the value in base. Unlike a protobuf
// merge, a value the file states is kept even when it is the zero value, so
// "alerts_enabled: false" turns alerts off. An unknown field is an error
// that names it.
func LoadFile(path string, base *pxperfv1.Config) (*pxperfv1.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFile, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrFile, path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%w %s: larger than %d bytes", ErrFile, path, maxFileBytes)
	}
	cfg, err := Parse(data, base)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrFile, path, err)
	}
	return cfg, nil
}

// Parse applies a YAML or JSON config document over base, as [LoadFile]
// does, and returns the result; base is not modified.
func Parse(data []byte, base *pxperfv1.Config) (*pxperfv1.Config, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	var over any
	if err := json.Unmarshal(js, &over); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if over == nil { // an empty document
		over = map[string]any{}
	}
	top, ok := over.(map[string]any)
	if !ok {
		return nil, errors.New("the document must be a mapping of config groups (memory:, logs:, …)")
	}
	doc, err := normalise(top, (&pxperfv1.Config{}).ProtoReflect().Descriptor(), "")
	if err != nil {
		return nil, err
	}
	// Check the document on its own first, so that a bad value is reported
	// before it is mixed with the base.
	js, err = json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode the document: %w", err)
	}
	if err := protojson.Unmarshal(js, &pxperfv1.Config{}); err != nil {
		return nil, err
	}
	baseJSON, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(base)
	if err != nil {
		return nil, fmt.Errorf("encode the base config: %w", err)
	}
	var merged any
	if err := json.Unmarshal(baseJSON, &merged); err != nil {
		return nil, fmt.Errorf("decode the base config: %w", err)
	}
	merged = mergeJSON(merged, doc)
	out, err := json.Marshal(merged)
	if err != nil {
		return nil, fmt.Errorf("encode the merged config: %w", err)
	}
	cfg := &pxperfv1.Config{}
	if err := protojson.Unmarshal(out, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// mergeJSON returns over applied on base: objects merge key by key, a
// null (a YAML key with nothing after it) leaves base's value, and any other
// value in over replaces base's.
func mergeJSON(base, over any) any {
	if over == nil {
		return base
	}
	bm, ok1 := base.(map[string]any)
	om, ok2 := over.(map[string]any)
	if !ok1 || !ok2 {
		return over
	}
	for k, v := range om {
		bm[k] = mergeJSON(bm[k], v)
	}
	return bm
}

// normalise rewrites a parsed document for protojson and for merging onto
// a base encoded with protobuf field names: keys become field names
// (max_entries for maxEntries), and a duration may be written as Go writes
// it ("250ms", "1h30m") as well as protojson's seconds ("0.250s"). path is
// the dotted path of m, for errors, which name unknown fields.
func normalise(m map[string]any, md protoreflect.MessageDescriptor, path string) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k))
		}
		if fd == nil {
			return nil, fmt.Errorf("unknown field %s%s", path, k)
		}
		name := string(fd.Name())
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
			switch val := v.(type) {
			case map[string]any:
				sub, err := normalise(val, fd.Message(), path+name+".")
				if err != nil {
					return nil, err
				}
				v = sub
			case string:
				if fd.Message().FullName() == "google.protobuf.Duration" {
					if d, err := time.ParseDuration(val); err == nil {
						v = strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
					}
				}
			}
		}
		out[name] = v
	}
	return out, nil
}

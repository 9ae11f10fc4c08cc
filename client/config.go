package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
)

// ErrNoPaths is returned by the config setters when they are given no field
// to change. The server requires an update mask, so the client does not
// call it.
var ErrNoPaths = errors.New("client: config: no fields to change")

// SetConfig changes, live, the server's config fields named by paths (such as
// "memory.max_entries" or "throttle", or "*" for the whole config) to their
// values in cfg, and returns the effective config. Fields of cfg not named
// are ignored; a named field unset in cfg is reset to its zero value. The
// server validates the result as a whole and applies all of it or none:
// INVALID_ARGUMENT names the fields at fault, and FAILED_PRECONDITION names
// fields that cannot change live (server.*, logs.enabled, logs.directory,
// logs.queue_size). Changing config needs the admin role when the server
// has token auth on. With no paths it returns [ErrNoPaths].
func (c *Client) SetConfig(ctx context.Context, cfg *pxperfv1.Config, paths ...string) (*pxperfv1.Config, error) {
	if len(paths) == 0 {
		return nil, ErrNoPaths
	}
	resp, err := c.service.UpdateConfig(ctx, &pxperfv1.UpdateConfigRequest{
		Config:     cfg,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
	})
	if err != nil {
		return nil, err
	}
	return resp.GetConfig(), nil
}

// SetConfigField sets one config field, named by its path, from a string, and
// returns the effective config: SetConfigFields with one field.
func (c *Client) SetConfigField(ctx context.Context, path, value string) (*pxperfv1.Config, error) {
	return c.SetConfigFields(ctx, map[string]string{path: value})
}

// SetConfigFields sets config fields from strings, keyed by path, in one
// [Client.SetConfig] call: all change or none does. It returns the effective
// config. Paths and values are read by [ParseConfigField]:
// "memory.max_entries" to "5000", "throttle.mode" to "fixed".
//
// An unknown path, a path naming a group of fields, a field named twice
// (by its proto and its JSON name), or a value that does not parse is
// refused before anything is sent, with an error naming the path; with no
// fields, [ErrNoPaths]. Limits (a minimum, a maximum) are the server's to
// check: see [Client.SetConfig].
func (c *Client) SetConfigFields(ctx context.Context, fields map[string]string) (*pxperfv1.Config, error) {
	if len(fields) == 0 {
		return nil, ErrNoPaths
	}
	cfg := &pxperfv1.Config{}
	paths := make([]string, 0, len(fields))
	for _, path := range slices.Sorted(maps.Keys(fields)) { // the first bad path is always the same one
		canon, err := ParseConfigField(cfg, path, fields[path])
		if err != nil {
			return nil, err
		}
		if slices.Contains(paths, canon) {
			return nil, fmt.Errorf("client: config field %q is given twice", canon)
		}
		paths = append(paths, canon)
	}
	return c.SetConfig(ctx, cfg, paths...)
}

// ConfigField returns the server's config field at path, written by
// [FormatConfigField]: as [Client.SetConfigFields] reads it, or a group
// of fields, such as "throttle", as JSON.
func (c *Client) ConfigField(ctx context.Context, path string) (string, error) {
	cfg, err := c.GetConfig(ctx)
	if err != nil {
		return "", err
	}
	return FormatConfigField(cfg, path)
}

// ParseConfigField sets the field of cfg at path to value, parsed for the
// field's type, and returns the path with proto field names, as an update
// mask wants it. Paths are field names joined by dots, as in the config
// file: proto names or JSON names ("memory.max_entries",
// "memory.maxEntries"). Values are written as on a command line, and
// surrounding spaces are ignored:
//
//   - numbers in decimal: "5000", "0.75";
//   - booleans: "true", "false" (and the other forms of [strconv.ParseBool]);
//   - enums as [ParseEnum] reads them: "THROTTLE_MODE_FIXED", "fixed";
//   - durations as Go writes them: "250ms", "1h30m";
//   - repeated fields as a comma-separated list, which replaces the whole
//     list: "count,size"; "" empties it;
//   - strings as they are.
//
// A value of `""` (two double quotes) is read as empty, so that an empty
// string or list can be written visibly.
//
// An unknown path, a path naming a group of fields, or a value that does
// not parse is refused with an error naming the path, and cfg is left as
// it was. Limits (a minimum, a maximum) are not checked: the server checks
// them.
func ParseConfigField(cfg *pxperfv1.Config, path, value string) (string, error) {
	m, fd, canon, err := lookup(cfg.ProtoReflect(), path, false)
	if err != nil {
		return "", err
	}
	if isGroup(fd) {
		return "", fmt.Errorf("client: config field %q: is a group of fields; set one of them, such as %q", path, canon+"."+string(fd.Message().Fields().Get(0).Name()))
	}
	v, err := parseValue(m, fd, strings.TrimSpace(value))
	if err != nil {
		return "", fmt.Errorf("client: config field %q: %w", path, err)
	}
	// Only now create the groups on the way, so that a refused value leaves
	// cfg alone. The walk cannot fail: it just succeeded.
	m, _, _, _ = lookup(cfg.ProtoReflect(), canon, true)
	m.Set(fd, v)
	return canon, nil
}

// FormatConfigField returns the field of cfg at path (as [ParseConfigField]
// takes it) written as ParseConfigField reads it: enums by their whole
// name, durations as Go writes them, lists joined by commas. An empty
// string or list is returned empty, not as `""`. A path naming a group of
// fields, such as "throttle", returns the group as JSON with proto field
// names.
func FormatConfigField(cfg *pxperfv1.Config, path string) (string, error) {
	m, fd, _, err := lookup(cfg.ProtoReflect(), path, false)
	if err != nil {
		return "", err
	}
	v := m.Get(fd)
	switch {
	case isGroup(fd):
		b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(v.Message().Interface())
		if err != nil {
			return "", fmt.Errorf("client: config field %q: %w", path, err)
		}
		return string(b), nil
	case fd.IsList():
		l := v.List()
		items := make([]string, l.Len())
		for i := range items {
			items[i] = formatScalar(fd, l.Get(i))
		}
		return strings.Join(items, ","), nil
	}
	return formatScalar(fd, v), nil
}

// ConfigFieldPaths returns the paths, with proto field names, of the single
// fields at path: path itself for a single field such as "memory.maxEntries"
// ("memory.max_entries"), each field of a group such as "throttle"
// ("throttle.mode", "throttle.max_updates_per_second", …), in proto order.
// An unknown path is refused as [ParseConfigField] refuses it.
func ConfigFieldPaths(path string) ([]string, error) {
	_, fd, canon, err := lookup((&pxperfv1.Config{}).ProtoReflect(), path, false)
	if err != nil {
		return nil, err
	}
	return fieldPaths(fd, canon), nil
}

// fieldPaths returns the paths of the single fields at fd, found at path.
func fieldPaths(fd protoreflect.FieldDescriptor, path string) []string {
	if !isGroup(fd) {
		return []string{path}
	}
	var paths []string
	fields := fd.Message().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		paths = append(paths, fieldPaths(f, path+"."+string(f.Name()))...)
	}
	return paths
}

// lookup walks path (field names, proto or JSON, joined by dots) from m
// and returns the message holding the last field, that field, and the path
// with proto names. With mutable, the groups on the way are created in m.
func lookup(m protoreflect.Message, path string, mutable bool) (protoreflect.Message, protoreflect.FieldDescriptor, string, error) {
	if path == "" {
		return nil, nil, "", errors.New(`client: config field: empty path; want one such as "memory.max_entries"`)
	}
	segs := strings.Split(path, ".")
	canon := make([]string, 0, len(segs))
	for i, seg := range segs {
		fields := m.Descriptor().Fields()
		fd := fields.ByName(protoreflect.Name(seg))
		if fd == nil {
			fd = fields.ByJSONName(seg)
		}
		if fd == nil {
			names := make([]string, fields.Len())
			for j := range names {
				names[j] = string(fields.Get(j).Name())
			}
			where := "the config"
			if i > 0 {
				where = strings.Join(canon, ".")
			}
			return nil, nil, "", fmt.Errorf("client: config field %q: %s has no field %q; it has %s", path, where, seg, strings.Join(names, ", "))
		}
		canon = append(canon, string(fd.Name()))
		if i == len(segs)-1 {
			return m, fd, strings.Join(canon, "."), nil
		}
		if !isGroup(fd) {
			return nil, nil, "", fmt.Errorf("client: config field %q: %s is a single field, not a group with a field %q", path, strings.Join(canon, "."), segs[i+1])
		}
		if mutable {
			m = m.Mutable(fd).Message()
		} else {
			m = m.Get(fd).Message()
		}
	}
	panic("unreachable: strings.Split returns at least one element")
}

// isGroup reports whether fd is a message of config fields, as opposed to a
// value (a scalar, an enum, a duration, a list).
func isGroup(fd protoreflect.FieldDescriptor) bool {
	return fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && !isDuration(fd)
}

func isDuration(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Duration"
}

// parseValue parses s, trimmed, for the field fd of m.
func parseValue(m protoreflect.Message, fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	if s == `""` {
		s = ""
	}
	if fd.IsMap() {
		return protoreflect.Value{}, errors.New("map fields cannot be set from a string")
	}
	if !fd.IsList() {
		return parseScalar(fd, s)
	}
	list := m.NewField(fd).List()
	if s == "" {
		return protoreflect.ValueOfList(list), nil
	}
	for i, item := range strings.Split(s, ",") {
		v, err := parseScalar(fd, strings.TrimSpace(item))
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("item %d: %w", i, err)
		}
		list.Append(v)
	}
	return protoreflect.ValueOfList(list), nil
}

// parseScalar parses s as one value of fd's kind.
func parseScalar(fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	bad := func(want string) (protoreflect.Value, error) {
		return protoreflect.Value{}, fmt.Errorf("%q is not %s", s, want)
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		v, err := strconv.ParseBool(s)
		if err != nil {
			return bad("true or false")
		}
		return protoreflect.ValueOfBool(v), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		v, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return bad("an integer from -2147483648 to 2147483647")
		}
		return protoreflect.ValueOfInt32(int32(v)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad("a 64-bit integer")
		}
		return protoreflect.ValueOfInt64(v), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return bad("a whole number from 0 to 4294967295")
		}
		return protoreflect.ValueOfUint32(uint32(v)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return bad("a whole number from 0 to 2^64-1")
		}
		return protoreflect.ValueOfUint64(v), nil
	case protoreflect.FloatKind:
		v, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return bad("a number")
		}
		return protoreflect.ValueOfFloat32(float32(v)), nil
	case protoreflect.DoubleKind:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad("a number")
		}
		return protoreflect.ValueOfFloat64(v), nil
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s), nil
	case protoreflect.EnumKind:
		n, err := ParseEnum(fd.Enum(), s)
		if err != nil {
			return protoreflect.Value{}, err
		}
		return protoreflect.ValueOfEnum(n), nil
	case protoreflect.MessageKind:
		if isDuration(fd) {
			d, err := time.ParseDuration(s)
			if err != nil {
				return bad("a duration such as 250ms, 30s or 1h30m")
			}
			return protoreflect.ValueOfMessage(durationpb.New(d).ProtoReflect()), nil
		}
	}
	return protoreflect.Value{}, fmt.Errorf("fields of type %v cannot be set from a string", fd.Kind())
}

// ParseEnum returns the value of the enum e named s, in any case, with or
// without the prefix its values share, and with "-" for "_":
// "THROTTLE_MODE_FIXED", "fixed" and "Fixed" are all
// THROTTLE_MODE_FIXED; "release-memory" is
// OPTIMIZE_ACTION_RELEASE_MEMORY. The zero value (…_UNSPECIFIED) is found
// like any other: callers that refuse it check for 0. An unknown name is
// refused with an error listing the others.
func ParseEnum(e protoreflect.EnumDescriptor, s string) (protoreflect.EnumNumber, error) {
	name := strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	values := e.Values()
	for _, n := range []string{name, enumPrefix(e) + name} {
		if v := values.ByName(protoreflect.Name(n)); v != nil {
			return v.Number(), nil
		}
	}
	var names []string
	for i := range values.Len() {
		if v := values.Get(i); v.Number() != 0 {
			names = append(names, string(v.Name()))
		}
	}
	return 0, fmt.Errorf("%q is not a %s; give one of %s", s, e.Name(), strings.Join(names, ", "))
}

// enumPrefix returns the prefix the values of e share by the AIP
// convention, taken from the zero value: "THROTTLE_MODE_" from
// THROTTLE_MODE_UNSPECIFIED. Empty when the zero value is not named so.
func enumPrefix(e protoreflect.EnumDescriptor) string {
	zero := e.Values().ByNumber(0)
	if zero == nil {
		return ""
	}
	name := string(zero.Name())
	if !strings.HasSuffix(name, "_UNSPECIFIED") {
		return ""
	}
	return strings.TrimSuffix(name, "UNSPECIFIED")
}

// formatScalar writes one value of fd's kind as parseScalar reads it.
func formatScalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(v.Enum()))
	case protoreflect.FloatKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 32)
	case protoreflect.DoubleKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case protoreflect.MessageKind:
		if isDuration(fd) {
			d, _ := v.Message().Interface().(*durationpb.Duration)
			return d.AsDuration().String()
		}
	}
	return v.String()
}

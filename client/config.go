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
// config. Paths are proto field names joined by dots, as in the config file
// and the update mask: "memory.max_entries", "throttle.mode". Values are
// written as on a command line:
//
//   - numbers in decimal: "5000", "0.75";
//   - booleans: "true", "false" (and the other forms of [strconv.ParseBool]);
//   - enums by name, whole or without the enum's prefix, in any case:
//     "THROTTLE_MODE_FIXED", "fixed";
//   - durations as Go writes them: "250ms", "1h30m";
//   - repeated fields as a comma-separated list, which replaces the whole
//     list: "count,size"; "" empties it;
//   - strings as they are.
//
// An unknown path, a path naming a group of fields, or a value that does
// not parse is refused before anything is sent, with an error naming the
// path; with no fields, [ErrNoPaths]. Limits (a minimum, a maximum) are the
// server's to check: see [Client.SetConfig].
func (c *Client) SetConfigFields(ctx context.Context, fields map[string]string) (*pxperfv1.Config, error) {
	if len(fields) == 0 {
		return nil, ErrNoPaths
	}
	cfg := &pxperfv1.Config{}
	paths := slices.Sorted(maps.Keys(fields)) // the first bad path is always the same one
	for _, path := range paths {
		if err := setConfigField(cfg, path, fields[path]); err != nil {
			return nil, err
		}
	}
	return c.SetConfig(ctx, cfg, paths...)
}

// ConfigField returns the server's config field at path, written as
// [Client.SetConfigFields] reads it: enums by their whole name, durations as
// Go writes them, lists joined by commas. A path naming a group of fields,
// such as "throttle", returns the group as JSON.
func (c *Client) ConfigField(ctx context.Context, path string) (string, error) {
	cfg, err := c.GetConfig(ctx)
	if err != nil {
		return "", err
	}
	return configField(cfg, path)
}

// setConfigField sets the field of cfg at path to value, parsed for the
// field's type.
func setConfigField(cfg *pxperfv1.Config, path, value string) error {
	m, fd, err := lookupField(cfg.ProtoReflect(), path, true)
	if err != nil {
		return err
	}
	v, err := parseField(m, fd, value)
	if err != nil {
		return fmt.Errorf("client: config field %q: %w", path, err)
	}
	m.Set(fd, v)
	return nil
}

// configField returns the field of cfg at path, formatted.
func configField(cfg *pxperfv1.Config, path string) (string, error) {
	m, fd, err := lookupField(cfg.ProtoReflect(), path, false)
	if err != nil {
		return "", err
	}
	v := m.Get(fd)
	if fd.IsList() {
		l := v.List()
		parts := make([]string, l.Len())
		for i := range parts {
			parts[i] = formatScalar(fd, l.Get(i))
		}
		return strings.Join(parts, ","), nil
	}
	if isGroup(fd) {
		b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(v.Message().Interface())
		if err != nil {
			return "", fmt.Errorf("client: config field %q: %w", path, err)
		}
		return string(b), nil
	}
	return formatScalar(fd, v), nil
}

// lookupField walks path from m and returns the message holding the last
// field, and that field. With mutable, the messages on the way are created;
// a path naming a group of fields is then refused, since only single
// fields are set from strings.
func lookupField(m protoreflect.Message, path string, mutable bool) (protoreflect.Message, protoreflect.FieldDescriptor, error) {
	if path == "" {
		return nil, nil, errors.New("client: config field: empty path; want one such as \"memory.max_entries\"")
	}
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		fields := m.Descriptor().Fields()
		fd := fields.ByName(protoreflect.Name(seg))
		if fd == nil {
			names := make([]string, fields.Len())
			for j := range names {
				names[j] = string(fields.Get(j).Name())
			}
			where := "the config"
			if i > 0 {
				where = strings.Join(segs[:i], ".")
			}
			return nil, nil, fmt.Errorf("client: config field %q: %s has no field %q; it has %s", path, where, seg, strings.Join(names, ", "))
		}
		if i == len(segs)-1 {
			if mutable && isGroup(fd) {
				return nil, nil, fmt.Errorf("client: config field %q: is a group of fields; set one of them, such as %q", path, path+"."+string(fd.Message().Fields().Get(0).Name()))
			}
			return m, fd, nil
		}
		if !isGroup(fd) {
			return nil, nil, fmt.Errorf("client: config field %q: %s is a single field, not a group with a field %q", path, strings.Join(segs[:i+1], "."), segs[i+1])
		}
		if mutable {
			m = m.Mutable(fd).Message()
		} else {
			m = m.Get(fd).Message()
		}
	}
	panic("unreachable") // the loop returns at the last segment
}

// isGroup reports whether fd is a message of config fields, as opposed to a
// value (a scalar, an enum, a duration, a list).
func isGroup(fd protoreflect.FieldDescriptor) bool {
	return fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && !isDuration(fd)
}

func isDuration(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Duration"
}

// parseField parses s for the field fd of m.
func parseField(m protoreflect.Message, fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	if fd.IsMap() {
		return protoreflect.Value{}, errors.New("map fields cannot be set from a string")
	}
	if !fd.IsList() {
		return parseScalar(fd, s)
	}
	list := m.NewField(fd).List()
	if strings.TrimSpace(s) == "" {
		return protoreflect.ValueOfList(list), nil
	}
	for i, part := range strings.Split(s, ",") {
		v, err := parseScalar(fd, strings.TrimSpace(part))
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("item %d: %w", i, err)
		}
		list.Append(v)
	}
	return protoreflect.ValueOfList(list), nil
}

// parseScalar parses s as one value of fd's kind.
func parseScalar(fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	bad := func(want string, err error) (protoreflect.Value, error) {
		if err != nil {
			return protoreflect.Value{}, fmt.Errorf("%q is not %s: %w", s, want, err)
		}
		return protoreflect.Value{}, fmt.Errorf("%q is not %s", s, want)
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		v, err := strconv.ParseBool(s)
		if err != nil {
			return bad("true or false", nil)
		}
		return protoreflect.ValueOfBool(v), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		v, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return bad("a 32-bit integer", numErr(err))
		}
		return protoreflect.ValueOfInt32(int32(v)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad("a 64-bit integer", numErr(err))
		}
		return protoreflect.ValueOfInt64(v), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return bad("an unsigned 32-bit integer", numErr(err))
		}
		return protoreflect.ValueOfUint32(uint32(v)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return bad("an unsigned 64-bit integer", numErr(err))
		}
		return protoreflect.ValueOfUint64(v), nil
	case protoreflect.FloatKind:
		v, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return bad("a number", numErr(err))
		}
		return protoreflect.ValueOfFloat32(float32(v)), nil
	case protoreflect.DoubleKind:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad("a number", numErr(err))
		}
		return protoreflect.ValueOfFloat64(v), nil
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s), nil
	case protoreflect.EnumKind:
		if n, ok := enumValue(fd.Enum(), s); ok {
			return protoreflect.ValueOfEnum(n), nil
		}
		return bad("one of "+strings.Join(enumNames(fd.Enum()), ", "), nil)
	case protoreflect.MessageKind:
		if isDuration(fd) {
			d, err := time.ParseDuration(s)
			if err != nil {
				return bad("a duration such as 250ms or 1h30m", nil)
			}
			return protoreflect.ValueOfMessage(durationpb.New(d).ProtoReflect()), nil
		}
	}
	return protoreflect.Value{}, fmt.Errorf("fields of type %v cannot be set from a string", fd.Kind())
}

// numErr keeps the part of a strconv error worth showing: "value out of
// range"; a syntax error says nothing the message does not.
func numErr(err error) error {
	if errors.Is(err, strconv.ErrRange) {
		return strconv.ErrRange
	}
	return nil
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

// enumValue finds the value of e named s, whole or without the enum's
// prefix, in any case.
func enumValue(e protoreflect.EnumDescriptor, s string) (protoreflect.EnumNumber, bool) {
	upper := strings.ToUpper(s)
	values := e.Values()
	for _, name := range []string{upper, enumPrefix(e) + upper} {
		if v := values.ByName(protoreflect.Name(name)); v != nil {
			return v.Number(), true
		}
	}
	return 0, false
}

// enumNames returns the short names of e's values but the zero one, for
// error messages.
func enumNames(e protoreflect.EnumDescriptor) []string {
	prefix := enumPrefix(e)
	values := e.Values()
	var names []string
	for i := range values.Len() {
		v := values.Get(i)
		if v.Number() == 0 {
			continue
		}
		names = append(names, strings.TrimPrefix(string(v.Name()), prefix))
	}
	return names
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

package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// durationName is the full name of google.protobuf.Duration, which config
// paths treat as a scalar written as a Go duration.
const durationName = "google.protobuf.Duration"

// configGet implements pxperf config get: GetConfig, whole or by path.
func (c *cli) configGet(ctx context.Context, args []string) error {
	cmd := command{
		name:     "config get",
		synopsis: "[flags] [PATH…]",
		summary: `Prints the server's effective config as indented protojson or, given field
paths (memory.max_entries) or groups (throttle), each field as PATH = VALUE, in
the form config set takes.`,
		examples: []string{
			"config get",
			"config get memory.max_entries throttle",
		},
	}
	fs := c.flags(cmd)
	conn := addConnFlags(fs)
	paths, err := c.parse(fs, conn, args, 0, -1)
	if err != nil {
		return err
	}
	// Check the paths before calling the server.
	for _, p := range paths {
		if _, _, _, err := lookupPath((&pxperfv1.Config{}).ProtoReflect(), p); err != nil {
			return usageError("config get: %v", err)
		}
	}
	cl, err := conn.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	uctx, cancel := conn.unary(ctx)
	defer cancel()
	cfg, err := cl.GetConfig(uctx)
	if err != nil {
		return conn.rpcError("config get", err)
	}
	if len(paths) == 0 {
		return writeJSON(c.stdout, cfg, true)
	}
	for _, p := range paths {
		m, fd, canon, _ := lookupPath(cfg.ProtoReflect(), p)
		for _, line := range fieldLines(m, fd, canon) {
			fmt.Fprintln(c.stdout, line)
		}
	}
	return nil
}

// configSet implements pxperf config set: UpdateConfig of the paths given.
func (c *cli) configSet(ctx context.Context, args []string) error {
	cmd := command{
		name:     "config set",
		synopsis: "[flags] PATH=VALUE…",
		summary: `Changes config fields live, all in one UpdateConfig (validated as a whole:
nothing is half-applied), and prints their new effective values. PATH is a
field path as config get shows it. VALUE is a number, true/false, an enum
name (THROTTLE_MODE_FIXED, or just fixed), a Go duration (250ms, 1h30m), or
for lists a comma list (empty clears). Fields that cannot change live (server.*,
logs.directory…) are refused with exit code 1.`,
		examples: []string{
			"config set memory.max_entries=5000 throttle.mode=THROTTLE_MODE_FIXED",
			"config set throttle.batch_timeout=50ms logs.policies=count,size",
		},
	}
	fs := c.flags(cmd)
	conn := addConnFlags(fs)
	assigns, err := c.parse(fs, conn, args, 1, -1)
	if err != nil {
		return err
	}
	cfg := &pxperfv1.Config{}
	var paths []string
	for _, a := range assigns {
		path, value, ok := strings.Cut(a, "=")
		if !ok {
			return usageError("config set: %q: want PATH=VALUE, for example memory.max_entries=5000", a)
		}
		path, err := setPath(cfg.ProtoReflect(), strings.TrimSpace(path), value)
		if err != nil {
			return usageError("config set: %v", err)
		}
		if slices.Contains(paths, path) {
			return usageError("config set: %s is given twice", path)
		}
		paths = append(paths, path)
	}
	cl, err := conn.dial()
	if err != nil {
		return err
	}
	defer cl.Close()
	uctx, cancel := conn.unary(ctx)
	defer cancel()
	resp, err := cl.Service().UpdateConfig(uctx, &pxperfv1.UpdateConfigRequest{
		Config:     cfg,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
	})
	if err != nil {
		return conn.rpcError("config set", err)
	}
	got := resp.GetConfig()
	if got == nil {
		got = &pxperfv1.Config{}
	}
	for _, p := range paths {
		m, fd, _, _ := lookupPath(got.ProtoReflect(), p)
		for _, line := range fieldLines(m, fd, p) {
			fmt.Fprintln(c.stdout, line)
		}
	}
	return nil
}

// lookupPath finds the field at path (dotted, with proto or JSON names)
// in m. It returns the message holding it, its descriptor, and the path
// with proto names, as an update mask wants it.
func lookupPath(m protoreflect.Message, path string) (protoreflect.Message, protoreflect.FieldDescriptor, string, error) {
	segs := strings.Split(path, ".")
	canon := make([]string, 0, len(segs))
	for i, seg := range segs {
		fields := m.Descriptor().Fields()
		fd := fields.ByName(protoreflect.Name(seg))
		if fd == nil {
			fd = fields.ByJSONName(seg)
		}
		if fd == nil {
			var names []string
			for j := range fields.Len() {
				names = append(names, string(fields.Get(j).Name()))
			}
			where := "the config"
			if i > 0 {
				where = strings.Join(canon, ".")
			}
			return nil, nil, "", fmt.Errorf("%s: %s has no field %q; it has %s", path, where, seg, strings.Join(names, ", "))
		}
		canon = append(canon, string(fd.Name()))
		if i == len(segs)-1 {
			return m, fd, strings.Join(canon, "."), nil
		}
		if !isGroup(fd) {
			return nil, nil, "", fmt.Errorf("%s: %s is a value, not a group of fields", path, strings.Join(canon, "."))
		}
		m = m.Mutable(fd).Message()
	}
	panic("unreachable: strings.Split returns at least one element")
}

// isGroup reports whether fd is a message of fields, not a value.
func isGroup(fd protoreflect.FieldDescriptor) bool {
	return fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && fd.Message().FullName() != durationName
}

// setPath sets the field at path in m from its string form and returns
// the path with proto field names, for the update mask.
func setPath(m protoreflect.Message, path, value string) (string, error) {
	m, fd, canon, err := lookupPath(m, path)
	if err != nil {
		return "", err
	}
	if isGroup(fd) {
		return "", fmt.Errorf("%s is a group; set its fields, for example %s.%s=…", canon, canon, fd.Message().Fields().Get(0).Name())
	}
	if fd.IsMap() {
		return "", fmt.Errorf("%s: maps cannot be set from the command line", canon)
	}
	if fd.IsList() {
		list := m.NewField(fd).List()
		if strings.TrimSpace(value) != "" {
			for item := range strings.SplitSeq(value, ",") {
				v, err := parseScalar(fd, strings.TrimSpace(item))
				if err != nil {
					return "", fmt.Errorf("%s: %w", canon, err)
				}
				list.Append(v)
			}
		}
		m.Set(fd, protoreflect.ValueOfList(list))
		return canon, nil
	}
	v, err := parseScalar(fd, strings.TrimSpace(value))
	if err != nil {
		return "", fmt.Errorf("%s: %w", canon, err)
	}
	m.Set(fd, v)
	return canon, nil
}

// parseScalar parses one value of fd's kind.
func parseScalar(fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	bad := func(want string) (protoreflect.Value, error) {
		return protoreflect.Value{}, fmt.Errorf("%q is not %s", s, want)
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return bad("true or false")
		}
		return protoreflect.ValueOfBool(b), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return bad("a 32-bit integer")
		}
		return protoreflect.ValueOfInt32(int32(n)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad("an integer")
		}
		return protoreflect.ValueOfInt64(n), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return bad("a whole number below 2^32")
		}
		return protoreflect.ValueOfUint32(uint32(n)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return bad("a whole number")
		}
		return protoreflect.ValueOfUint64(n), nil
	case protoreflect.FloatKind:
		f, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return bad("a number")
		}
		return protoreflect.ValueOfFloat32(float32(f)), nil
	case protoreflect.DoubleKind:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad("a number")
		}
		return protoreflect.ValueOfFloat64(f), nil
	case protoreflect.StringKind:
		if s == `""` { // as formatValue writes the empty string
			s = ""
		}
		return protoreflect.ValueOfString(s), nil
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(s)), nil
	case protoreflect.EnumKind:
		return parseEnum(fd.Enum(), s)
	case protoreflect.MessageKind:
		if fd.Message().FullName() == durationName {
			d, err := time.ParseDuration(s)
			if err != nil {
				return bad("a duration such as 250ms, 30s or 1h30m")
			}
			return protoreflect.ValueOfMessage(durationpb.New(d).ProtoReflect()), nil
		}
	}
	return protoreflect.Value{}, fmt.Errorf("fields of type %v cannot be set from the command line", fd.Kind())
}

// parseEnum finds a value of ed by name, in any case, with or without the
// enum's prefix: THROTTLE_MODE_FIXED, throttle_mode_fixed or fixed.
func parseEnum(ed protoreflect.EnumDescriptor, s string) (protoreflect.Value, error) {
	values := ed.Values()
	prefix := enumPrefix(ed)
	want := strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	var names []string
	for i := range values.Len() {
		name := string(values.Get(i).Name())
		if want == name || prefix+want == name {
			return protoreflect.ValueOfEnum(values.Get(i).Number()), nil
		}
		if !strings.HasSuffix(name, "_UNSPECIFIED") {
			names = append(names, name)
		}
	}
	return protoreflect.Value{}, fmt.Errorf("%q is not a %s; give one of %s", s, ed.Name(), strings.Join(names, ", "))
}

// enumPrefix returns the prefix every value name of ed shares, taken from
// its zero value: THROTTLE_MODE_ for THROTTLE_MODE_UNSPECIFIED.
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	zero := string(ed.Values().ByNumber(0).Name())
	if p, ok := strings.CutSuffix(zero, "UNSPECIFIED"); ok {
		return p
	}
	return ""
}

// fieldLines formats the field fd of m as "PATH = VALUE" lines: one, or
// one per field for a group.
func fieldLines(m protoreflect.Message, fd protoreflect.FieldDescriptor, path string) []string {
	if isGroup(fd) {
		var lines []string
		g := m.Get(fd).Message()
		fields := fd.Message().Fields()
		for i := range fields.Len() {
			lines = append(lines, fieldLines(g, fields.Get(i), path+"."+string(fields.Get(i).Name()))...)
		}
		return lines
	}
	return []string{strings.TrimRight(path+" = "+formatValue(fd, m.Get(fd)), " ")}
}

// formatValue formats a value of fd in the form [parseScalar] reads.
func formatValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	if fd.IsList() {
		var items []string
		for i := range v.List().Len() {
			items = append(items, formatScalar(fd, v.List().Get(i)))
		}
		return strings.Join(items, ",")
	}
	return formatScalar(fd, v)
}

func formatScalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(v.Enum()))
	case protoreflect.StringKind:
		if v.String() == "" {
			return `""`
		}
		return v.String()
	case protoreflect.DoubleKind, protoreflect.FloatKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case protoreflect.MessageKind:
		if d, ok := v.Message().Interface().(*durationpb.Duration); ok {
			return d.AsDuration().String()
		}
		b, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(v.Message().Interface())
		return string(b)
	}
	return fmt.Sprint(v.Interface())
}

package testentry

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Populate sets every field of m, recursing into sub-messages and putting
// two elements into each list, each to a value that is not its default.
// Scalars take the most bytes their encoding allows where that is an edge
// (negative int32, largest uint64); strings are not ASCII. It returns an
// error for a kind of field it does not know how to fill, so that a test
// walking the contract does not silently leave a field out.
func Populate(m protoreflect.Message) error {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		if err := SetField(m, fields.Get(i)); err != nil {
			return err
		}
	}
	return nil
}

// SetField sets fd in m as Populate does.
func SetField(m protoreflect.Message, fd protoreflect.FieldDescriptor) error {
	switch {
	case fd.IsMap():
		return fmt.Errorf("%s: Populate does not fill maps", fd.FullName())
	case fd.IsList():
		l := m.Mutable(fd).List()
		for j := range 2 {
			if fd.Message() != nil {
				if err := Populate(l.AppendMutable().Message()); err != nil {
					return err
				}
				continue
			}
			v, err := scalarValue(fd, j)
			if err != nil {
				return err
			}
			l.Append(v)
		}
	case fd.Message() != nil:
		return Populate(m.Mutable(fd).Message())
	default:
		v, err := scalarValue(fd, 0)
		if err != nil {
			return err
		}
		m.Set(fd, v)
	}
	return nil
}

// scalarValue returns a value for fd that is not its default; strings
// differ with j.
func scalarValue(fd protoreflect.FieldDescriptor, j int) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true), nil
	case protoreflect.EnumKind:
		vs := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vs.Get(vs.Len() - 1).Number()), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(-7), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(math.MinInt64 + 1), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(math.MaxUint32), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(math.MaxUint64), nil
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(1.5), nil
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(2.5), nil
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d-é✓", fd.Name(), j)), nil
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{0, 0xff, 0xfe, byte(j)}), nil
	}
	return protoreflect.Value{}, fmt.Errorf("%s: Populate does not fill kind %v", fd.FullName(), fd.Kind())
}

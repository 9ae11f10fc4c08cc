package wire

import (
	"fmt"
	"strings"
	"unicode/utf8"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Failure is an entry of a publish request that did not decode: its place
// in the request holds an empty entry, to be refused with this reason
// while the others are stored.
type Failure struct {
	// Index is the entry's place in the request.
	Index int
	// Field is the path of the field that is wrong, as protovalidate
	// writes paths ("url", "request_headers[1].value"); "" when the
	// entry's bytes are malformed where no field can be named.
	Field string
	// Reason says what is wrong.
	Reason string
}

// failuresField is the unknown field of a publish request in which
// [UnmarshalPublish] leaves its failures: gRPC's codec hands the handler
// the request message alone, so they travel with it. It is the largest
// field number protobuf allows, which the contract never uses. A client
// that sends it only refuses its own entries.
const failuresField protowire.Number = protowire.MaxValidNumber

// The fields of one failure inside failuresField.
const (
	failureIndex  protowire.Number = 1
	failureField  protowire.Number = 2
	failureReason protowire.Number = 3
)

func appendFailures(b []byte, fails []Failure) []byte {
	for _, f := range fails {
		var m []byte
		m = protowire.AppendTag(m, failureIndex, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(f.Index))
		m = protowire.AppendTag(m, failureField, protowire.BytesType)
		m = protowire.AppendString(m, f.Field)
		m = protowire.AppendTag(m, failureReason, protowire.BytesType)
		m = protowire.AppendString(m, f.Reason)
		b = protowire.AppendTag(b, failuresField, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}

// Failures returns the entries of m, a publish request that
// [UnmarshalPublish] decoded, that did not decode, in order; none for any
// other message. Failures naming an index m has no entry at are left out.
func Failures(m proto.Message) []Failure {
	var n int
	switch m := m.(type) {
	case *pxperfv1.PublishStreamRequest:
		n = len(m.GetEntries())
	case *pxperfv1.PublishRequest:
		n = len(m.GetEntries())
	default:
		return nil
	}
	var fails []Failure
	b := m.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, size := protowire.ConsumeField(b)
		if size < 0 {
			break
		}
		if num == failuresField && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[protowire.SizeTag(num):])
			if f, ok := parseFailure(v); ok && f.Index < n {
				fails = append(fails, f)
			}
		}
		b = b[size:]
	}
	return fails
}

func parseFailure(b []byte) (f Failure, ok bool) {
	index := -1
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return f, false
		}
		b = b[n:]
		switch {
		case num == failureIndex && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 || v > 1<<31 {
				return f, false
			}
			index, b = int(v), b[n:]
			continue
		case (num == failureField || num == failureReason) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return f, false
			}
			if num == failureField {
				f.Field = string(v)
			} else {
				f.Reason = string(v)
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return f, false
		}
		b = b[n:]
	}
	f.Index = index
	return f, index >= 0 && f.Reason != ""
}

// locateFailure describes why entry i, whose bytes are b, did not decode
// (err is proto.Unmarshal's error): the first field whose string is not
// valid UTF-8 or whose bytes are malformed, found by walking b with the
// contract's descriptors, since protobuf's errors do not name the field.
func locateFailure(i int, b []byte, err error) Failure {
	path, reason := locate(b, (&pxperfv1.Entry{}).ProtoReflect().Descriptor())
	if reason == "" {
		reason = err.Error()
	}
	return Failure{Index: i, Field: path, Reason: reason}
}

// locate returns the path of the first field of b, a message of type md,
// that protobuf cannot decode, and why; "" and "" when it finds none.
func locate(b []byte, md protoreflect.MessageDescriptor) (path, reason string) {
	seen := map[protowire.Number]int{} // occurrences of each repeated field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "malformed protobuf: a field's tag cannot be read"
		}
		fd := md.Fields().ByNumber(num)
		name := ""
		if fd != nil {
			name = string(fd.Name())
			if fd.IsList() {
				name = fmt.Sprintf("%s[%d]", name, seen[num])
				seen[num]++
			}
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return name, "malformed protobuf: the field's value is cut short or cannot be read"
		}
		if fd != nil && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[n:])
			switch {
			case fd.Kind() == protoreflect.StringKind && !utf8.Valid(v):
				return name, "not valid UTF-8: strings must be UTF-8"
			case fd.Kind() == protoreflect.MessageKind:
				if sub, why := locate(v, fd.Message()); why != "" {
					return strings.TrimSuffix(name+"."+sub, "."), why
				}
			}
		}
		b = b[n+m:]
	}
	return "", ""
}

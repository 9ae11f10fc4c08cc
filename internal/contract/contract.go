// Package contract reads the rules of pxperf's contract (proto/pxperf/v1)
// from the generated descriptors, so that code fitting values to a limit
// takes the limit from its one home, the proto, rather than a copy.
package contract

import (
	"fmt"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Rules returns the buf.validate rules of m's field called name, or an
// empty FieldRules when the field has none (whose getters then give zero
// values). It panics when m has no such field: a field renamed in the
// contract without its reader, which the reader's tests catch.
func Rules(m proto.Message, name protoreflect.Name) *validate.FieldRules {
	md := m.ProtoReflect().Descriptor()
	fd := md.Fields().ByName(name)
	if fd == nil {
		panic(fmt.Sprintf("contract: %s has no field %s", md.FullName(), name))
	}
	r, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
	if r == nil {
		return &validate.FieldRules{}
	}
	return r
}

package filter

import (
	"errors"

	"github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Resolve returns a filter equal in meaning to f without a query: f itself
// when its query is empty, else the query parsed by [Parse] and combined
// with f's other fields.
//
// The two combine by AND, field by field: their exclusions are joined, and
// every other field may be set in one of them only, since two hosts (or two
// lists of methods) cannot be ANDed in one field. A field set in both, or a
// query that does not parse, is a [*FieldError] on "query"; for the latter,
// its Syntax holds the [*SyntaxError] with the position.
func Resolve(f *pxperfv1.Filter) (*pxperfv1.Filter, error) {
	if f.GetQuery() == "" {
		return f, nil
	}
	if n := len(f.GetQuery()); n > maxQueryLen {
		return nil, fieldError("query", "must be at most %d bytes, got %d; shorten it", maxQueryLen, n)
	}
	q, err := Parse(f.GetQuery())
	if err != nil {
		fe := fieldError("query", "%v", err)
		fe.Syntax, _ = errors.AsType[*SyntaxError](err)
		return nil, fe
	}
	out := proto.CloneOf(f)
	out.Query = ""
	dst := out.ProtoReflect()
	excludes := dst.Descriptor().Fields().ByName("exclude")
	q.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd == excludes:
			out.Exclude = append(out.Exclude, q.Exclude...)
		case dst.Has(fd):
			err = fieldError("query", "the query sets %s, which the filter sets too; set it in one of them", fd.Name())
			return false
		default:
			dst.Set(fd, v)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(out.Exclude) > maxExclude {
		return nil, fieldError("query", "the query's exclusions and the filter's make %d, more than %d; remove some", len(out.Exclude), maxExclude)
	}
	return out, nil
}

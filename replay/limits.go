package replay

import (
	"strings"
	"sync"
	"unicode/utf8"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// contract holds the limits of the contract (proto/pxperf/v1/entry.proto)
// that an entry describing a live exchange is fitted to, so that the
// server does not reject it.
type contract struct {
	headers     int // headers in request_headers, and in response_headers
	name, value int // bytes of a header's name, of its value
	host        int // bytes of host, and of proxy_decision.upstream
	message     int // bytes of error.message
	contentType int // bytes of a body's content_type
}

// limits reads the contract's limits from its rules, once.
var limits = sync.OnceValue(func() contract {
	entry := (&pxperfv1.Entry{}).ProtoReflect().Descriptor()
	header := (&pxperfv1.Header{}).ProtoReflect().Descriptor()
	errs := (&pxperfv1.EntryError{}).ProtoReflect().Descriptor()
	body := (&pxperfv1.Body{}).ProtoReflect().Descriptor()
	return contract{
		headers:     int(rules(entry, "request_headers").GetRepeated().GetMaxItems()),
		name:        int(rules(header, "name").GetString().GetMaxBytes()),
		value:       int(rules(header, "value").GetString().GetMaxBytes()),
		host:        int(rules(entry, "host").GetString().GetMaxBytes()),
		message:     int(rules(errs, "message").GetString().GetMaxBytes()),
		contentType: int(rules(body, "content_type").GetString().GetMaxBytes()),
	}
})

// rules returns the protovalidate rules of md's field.
func rules(md protoreflect.MessageDescriptor, field protoreflect.Name) *validate.FieldRules {
	r, _ := proto.GetExtension(md.Fields().ByName(field).Options(), validate.E_Field).(*validate.FieldRules)
	return r
}

// clean makes s valid UTF-8 (protobuf strings must be) of at most max
// bytes, cut at a character boundary.
func clean(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

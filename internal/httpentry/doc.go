// Package httpentry holds what describing an HTTP exchange as a pxperf
// entry takes, for the recording proxy (package proxy) and for replay
// (package replay), which describe their exchanges alike:
//
//   - the contract's limits on an entry, read from the rules of
//     proto/pxperf/v1/entry.proto ([Contract]), and strings fitted to them
//     ([Clean], [MediaType]);
//   - header lists within those limits, credentials redacted
//     ([HeaderList]), and the size of headers and of a response's head on
//     the wire ([HeaderSize], [ResponseHeadSize]);
//   - the timings of the transport's phases, through net/http/httptrace
//     ([Timer]);
//   - the kind of error that ended an exchange ([ErrorKind]).
//
// What differs between the two, such as which errors count as the
// upstream proxy's, stays with each.
package httpentry

package archive

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxLineBytes is the longest line read back: an entry is at most 1 MiB
// without its bodies, and each of its two bodies, request and response, at
// most 64 MiB (memory.max_body_size), which is about 172 MiB once in
// base64. Longer lines are skipped as corrupt, so a file with no newlines
// cannot make a reader hold it all.
const maxLineBytes = 192 << 20

// unmarshal reads lines back. Unknown fields are ignored, so that files
// written by a later version with more fields still read.
var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// decodeLine decodes one line (without its newline) into a new entry.
func decodeLine(line []byte) (*pxperfv1.Entry, error) {
	e := new(pxperfv1.Entry)
	if err := unmarshal.Unmarshal(line, e); err != nil {
		return nil, err
	}
	return e, nil
}

// key is what a reader needs of a line to decide whether to decode it.
type key struct {
	id      uint64
	idOK    bool // id was read from the front of the line
	start   time.Time
	startOK bool // start was read; false also when the line may have none
}

// lineKey reads the id and the start time from the front of a line written
// by appendEntry ({"id":"N","request_id":"…","start_time":"…",…}) without
// decoding the rest. Where the line does not start that way, idOK or
// startOK is false and the caller decodes the line to know. It never
// accepts a value that protojson would read differently (FuzzLineKey).
func lineKey(line []byte) key {
	var k key
	rest, ok := bytes.CutPrefix(line, []byte(`{"id":"`))
	if !ok {
		return k
	}
	// Digits only, no leading zero, no overflow: anything else is left to
	// protojson.
	var id uint64
	i := 0
	for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		d := uint64(rest[i] - '0')
		if id > (1<<64-1-d)/10 {
			return k
		}
		id = id*10 + d
	}
	if i == 0 || i >= len(rest) || rest[i] != '"' || (rest[0] == '0' && i > 1) {
		return k
	}
	rest = rest[i+1:]
	if len(rest) == 0 || (rest[0] != ',' && rest[0] != '}') {
		return k
	}
	k.id, k.idOK = id, true
	if r, ok := bytes.CutPrefix(rest, []byte(`,"request_id":"`)); ok {
		n := skipString(r)
		if n < 0 {
			return k
		}
		rest = r[n:]
	}
	r, ok := bytes.CutPrefix(rest, []byte(`,"start_time":"`))
	if !ok {
		return k
	}
	end := bytes.IndexByte(r, '"')
	if end < 0 {
		return k
	}
	s := r[:end]
	if bytes.IndexByte(s, '\\') >= 0 {
		return k
	}
	t, ok := parseTimestamp(string(s))
	if !ok {
		return k
	}
	k.start, k.startOK = t, true
	return k
}

// skipString returns how many bytes of b, which follows the opening quote of
// a JSON string, make up the rest of the string with its closing quote; -1
// if it does not end.
func skipString(b []byte) int {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i++
		}
	}
	return -1
}

// parseTimestamp parses s with exactly the checks protojson applies to a
// google.protobuf.Timestamp.
func parseTimestamp(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	if secs := t.Unix(); secs < minTimestampSeconds || secs > maxTimestampSeconds {
		return time.Time{}, false
	}
	i := strings.LastIndexByte(s, '.')
	j := strings.LastIndexAny(s, "Z-+")
	if i >= 0 && j >= i && j-i > len(".999999999") {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// entryTime returns ts as the time the archive writes for it (normalised
// and clamped like appendTimestamp does), and false when ts is nil.
func entryTime(ts *timestamppb.Timestamp) (time.Time, bool) {
	if ts == nil {
		return time.Time{}, false
	}
	sec, nsec := ts.GetSeconds(), int64(ts.GetNanos())
	sec = min(max(sec, minTimestampSeconds-10), maxTimestampSeconds+10)
	t := time.Unix(sec, nsec).UTC()
	if t.Unix() < minTimestampSeconds {
		return time.Unix(minTimestampSeconds, 0).UTC(), true
	}
	if t.Unix() > maxTimestampSeconds {
		return time.Unix(maxTimestampSeconds, 999999999).UTC(), true
	}
	return t, true
}

// Errors from lineReader.next for lines that are skipped.
var (
	errTorn    = errors.New("last line has no newline")
	errTooLong = errors.New("line too long")
)

// lineReader splits a file into lines. It returns each complete line
// without its newline; a final fragment without a newline (a write torn by
// a crash) is reported as errTorn, a line over maxLineBytes as errTooLong.
type lineReader struct {
	br   *bufio.Reader
	long []byte // assembles lines longer than br's buffer
	max  int
	off  int64 // bytes of the complete lines returned or skipped so far
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: maxLineBytes}
}

// next returns the next line, valid until the following call; io.EOF at
// the end.
func (r *lineReader) next() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == nil {
		r.off += int64(len(line))
		return line[:len(line)-1], nil
	}
	if err != bufio.ErrBufferFull {
		if err == io.EOF && len(line) > 0 {
			return nil, errTorn
		}
		return nil, err
	}
	r.long = append(r.long[:0], line...)
	n := int64(len(line))
	tooLong := false
	for {
		line, err = r.br.ReadSlice('\n')
		n += int64(len(line))
		if !tooLong {
			if len(r.long)+len(line) > r.max {
				tooLong = true
				r.long = r.long[:0]
			} else {
				r.long = append(r.long, line...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			return nil, errTorn
		case err != nil:
			return nil, err
		}
		r.off += n
		if tooLong {
			return nil, errTooLong
		}
		return r.long[:len(r.long)-1], nil
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"
	"time"

	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/spf13/cobra"
)

// maxBatchBytes bounds the encoded size of one PublishStream message,
// well under the server's default 16 MiB limit, whatever --batch says:
// entries with large bodies go in smaller batches.
const maxBatchBytes = 4 << 20

// shownRejections is how many rejections publish prints.
const shownRejections = 10

// input is one entry read by publish, or why it could not be read. pos
// is where it is in the input: a line number for JSON Lines, an index
// into log.entries for HAR.
type input struct {
	entry *pxperfv1.Entry
	pos   int
	err   error
}

// rejection is an entry refused by publish or by the server.
type rejection struct {
	pos int
	msg string
}

// publishFlush is how long an entry read waits for more to fill its batch
// before the batch is sent anyway.
const publishFlush = 200 * time.Millisecond

// publish returns pxperf publish: entries from JSON Lines or HAR over
// one PublishStream.
func (c *cli) publish() *cobra.Command {
	cmd, conn := c.command(command{
		use:   "publish [flags] [FILE]",
		short: "publish entries: JSON Lines, or a HAR file with --har",
		summary: `Publishes the entries in FILE, or on standard input when FILE is absent or -:
JSON Lines with one pxperf.v1.Entry a line in protojson (as archive files and
tail --json write them), or with --har a HAR 1.2 document (as browsers save
from their network panel). Entries are sent in batches over one PublishStream,
each as soon as it is full or 200 ms after its first entry was read, so that
a pipe (tail -f … | pxperf publish) is published as it comes.
It prints how many were accepted and rejected, and the first rejections.
Exit code 1 when any entry was rejected.`,
		examples: []string{
			"publish entries.jsonl",
			"publish --har session.har",
			"tail --json --count 100 | pxperf publish --server other:50051",
		},
		minArgs: 0,
		maxArgs: 1,
	})
	fs := cmd.Flags()
	har := fs.Bool("har", false, "the input is a HAR 1.2 document, not JSON Lines")
	batch := fs.Int("batch", 500, "most entries per PublishStream message, 1..10000")
	cmd.RunE = c.runE(conn, func(ctx context.Context, pos []string) error {
		if *batch < 1 || *batch > 10000 {
			return usageError("publish: --batch %d: want 1..10000", *batch)
		}
		name, r := "standard input", c.stdin
		if len(pos) == 1 && pos[0] != "-" {
			f, err := os.Open(pos[0])
			if err != nil {
				return failure("publish: %v", err)
			}
			defer f.Close()
			name, r = pos[0], f
		}
		var inputs iter.Seq[input]
		where := func(pos int) string { return fmt.Sprintf("line %d", pos) }
		if *har {
			doc, err := readHAR(r)
			if err != nil {
				return failure("publish: %s: %v", name, err)
			}
			inputs = harInputs(doc)
			where = func(pos int) string { return fmt.Sprintf("log.entries[%d]", pos) }
		} else {
			inputs = jsonLines(r)
		}

		cl, err := conn.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		// The stream has no deadline: a large file takes as long as it takes.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := cl.Service().PublishStream(ctx)
		if err != nil {
			return conn.rpcError("publish", err)
		}
		var (
			local   []rejection // refused before sending
			sent    []int       // sent[i] is the pos of the i-th entry sent
			pending []*pxperfv1.Entry
			size    int
			read    int
		)
		flush := func() error {
			if len(pending) == 0 {
				return nil
			}
			err := stream.Send(&pxperfv1.PublishStreamRequest{Entries: pending})
			pending, size = pending[:0:0], 0
			return err
		}
		// The input is read on a goroutine of its own, so that what has been
		// read goes out within publishFlush even while the next line is slow
		// to come (a pipe from tail -f).
		ins := make(chan input)
		go func() {
			defer close(ins)
			for in := range inputs {
				select {
				case ins <- in:
				case <-ctx.Done():
					return
				}
			}
		}()
		due := time.NewTimer(publishFlush)
		due.Stop()
		defer due.Stop()
		var sendErr error
	read:
		for {
			select {
			case in, ok := <-ins:
				if !ok {
					break read
				}
				read++
				if in.err != nil {
					local = append(local, rejection{in.pos, in.err.Error()})
					continue
				}
				n := proto.Size(in.entry)
				if len(pending) > 0 && (len(pending) == *batch || size+n > maxBatchBytes) {
					if sendErr = flush(); sendErr != nil {
						break read
					}
				}
				if len(pending) == 0 {
					due.Reset(publishFlush)
				}
				pending = append(pending, in.entry)
				sent = append(sent, in.pos)
				size += n
			case <-due.C:
				if sendErr = flush(); sendErr != nil {
					break read
				}
			}
		}
		if sendErr == nil {
			sendErr = flush()
		}
		// A failed Send is io.EOF: the status comes with the response.
		resp, err := stream.CloseAndRecv()
		if err != nil {
			return conn.rpcError(fmt.Sprintf("publish: after %d of %d entries read", len(sent), read), err)
		}
		if sendErr != nil && !errors.Is(sendErr, io.EOF) {
			return conn.rpcError("publish", sendErr)
		}
		if read == 0 {
			return failure("publish: no entries in %s", name)
		}

		rejected := append([]rejection(nil), local...)
		for _, r := range resp.GetRejections() {
			p := -1
			if i := r.GetIndex(); i < uint64(len(sent)) {
				p = sent[i]
			}
			rejected = append(rejected, rejection{p, rejectionText(r.GetRejection())})
		}
		slices.SortStableFunc(rejected, func(a, b rejection) int { return a.pos - b.pos })
		total := uint64(len(local)) + resp.GetRejected()
		fmt.Fprintf(c.stdout, "accepted %d, rejected %d", resp.GetAccepted(), total)
		if resp.GetAccepted() > 0 {
			fmt.Fprintf(c.stdout, " (ids %d..%d)", resp.GetFirstId(), resp.GetLastId())
		}
		fmt.Fprintln(c.stdout)
		for i, r := range rejected {
			if i == shownRejections {
				fmt.Fprintf(c.stdout, "… and %d more rejections\n", total-uint64(i))
				break
			}
			fmt.Fprintf(c.stdout, "rejected %s: %s\n", where(r.pos), r.msg)
		}
		if total > 0 {
			return failure("publish: %d of %d entries rejected", total, read)
		}
		return nil
	})
	return cmd
}

// rejectionText formats a rejection: its message and field violations.
func rejectionText(r *pxperfv1.Rejection) string {
	var b strings.Builder
	b.WriteString(r.GetMessage())
	for _, v := range r.GetFieldViolations() {
		if line := v.GetField() + ": " + v.GetDescription(); !strings.Contains(r.GetMessage(), line) {
			fmt.Fprintf(&b, "\n  %s", line)
		}
	}
	return b.String()
}

// jsonLines reads one protojson Entry per line; blank lines are skipped.
// A line that is not an Entry is an input with an error; a read error
// ends the sequence with one.
func jsonLines(r io.Reader) iter.Seq[input] {
	return func(yield func(input) bool) {
		br := bufio.NewReaderSize(r, 64<<10)
		for n := 1; ; n++ {
			line, err := br.ReadBytes('\n')
			if t := bytes.TrimSpace(line); len(t) > 0 {
				e := &pxperfv1.Entry{}
				in := input{entry: e, pos: n}
				if uerr := protojson.Unmarshal(t, e); uerr != nil {
					in = input{pos: n, err: fmt.Errorf("not a pxperf.v1.Entry in protojson: %w", uerr)}
				}
				if !yield(in) {
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					yield(input{pos: n, err: err})
				}
				return
			}
		}
	}
}

// harInputs maps the entries of a HAR document.
func harInputs(doc *harDocument) iter.Seq[input] {
	return func(yield func(input) bool) {
		for i := range doc.Log.Entries {
			e, err := entryFromHAR(&doc.Log.Entries[i])
			if !yield(input{entry: e, pos: i, err: err}) {
				return
			}
		}
	}
}

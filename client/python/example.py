#!/usr/bin/python3
"""Prints the entries a pxperf server receives, live, one line each
(id, method, status, url), and keeps going across server restarts.

    /usr/bin/python3 client/python/example.py --server 127.0.0.1:50051
    /usr/bin/python3 client/python/example.py --filter 'status:>=400' --tail 20

PXPERF_TOKEN, when set, is sent as the bearer token. Ctrl-C stops it.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pxperf_client import Client  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description="Print live pxperf entries, one line each.")
    p.add_argument("--server", default="127.0.0.1:50051", help="the server's gRPC address, host:port")
    p.add_argument("--filter", default="", help='a filter query, e.g. "status:>=400 host:api"')
    p.add_argument("--tail", type=int, default=0, help="start with the last N matching entries")
    p.add_argument("--start-id", type=int, default=0, help="start from this id (resume)")
    p.add_argument("--count", type=int, default=0, help="stop after this many entries (0: never)")
    args = p.parse_args()

    def on_retry(err, attempt, delay):
        print(f"# reconnecting in {delay:.1f}s (attempt {attempt}): {err.code().name}", file=sys.stderr, flush=True)

    seen = 0
    with Client(args.server, token=os.environ.get("PXPERF_TOKEN") or None) as c:
        w = c.watch(
            args.filter or None,
            tail=args.tail or None,
            start_id=args.start_id or None,
            on_retry=on_retry,
        )
        try:
            for msg in w:
                kind = msg.WhichOneof("event")
                if kind == "gap":
                    print(f"# missed ids {msg.gap.first_missed_id}..{msg.gap.last_missed_id}", flush=True)
                if kind != "batch":
                    continue
                for e in msg.batch.entries:
                    status = e.status_code or "-"
                    print(f"{e.id} {e.method} {status} {e.url}", flush=True)
                    seen += 1
                    if args.count and seen >= args.count:
                        return 0
        except KeyboardInterrupt:
            return 0
        finally:
            w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

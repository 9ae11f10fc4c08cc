# .ci/lib.sh holds the output habits that .ci/run and the ci.sh scripts it
# runs (client/ts, client/python, web, deploy) share. Source it; it runs
# nothing.

# fail prints its arguments as a failure message and fails; lines after the
# first are indented.
fail() {
	printf '%s\n' "$@" | sed -e '1s/^/    /' -e '2,$s/^/      /' >&2
	return 1
}

# say prints a line of progress, indented under the step's name.
say() {
	echo "    $*"
}

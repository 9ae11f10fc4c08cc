//go:build race

package filter

// raceEnabled is true under -race, where sync.Pool drops a quarter of what
// is put in it on purpose: regexp then builds a new matcher now and then, so
// a regexp match allocates.
const raceEnabled = true

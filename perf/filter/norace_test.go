//go:build !race

package filter

// raceEnabled is true under -race (see race_test.go).
const raceEnabled = false

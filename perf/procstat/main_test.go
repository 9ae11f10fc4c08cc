package procstat

import (
	"testing"

	"go.uber.org/goleak"
)

// The goroutine test starts goroutines; they must all have ended.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

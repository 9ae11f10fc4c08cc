package procstat

import "fmt"

// ReadAll takes a sample like [Reader.Read] and also counts the open file
// descriptors and OS threads. On Linux that lists /proc/self/fd (one
// allocation per descriptor) and parses /proc/self/status, so it suits a
// monitoring interval rather than a tight loop.
func (r *Reader) ReadAll() (Reading, error) {
	rd, err := r.Read()
	if err != nil {
		return Reading{}, err
	}
	fds, err := r.proc.NumFDs()
	if err != nil {
		return Reading{}, fmt.Errorf("procstat: count open files: %w", err)
	}
	threads, err := r.proc.NumThreads()
	if err != nil {
		return Reading{}, fmt.Errorf("procstat: count threads: %w", err)
	}
	rd.OpenFiles = uint64(max(fds, 0))
	rd.Threads = uint64(max(threads, 0))
	return rd, nil
}

// CPUPercent is the CPU the process used between two readings, in percent
// of one core: 100 is one core busy all the time, 200 two cores. It is 0
// when cur is not after prev or when the CPU time did not grow (a reading
// that failed, or readings passed in the wrong order).
func CPUPercent(prev, cur Reading) float64 {
	wall := cur.Time.Sub(prev.Time)
	cpu := cur.CPUTime - prev.CPUTime
	if wall <= 0 || cpu <= 0 {
		return 0
	}
	return 100 * float64(cpu) / float64(wall)
}

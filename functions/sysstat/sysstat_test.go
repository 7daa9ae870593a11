package sysstat

import "testing"

func TestSamplerReadsProc(t *testing.T) {
	t.Parallel()
	var s Sampler
	m, err := s.MemoryPercent()
	if err != nil || m <= 0 || m > 100 {
		t.Fatalf("memory %v%% %v", m, err)
	}
	for range 2 { // the first call samples twice, the second measures against the first
		c, err := s.CPUPercent()
		if err != nil || c < 0 || c > 100 {
			t.Fatalf("cpu %v%% %v", c, err)
		}
	}
}

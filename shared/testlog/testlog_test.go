package testlog

import (
	"log/slog"
	"sync"
	"testing"
	"time"
)

// A goroutine that keeps logging after its test has ended neither races nor panics (run with -race).
func TestLoggingAfterTheTestEnds(t *testing.T) {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	t.Run("inner", func(t *testing.T) {
		log := New(t, slog.LevelInfo)
		log.Info("during the test")
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					log.Info("after the test")
					time.Sleep(time.Millisecond)
				}
			}
		})
		time.Sleep(5 * time.Millisecond)
	})
	time.Sleep(20 * time.Millisecond) // the inner test has ended; the goroutine still logs
	close(stop)
	wg.Wait()
}

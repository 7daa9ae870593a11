package repository

import (
	"log/slog"
	"testing"

	"github.com/scrapeplatform/platform/shared/testlog"
)

func testLogger(t testing.TB) *slog.Logger { return testlog.New(t, slog.LevelDebug) }

package repository

// Metrics records the script cache's work (s3, git and http repositories). The worker's edge implements it
// with Prometheus (the telemetry package); CacheOptions.Metrics nil records nothing.
type Metrics interface {
	// ScriptFetched counts one check of the remote by its result: "downloaded", "not_modified",
	// "not_found" or "failed".
	ScriptFetched(result string)
	// StaleServed counts a cached copy served because the remote could not be used.
	StaleServed()
	// DamagedCopy counts a cached copy found changed on disk (it is downloaded again).
	DamagedCopy()
}

// FetchResults are the values ScriptFetched is called with.
var FetchResults = []string{"downloaded", "not_modified", "not_found", "failed"}

// nopMetrics records nothing.
type nopMetrics struct{}

func (nopMetrics) ScriptFetched(string) {}
func (nopMetrics) StaleServed()         {}
func (nopMetrics) DamagedCopy()         {}

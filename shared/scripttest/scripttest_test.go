package scripttest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWriteCopiesTheNamedFixturesWithTheirHelper(t *testing.T) {
	dst := t.TempDir()
	if err := Write(dst, "sleeper", "echo"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d folders, want sleeper and echo", len(entries))
	}
	for _, f := range []string{"sleeper/scraper.py", "sleeper/hostpids.py", "echo/scraper.py"} {
		st, err := os.Stat(filepath.Join(dst, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644", f, st.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "echo", "hostpids.py")); !os.IsNotExist(err) {
		t.Errorf("echo does not import hostpids, yet got a copy (%v)", err)
	}
}

func TestEveryImporterOfHostpidsGetsIt(t *testing.T) {
	dst := Dir(t)
	for _, name := range Names() {
		b, err := os.ReadFile(filepath.Join(dst, name, "scraper.py"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = os.Stat(filepath.Join(dst, name, "hostpids.py"))
		if imports := strings.Contains(string(b), "import hostpids"); imports != (err == nil) {
			t.Errorf("%s: imports hostpids %v, has hostpids.py %v", name, imports, err == nil)
		}
	}
}

func TestUnknownFixture(t *testing.T) {
	err := Write(t.TempDir(), "echo", "no_such_fixture")
	if err == nil || !strings.Contains(err.Error(), `"no_such_fixture"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestPathIsStableWithinATest(t *testing.T) {
	a, b := Path(t, "warm_state"), Path(t, "warm_state")
	if a != b {
		t.Fatalf("two calls gave %s and %s", a, b)
	}
	if filepath.Dir(Path(t, "echo")) != filepath.Dir(a) {
		t.Fatal("fixtures of one test land in different folders")
	}
	var other string
	t.Run("subtest", func(t *testing.T) { other = Path(t, "warm_state") })
	if other == a {
		t.Fatal("a subtest shares its parent's folder")
	}
	if !slices.Contains(Names(), "long_job") {
		t.Fatal("Names misses long_job")
	}
}

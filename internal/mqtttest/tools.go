package mqtttest

import (
	"os"
	"os/exec"
	"testing"
)

// Tool returns the path of a command-line tool a test drives (e.g. Debian's
// mosquitto_pub). When it is missing the test is skipped, or fails when
// EDGEGW_REQUIRE_TOOLS is set (as .ci/run sets it after installing them).
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("EDGEGW_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (EDGEGW_REQUIRE_TOOLS is set) but not installed", name)
		}
		t.Skipf("%s not installed (.ci/run lists the Debian packages the tests use)", name)
	}
	return p
}

//go:build soak

package main

import "testing"

// The long form of the downlink restart test: 10 SIGKILLs while 30,000
// commands stream from DIS to a subscriber. make soak.
func TestSoakDownlinkTenSIGKILLs(t *testing.T) {
	downlinkKillTest(t, 10, 30000)
}

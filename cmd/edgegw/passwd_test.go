package main

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestPasswdHashesTheFirstLineOfStdin(t *testing.T) {
	for _, in := range []string{"s3cret\n", "s3cret", "s3cret\r\nignored second line\n"} {
		var out, errb bytes.Buffer
		if err := cmdPasswd([]string{"-cost", "4"}, strings.NewReader(in), &out, &errb); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		hash := strings.TrimSuffix(out.String(), "\n")
		if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret")); err != nil {
			t.Fatalf("%q: printed %q, which does not verify: %v", in, out.String(), err)
		}
		if c, _ := bcrypt.Cost([]byte(hash)); c != 4 {
			t.Fatalf("cost %d, want 4", c)
		}
	}
}

func TestPasswdRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		in   string
		want string
	}{
		{nil, "\n", "the password is empty"},
		{nil, strings.Repeat("x", 73), "bcrypt uses at most 72"},
		{[]string{"-cost", "3"}, "pw", "-cost 3 is out of range"},
		{[]string{"mypassword"}, "", "takes no arguments"},
	} {
		var out bytes.Buffer
		err := cmdPasswd(tc.args, strings.NewReader(tc.in), &out, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %q: %v, want %q", tc.args, tc.in, err, tc.want)
		}
		var ue usageError
		if !asUsage(err, &ue) {
			t.Errorf("%v %q: not a usage error (exit 2)", tc.args, tc.in)
		}
	}
}

func asUsage(err error, ue *usageError) bool {
	u, ok := err.(usageError)
	*ue = u
	return ok
}

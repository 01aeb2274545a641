package main

import (
	"os"
	"os/user"
	"strconv"
	"testing"
)

// TestActorIsTheOSUser: the audit actor is the account the process runs
// as, looked up by uid; $USER and $SUDO_USER, which anyone can set, change
// nothing.
func TestActorIsTheOSUser(t *testing.T) {
	me, err := user.LookupId(strconv.Itoa(os.Getuid()))
	if err != nil {
		t.Skipf("no user database entry for uid %d: %v", os.Getuid(), err)
	}
	t.Setenv("USER", "mallory")
	t.Setenv("SUDO_USER", "mallory")
	t.Setenv("SUDO_UID", "")
	if got, want := actor(), "cli:"+me.Username; got != want {
		t.Fatalf("actor() = %q; want %q", got, want)
	}
	root, err := user.LookupId("0")
	if err != nil {
		t.Skip("no root entry")
	}
	cases := []struct {
		uid     int
		sudoUID string
		want    string
	}{
		{0, "", root.Username},
		{0, strconv.Itoa(os.Getuid()), root.Username + "(sudo:" + me.Username + ")"},
		{0, "not-a-number", root.Username},
		{4242424, "", "uid:4242424"},
		{4242424, "0", "uid:4242424"}, // SUDO_UID only counts for root
		{0, "4242424", root.Username + "(sudo:uid:4242424)"},
	}
	for _, c := range cases {
		if me.Uid == "0" && c.sudoUID == "0" {
			continue
		}
		if got := osUser(c.uid, c.sudoUID); got != c.want {
			t.Errorf("osUser(%d, %q) = %q; want %q", c.uid, c.sudoUID, got, c.want)
		}
	}
}

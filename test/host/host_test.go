package host

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestUnescapeMountinfo(t *testing.T) {
	if got := UnescapeMountinfo(`/a\040b/c\011d\134e`); got != "/a b/c\td\\e" {
		t.Errorf("UnescapeMountinfo = %q", got)
	}
}

func TestProcessIdentity(t *testing.T) {
	self, err := Identify(os.Getpid())
	if err != nil || !self.Alive() {
		t.Fatalf("Identify(self) = %+v, %v", self, err)
	}
	if (Process{PID: self.PID, StartTime: self.StartTime + 1}).Alive() {
		t.Errorf("a different start time must not name this process")
	}

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p, err := Identify(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	killed, err := p.Stop(5*time.Second, false)
	if err != nil || killed {
		t.Errorf("Stop = killed %v, %v; want a clean SIGTERM exit", killed, err)
	}
	<-done
	if p.Alive() {
		t.Errorf("still alive after Stop")
	}
}

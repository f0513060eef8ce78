//go:build unix

package devhost

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// ownProcessGroup puts the handler in its own process group, so Kill and Close reach
// any process it started too, and a terminal's Ctrl-C reaches devhost (which stops
// the handler in order) rather than racing it.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup sends SIGKILL to the handler's process group.
func killGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// terminate asks the handler to stop (SIGTERM), as the host does on shutdown.
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

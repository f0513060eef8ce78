//go:build !unix

package devhost

import (
	"errors"
	"os"
	"os/exec"
)

// ownProcessGroup does nothing where process groups are not POSIX ones.
func ownProcessGroup(*exec.Cmd) {}

// killGroup kills the handler process.
func killGroup(p *os.Process) error {
	if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// terminate has no SIGTERM to send on this platform; it kills.
func terminate(p *os.Process) error { return p.Kill() }

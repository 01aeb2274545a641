package delivery

import "syscall"

// sysProcAttr makes the kernel kill storescu when the daemon dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

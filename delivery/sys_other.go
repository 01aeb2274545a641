//go:build !linux

package delivery

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }

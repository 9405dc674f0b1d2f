//go:build !linux

package containerhosts

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

var errNotLinux = errors.New("container hosts need Linux")

func detectCgroupMode() (CgroupMode, error) { return "", errNotLinux }

func kernelRelease() (string, error) { return "", errNotLinux }

func startDetached(string, []string, []string, string) (int, error) { return 0, errNotLinux }

func isolateBuild(*exec.Cmd) error { return errNotLinux }

func signalProcess(int, syscall.Signal) error { return errNotLinux }

func detachMount(string) error { return errNotLinux }

func tryLock(*os.File) (bool, error) { return false, errNotLinux }

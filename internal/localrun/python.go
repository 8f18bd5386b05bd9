package localrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Python is the interpreter that runs the student runtime (`python3 -m distillery_student`): the one
// given, else python3 of the active environment (PATH).
type Python struct{ Path string }

// FindPython resolves the interpreter and checks that it can import the student runtime.
func FindPython(ctx context.Context, flag string) (Python, error) {
	name := flag
	if name == "" {
		name = "python3"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return Python{}, fmt.Errorf("no Python interpreter %q (%v): install Python 3 and the student runtime (pip install ./student), or pass --python PATH", name, err)
	}
	out, err := exec.CommandContext(ctx, path, "-c", "import distillery_student").CombinedOutput()
	if err != nil {
		last := strings.TrimSpace(string(out))
		if i := strings.LastIndex(last, "\n"); i >= 0 {
			last = last[i+1:]
		}
		return Python{}, fmt.Errorf("%s cannot import the student runtime (%s): install it in that environment with `pip install ./student` (from a Distillery checkout), or pass --python PATH", path, last)
	}
	return Python{Path: path}, nil
}

// stopGrace is how long the student runtime gets after SIGTERM: the trainer writes a checkpoint at the
// next step boundary, the server drains.
const stopGrace = 60 * time.Second

// Command is `python -m distillery_student args...` in its own process group, so that Ctrl-C reaches
// only this program, which then stops the runtime with SIGTERM when ctx ends (the trainer's preemption
// path: a checkpoint, then exit), and kills it if it has not stopped after stopGrace. The environment
// drops the in-cluster API address, so progress goes to the log even on a machine inside a cluster.
func (p Python) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.Path, append([]string{"-m", "distillery_student"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBERNETES_SERVICE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "PYTHONUNBUFFERED=1")
	return cmd
}

// exitError says how a runtime process ended, for messages.
func exitError(err error) string {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.String()
	}
	return err.Error()
}

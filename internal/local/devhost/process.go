package devhost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Environment variables the host gives the handler (HttpWorkerConstants).
const (
	EnvCustomHandlerPort     = "FUNCTIONS_CUSTOMHANDLER_PORT"
	EnvCustomHandlerWorkerID = "FUNCTIONS_CUSTOMHANDLER_WORKER_ID"
	EnvHTTPWorkerPort        = "FUNCTIONS_HTTPWORKER_PORT"
	EnvHTTPWorkerID          = "FUNCTIONS_HTTPWORKER_ID"
	EnvAppRootPath           = "FUNCTIONS_APP_ROOT_PATH"
)

// process is one run of the handler.
type process struct {
	cmd      *exec.Cmd
	argv     []string
	port     int
	workerID string
	done     chan struct{} // closed when the process has exited
	exitErr  error
	expected atomic.Bool    // devhost stopped it (Kill, Restart, Close): not a crash
	ready    atomic.Bool    // answered the readiness probe
	output   sync.WaitGroup // stdout/stderr forwarders
}

// command returns the argv and working directory the host would use.
func (h *Host) command() ([]string, string, error) {
	wd := h.def.Root
	if d := h.def.Host.WorkingDirectory; d != "" {
		if filepath.IsAbs(d) {
			wd = d
		} else {
			wd = filepath.Join(h.def.Root, d)
		}
	}
	if len(h.opts.Command) > 0 {
		return append([]string(nil), h.opts.Command...), wd, nil
	}
	exe := h.def.Host.Executable
	path := ""
	if filepath.IsAbs(exe) {
		path = exe
	} else {
		// Relative paths resolve against the working directory, then the app root;
		// otherwise the name is a command on PATH.
		for _, dir := range []string{wd, h.def.Root} {
			if st, err := os.Stat(filepath.Join(dir, exe)); err == nil && !st.IsDir() {
				path = filepath.Join(dir, exe)
				break
			}
		}
		if path == "" {
			p, err := exec.LookPath(exe)
			if err != nil {
				return nil, "", fmt.Errorf("devhost: host.json customHandler.description.defaultExecutablePath %q: not in %s, %s or on PATH (build it, or pass Options.Command)", exe, wd, h.def.Root)
			}
			path = p
		}
	}
	argv := []string{path}
	if p := h.def.Host.DefaultWorkerPath; p != "" {
		argv = append(argv, p)
	}
	return append(argv, h.def.Host.Arguments...), wd, nil
}

// environ builds the handler's environment: this process's, then the app settings,
// then the host's own variables (which win, as in Azure).
func (h *Host) environ(port int, workerID string) []string {
	env := os.Environ()
	for _, k := range sortedSettingNames(h.settings) {
		env = append(env, k+"="+h.settings[k])
	}
	p := strconv.Itoa(port)
	env = append(env,
		EnvCustomHandlerPort+"="+p,
		EnvCustomHandlerWorkerID+"="+workerID,
		EnvHTTPWorkerPort+"="+p,
		EnvHTTPWorkerID+"="+workerID,
		EnvAppRootPath+"="+h.def.Root,
	)
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER"} {
		if v, ok := h.identity[k]; ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func sortedSettingNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// freePort asks the kernel for an unused loopback port, as WorkerUtilities.
// GetUnusedTcpPort does (and with the same small race: the port is free when asked).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// errExitedEarly marks a handler that exited before it listened.
var errExitedEarly = errors.New("exited before it listened")

// startAttempts bounds how often startProcess starts a handler that exits before it
// listens. The host restarts a worker that dies at start-up too, and a fresh port also
// covers the race freePort leaves open: another process may take the port between
// the kernel naming it and the handler binding it.
const startAttempts = 3

// startProcess starts the group's handler and waits for readiness.
func (w *worker) startProcess(ctx context.Context) error {
	var err error
	for range startAttempts {
		if err = w.startOnce(ctx); !errors.Is(err, errExitedEarly) {
			return err
		}
		w.log.Warn("devhost: handler exited before it listened; starting it again on a fresh port", "error", err)
	}
	return err
}

// startOnce starts the group's handler on a fresh port and waits for readiness.
func (w *worker) startOnce(ctx context.Context) error {
	h := w.h
	argv, wd, err := h.command()
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("devhost: pick a port for the handler: %w", err)
	}
	p := &process{argv: argv, port: port, workerID: uuid.NewString(), done: make(chan struct{})}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = wd
	cmd.Env = h.environ(port, p.workerID)
	ownProcessGroup(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("devhost: start %s: %w", argv[0], err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("devhost: start %s: %w", argv[0], err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("devhost: start %s: %w", quoteArgv(argv), err)
	}
	p.cmd = cmd
	log := w.log.With("pid", cmd.Process.Pid)
	p.output.Add(2)
	go h.forward(&p.output, stdout, log, "stdout")
	go h.forward(&p.output, stderr, log, "stderr")
	go func() {
		p.output.Wait() // Wait closes the pipes; let the forwarders drain them first
		p.exitErr = cmd.Wait()
		log.Info("devhost: handler exited", "status", exitStatus(p.exitErr))
		w.handlerDown(p) // before done: whoever sees done sees the gate closed
		close(p.done)
	}()
	w.procMu.Lock()
	w.proc = p
	w.procMu.Unlock()
	start := time.Now()
	if err := h.waitReady(ctx, p); err != nil {
		_ = p.kill()
		return err
	}
	log.Info("devhost: handler ready", "port", port, "after", time.Since(start).Round(time.Millisecond))
	w.handlerUp(p)
	if h.opts.RestartOnExit {
		go w.supervise(p)
	}
	return nil
}

// handlerUp opens the gate the group's triggers wait at: p is ready.
func (w *worker) handlerUp(p *process) {
	w.procMu.Lock()
	defer w.procMu.Unlock()
	if w.proc != p {
		return
	}
	p.ready.Store(true)
	select {
	case <-w.ready:
	default:
		close(w.ready)
	}
}

// handlerDown closes the gate when the group's current handler exits: like the host,
// which stops its listeners while the worker restarts, devhost pulls no Service Bus
// message and fires no timer without a handler (each would fail and, for messages,
// count against MaxDeliveryCount).
func (w *worker) handlerDown(p *process) {
	w.procMu.Lock()
	defer w.procMu.Unlock()
	if w.proc != p {
		return
	}
	select {
	case <-w.ready:
		w.ready = make(chan struct{})
	default:
	}
}

// waitHandler returns when the group's handler is ready, or ctx's error.
func (w *worker) waitHandler(ctx context.Context) error {
	w.procMu.Lock()
	ready := w.ready
	w.procMu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// supervise restarts the group's handler when it exits on its own, as the host
// restarts a crashed worker: after 1 s, doubling up to 30 s while starts keep failing.
func (w *worker) supervise(p *process) {
	h := w.h
	<-p.done
	if p.expected.Load() || h.ctx.Err() != nil {
		return
	}
	w.log.Warn("devhost: handler exited unexpectedly; restarting", "status", exitStatus(p.exitErr))
	backoff := time.Second
	for {
		t := time.NewTimer(backoff)
		select {
		case <-h.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		w.lifecycle.Lock()
		if h.ctx.Err() != nil || w.current() != p {
			w.lifecycle.Unlock()
			return // closed, or restarted by someone else
		}
		err := w.startProcess(h.ctx)
		if err != nil {
			p = w.current() // the failed attempt is the one to replace next
		}
		w.lifecycle.Unlock()
		if err == nil {
			w.restarts.Add(1)
			return
		}
		w.log.Error("devhost: restart handler", "err", err)
		backoff = min(2*backoff, 30*time.Second)
	}
}

// forward copies the handler's output lines to the log.
func (h *Host) forward(wg *sync.WaitGroup, r io.Reader, log interface {
	Info(string, ...any)
}, stream string) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		log.Info("handler: "+sc.Text(), "stream", stream)
	}
	_, _ = io.Copy(io.Discard, r) // a line over 1 MiB: drop the rest rather than block the child
}

// waitReady polls GET / every 25 ms until the handler answers anything, the process
// exits, or ReadyTimeout passes.
func (h *Host) waitReady(ctx context.Context, p *process) error {
	deadline := time.NewTimer(h.opts.ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	url := fmt.Sprintf("http://127.0.0.1:%d/", p.port)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := probe.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		select {
		case <-tick.C:
		case <-p.done:
			return fmt.Errorf("devhost: handler %s %w on port %d: %s", quoteArgv(p.argv), errExitedEarly, p.port, exitStatus(p.exitErr))
		case <-deadline.C:
			return fmt.Errorf("devhost: handler %s did not answer GET / on 127.0.0.1:%d within %s", quoteArgv(p.argv), p.port, h.opts.ReadyTimeout)
		case <-ctx.Done():
			return fmt.Errorf("devhost: waiting for handler %s: %w", quoteArgv(p.argv), ctx.Err())
		}
	}
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// kill sends SIGKILL to the handler's process group and waits for it to exit.
func (p *process) kill() error {
	p.expected.Store(true)
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := killGroup(p.cmd.Process); err != nil {
		return fmt.Errorf("devhost: kill handler: %w", err)
	}
	<-p.done
	return nil
}

// stop sends SIGTERM, waits up to grace, then kills.
func (p *process) stop(grace time.Duration) error {
	p.expected.Store(true)
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := terminate(p.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return p.kill()
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		// The group may hold children the handler left behind.
		_ = killGroup(p.cmd.Process)
		return nil
	case <-t.C:
		return p.kill()
	}
}

func (w *worker) current() *process {
	w.procMu.Lock()
	defer w.procMu.Unlock()
	return w.proc
}

// Kill kills every handler process at once (SIGKILL), the way a crash would.
// Invocations fail (Service Bus messages are abandoned, HTTP callers get 500) until
// Restart; a deliberate Kill is not restarted by Options.RestartOnExit.
func (h *Host) Kill() error {
	var errs []error
	for _, w := range h.workers {
		p := w.current()
		if p == nil {
			errs = append(errs, fmt.Errorf("devhost: group %s: no handler process", w.group))
			continue
		}
		errs = append(errs, p.kill())
	}
	return errors.Join(errs...)
}

// Restart stops every handler (SIGTERM, then SIGKILL after StopTimeout) still
// running, starts new ones on new ports and waits until they are ready.
func (h *Host) Restart(ctx context.Context) error {
	if h.ctx.Err() != nil {
		return errors.New("devhost: restart: host is closed")
	}
	return h.eachWorker(func(w *worker) error {
		w.lifecycle.Lock()
		defer w.lifecycle.Unlock()
		if p := w.current(); p != nil {
			if err := p.stop(h.opts.StopTimeout); err != nil {
				return err
			}
		}
		return w.startProcess(ctx)
	})
}

// Restarts counts the automatic restarts after unexpected exits (Options.RestartOnExit),
// over every group.
func (h *Host) Restarts() int {
	n := 0
	for _, w := range h.workers {
		n += int(w.restarts.Load())
	}
	return n
}

// HandlerPID is the process id of the first group's running handler (the HTTP
// group's when there is one; with OneProcess, the handler): 0 if none. HandlerPIDs
// lists every group's.
func (h *Host) HandlerPID() int {
	if p := h.workers[0].current(); p != nil && p.cmd != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// HandlerPIDs returns each scale group's running handler process id.
func (h *Host) HandlerPIDs() map[string]int {
	out := map[string]int{}
	for _, w := range h.workers {
		if p := w.current(); p != nil && p.cmd != nil {
			out[w.group] = p.cmd.Process.Pid
		}
	}
	return out
}

// HandlerPort is the port the first group's handler was told to listen on (0 if
// none); HandlerPortOf names the function.
func (h *Host) HandlerPort() int {
	if p := h.workers[0].current(); p != nil {
		return p.port
	}
	return 0
}

// HandlerPortOf is the port of the handler process that runs function (0 if none).
func (h *Host) HandlerPortOf(function string) int {
	w, ok := h.byFunction[strings.ToLower(function)]
	if !ok {
		return 0
	}
	if p := w.current(); p != nil {
		return p.port
	}
	return 0
}

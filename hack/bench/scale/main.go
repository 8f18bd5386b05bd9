// Command scale measures the operator with N DistillationJobs created at once on the simulated (KWOK)
// cluster of hack/kwok, every stage simulated to succeed: how long until every annotation Job exists and
// until every job Succeeded (and every StudentModel is Ready), the operator's peak RSS and CPU seconds, its
// API requests per job, and the writes of settled jobs over a quiet window (a hot loop shows there).
//
//	go run ./hack/bench/scale -n 1000        (hack/bench/scale/run.sh runs N=100 and 1000 on fresh clusters)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
	"github.com/distillery-dev/distillery/test/sim/simenv"
)

func main() {
	n := flag.Int("n", 100, "DistillationJobs to create at once")
	ns := flag.String("namespace", "bench", "namespace of the jobs")
	settle := flag.Duration("settle", 30*time.Second, "quiet window after every job settled, to count writes")
	timeout := flag.Duration("timeout", 15*time.Minute, "give up after this long")
	shards := flag.Int("shards", 1, "annotation shards per job")
	gpus := flag.Int("gpus", 1, "GPUs per training worker")
	header := flag.Bool("header", true, "print the table header")
	concurrency := flag.Int("concurrency", 0, "the operator's --concurrency (0: its default)")
	flag.Parse()
	var opArgs []string
	if *concurrency > 0 {
		opArgs = append(opArgs, fmt.Sprintf("--concurrency=%d", *concurrency))
	}
	if err := run(*n, *ns, *settle, *timeout, int32(*shards), int32(*gpus), *header, opArgs); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type result struct {
	n                                  int
	firstStage, succeeded, modelsReady time.Duration
	peakRSS                            int64
	cpu                                float64
	opRequests, opWrites               float64
	reconciles                         float64
	apiRequests                        float64
	settledOpWrites, settledAPIWrites  float64
	settledReconciles                  float64
	settleWindow                       time.Duration
}

func run(n int, ns string, settle, timeout time.Duration, shards, gpus int32, header bool, opArgs []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	env, err := simenv.Start(ctx, os.Stderr)
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop(os.Stderr) }()
	if err := env.Namespace(ctx, ns); err != nil {
		return err
	}
	op, err := env.StartOperator(ctx, opArgs...)
	if err != nil {
		return err
	}
	logf("operator pid %d, metrics %s, log %s", op.Pid(), op.MetricsAddr, op.LogPath)
	api0, err := env.ScrapeAPIServer(ctx)
	if err != nil {
		return err
	}
	op0, err := op.Scrape()
	if err != nil {
		return err
	}

	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: simenv.Scheme()})
	if err != nil {
		return err
	}
	tr := newTracker(n)
	go tr.watchJobs(ctx, wc, ns)
	go tr.watchStages(ctx, wc, ns)
	go tr.watchModels(ctx, wc, ns)

	start := time.Now()
	var created atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				dj := utiltesting.MakeJob(fmt.Sprintf("bench-%04d", i), ns).Shards(shards).GPUs(gpus).
					ExistingClaim(simenv.WorkspaceClaim).Obj()
				dj.Spec.Training.Workers = 1
				if err := env.Client.Create(ctx, dj); err != nil {
					errs <- err
					return
				}
				created.Add(1)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("creating jobs: %w", err)
	}
	logf("created %d jobs in %s", created.Load(), time.Since(start).Round(time.Millisecond))

	res := result{n: n, settleWindow: settle}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for res.firstStage == 0 || res.succeeded == 0 || res.modelsReady == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out: %s", tr.summary())
		case <-tick.C:
			logf("%s: %s", time.Since(start).Round(time.Second), tr.summary())
		case <-tr.changed:
		}
		s, j, m := tr.counts()
		if res.firstStage == 0 && s >= n {
			res.firstStage = time.Since(start)
		}
		if res.succeeded == 0 && j >= n {
			res.succeeded = time.Since(start)
		}
		if res.modelsReady == 0 && m >= n {
			res.modelsReady = time.Since(start)
		}
		if f := tr.failed(); f != "" {
			return fmt.Errorf("a job failed: %s", f)
		}
	}
	logf("all %d jobs succeeded and their models are Ready; settling for %s", n, settle)
	time.Sleep(5 * time.Second) // the last status writes of the last jobs
	opA, err := op.Scrape()
	if err != nil {
		return err
	}
	apiA, err := env.ScrapeAPIServer(ctx)
	if err != nil {
		return err
	}
	time.Sleep(settle)
	opB, err := op.Scrape()
	if err != nil {
		return err
	}
	apiB, err := env.ScrapeAPIServer(ctx)
	if err != nil {
		return err
	}
	st, err := simenv.ReadProcStats(op.Pid())
	if err != nil {
		return err
	}
	res.peakRSS, res.cpu = st.PeakRSSBytes, st.CPUSeconds
	rest := "rest_client_requests_total"
	res.opRequests = opA.Sum(rest, nil) - op0.Sum(rest, nil)
	res.opWrites = opA.Sum(rest, simenv.IsWrite) - op0.Sum(rest, simenv.IsWrite)
	rec := "controller_runtime_reconcile_total"
	res.reconciles = opA.Sum(rec, nil) - op0.Sum(rec, nil)
	areq := "apiserver_request_total"
	res.apiRequests = apiA.Sum(areq, nil) - api0.Sum(areq, nil)
	res.settledOpWrites = opB.Sum(rest, simenv.IsWrite) - opA.Sum(rest, simenv.IsWrite)
	res.settledReconciles = opB.Sum(rec, nil) - opA.Sum(rec, nil)
	res.settledAPIWrites = apiB.Sum(areq, simenv.IsWrite) - apiA.Sum(areq, simenv.IsWrite)
	avg := func(m simenv.Metrics, name string) float64 {
		keep := func(l map[string]string) bool { return l["controller"] == "distillationjob" }
		c := m.Sum(name+"_count", keep) - op0.Sum(name+"_count", keep)
		if c == 0 {
			return 0
		}
		return (m.Sum(name+"_sum", keep) - op0.Sum(name+"_sum", keep)) / c
	}
	logf("distillationjob: %.0f reconciles, %.3f s each on average, %.3f s average wait in the queue",
		opA.Sum(rec, func(l map[string]string) bool { return l["controller"] == "distillationjob" }),
		avg(opA, "controller_runtime_reconcile_time_seconds"), avg(opA, "workqueue_queue_duration_seconds"))
	res.print(header)
	return nil
}

func (r result) print(header bool) {
	if header {
		fmt.Println("| N | all annotation Jobs exist | all jobs Succeeded | all models Ready | operator peak RSS | operator CPU | operator requests/job (writes) | reconciles/job | apiserver requests/job | settled " + r.settleWindow.String() + ": operator writes, reconciles, apiserver writes |")
		fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	}
	per := func(v float64) string { return fmt.Sprintf("%.1f", v/float64(r.n)) }
	fmt.Printf("| %d | %.1f s | %.1f s | %.1f s | %.0f MiB | %.1f s | %s (%s) | %s | %s | %.0f, %.0f, %.0f |\n",
		r.n, r.firstStage.Seconds(), r.succeeded.Seconds(), r.modelsReady.Seconds(), float64(r.peakRSS)/(1<<20), r.cpu,
		per(r.opRequests), per(r.opWrites), per(r.reconciles), per(r.apiRequests),
		r.settledOpWrites, r.settledReconciles, r.settledAPIWrites)
}

// tracker follows, by watch, which jobs have an annotation Job, which Succeeded and which models are Ready.
type tracker struct {
	mu                         sync.Mutex
	n                          int
	stage, done, ready, stages map[string]bool
	failedMsg                  string
	changed                    chan struct{}
}

func newTracker(n int) *tracker {
	return &tracker{n: n, stage: map[string]bool{}, done: map[string]bool{}, ready: map[string]bool{},
		changed: make(chan struct{}, 1)}
}

func (t *tracker) counts() (int, int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.stage), len(t.done), len(t.ready)
}

func (t *tracker) failed() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failedMsg
}

func (t *tracker) summary() string {
	s, j, m := t.counts()
	return fmt.Sprintf("%d/%d annotation Jobs, %d/%d Succeeded, %d/%d models Ready", s, t.n, j, t.n, m, t.n)
}

func (t *tracker) set(m map[string]bool, key string) {
	t.mu.Lock()
	if !m[key] {
		m[key] = true
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
	t.mu.Unlock()
}

func (t *tracker) watchStages(ctx context.Context, c client.WithWatch, ns string) {
	watchLoop(ctx, c, &batchv1.JobList{}, ns, client.MatchingLabels{"distillery.dev/stage": "annotate"}, func(o client.Object) {
		t.set(t.stage, o.GetLabels()["distillery.dev/job"])
	})
}

func (t *tracker) watchJobs(ctx context.Context, c client.WithWatch, ns string) {
	watchLoop(ctx, c, &v1alpha1.DistillationJobList{}, ns, nil, func(o client.Object) {
		dj := o.(*v1alpha1.DistillationJob)
		if dj.Status.Stage != "" && dj.Status.Stage != v1alpha1.StagePending {
			// Past Pending means the operator saw its annotation Job: count it even if the Job's own
			// watch event has not reached this process yet.
			t.set(t.stage, dj.Name)
		}
		switch dj.Status.Stage {
		case v1alpha1.StageSucceeded:
			t.set(t.done, dj.Name)
		case v1alpha1.StageFailed:
			t.mu.Lock()
			if c := meta.FindStatusCondition(dj.Status.Conditions, string(v1alpha1.ConditionFailed)); c != nil {
				t.failedMsg = dj.Name + ": " + c.Reason + ": " + c.Message
			}
			t.mu.Unlock()
			t.set(t.done, "") // wake the main loop
		}
	})
}

func (t *tracker) watchModels(ctx context.Context, c client.WithWatch, ns string) {
	watchLoop(ctx, c, &v1alpha1.StudentModelList{}, ns, nil, func(o client.Object) {
		sm := o.(*v1alpha1.StudentModel)
		if meta.IsStatusConditionTrue(sm.Status.Conditions, string(v1alpha1.ConditionReady)) {
			t.set(t.ready, sm.Name)
		}
	})
}

// watchLoop lists then watches list's kind in ns, calling f for every object seen, re-listing when the
// watch ends, until ctx is done.
func watchLoop(ctx context.Context, wc client.WithWatch, list client.ObjectList, ns string, labels client.MatchingLabels, f func(client.Object)) {
	opts := []client.ListOption{client.InNamespace(ns)}
	if labels != nil {
		opts = append(opts, labels)
	}
	for ctx.Err() == nil {
		l := list.DeepCopyObject().(client.ObjectList)
		if err := wc.List(ctx, l, opts...); err != nil {
			time.Sleep(time.Second)
			continue
		}
		items, _ := meta.ExtractList(l)
		for _, it := range items {
			f(it.(client.Object))
		}
		w, err := wc.Watch(ctx, list.DeepCopyObject().(client.ObjectList),
			append(opts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: l.GetResourceVersion(), TimeoutSeconds: ptr.To[int64](300)}})...)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				f(ev.Object.(client.Object))
			}
		}
		w.Stop()
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), strings.TrimSpace(fmt.Sprintf(format, args...)))
}

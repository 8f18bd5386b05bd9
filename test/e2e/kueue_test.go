//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// The real Kueue (hack/kueue/install.sh, which `make test-e2e` runs) queues the stage Jobs of labelled
// DistillationJobs. The tests run in their own namespace, the only one where Kueue's Job webhooks act
// (label distillery.dev/kueue=enabled), with a copy of the demo's base-model volume.

const (
	kueueNS     = "e2e-kueue"
	kueueQueue  = "e2e-queue"
	kueueHighPC = "e2e-high"
	kueueHighV  = 1000
)

// kueueFixtures: the namespace, the base-model claim, and a ClusterQueue whose CPU quota (100m) admits one
// stage pod at a time, a LocalQueue for it, and a WorkloadPriorityClass.
func kueueFixtures(modelsPath string) string {
	return fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata: {name: %[1]s, labels: {distillery.dev/kueue: enabled}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: %[1]s-models}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadOnlyMany, ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {namespace: %[1]s, name: distillery-models}
  hostPath: {path: %[2]s, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: distillery-models, namespace: %[1]s}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  volumeName: %[1]s-models
  resources: {requests: {storage: 5Gi}}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: e2e-default}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {name: e2e-one-stage}
spec:
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %[1]s}}
  resourceGroups:
  - coveredResources: [cpu, memory]
    flavors:
    - name: e2e-default
      resources:
      - {name: cpu, nominalQuota: 100m}
      - {name: memory, nominalQuota: 4Gi}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {name: %[3]s, namespace: %[1]s}
spec: {clusterQueue: e2e-one-stage}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: WorkloadPriorityClass
metadata: {name: %[4]s}
value: %[5]d
`, kueueNS, modelsPath, kueueQueue, kueueHighPC, kueueHighV)
}

// queuedJob is an e2e job labelled for the queue, whose stage pods each ask for the queue's whole CPU quota.
func queuedJob(t *testing.T, j jobSpec, extraLabels string) string {
	t.Helper()
	y := j.yaml()
	for old, repl := range map[string]string{
		fmt.Sprintf("e2e-job: %s}", j.name): fmt.Sprintf("e2e-job: %s, kueue.x-k8s.io/queue-name: %s%s}", j.name, kueueQueue, extraLabels),
		"cpu: 50m":                          "cpu: 100m",
	} {
		if !strings.Contains(y, old) {
			t.Fatalf("the e2e job template has no %q", old)
		}
		y = strings.Replace(y, old, repl, 1)
	}
	return y
}

// kueueObjects is what the tests read of the namespace: stage Jobs, their Workloads, running pods.
type kueueObjects struct {
	jobs map[string]stageJob
	// workloads by the name of the Job that controls them
	workloads map[string]workload
	running   []string // pods Running and not being deleted
}

type stageJob struct {
	suspend    bool
	generation int64
	finished   bool
}

type workload struct {
	active   bool
	admitted bool
	priority *int32
	pcName   string
}

func readKueueObjects(t *testing.T) (kueueObjects, error) {
	o := kueueObjects{jobs: map[string]stageJob{}, workloads: map[string]workload{}}
	var jobs struct {
		Items []struct {
			Metadata struct {
				Name       string
				Generation int64
			}
			Spec   struct{ Suspend *bool }
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
	}
	out, err := kubectl("-n", kueueNS, "get", "jobs", "-o", "json")
	if err != nil {
		return o, err
	}
	if err := json.Unmarshal([]byte(out), &jobs); err != nil {
		return o, err
	}
	for _, j := range jobs.Items {
		sj := stageJob{suspend: j.Spec.Suspend != nil && *j.Spec.Suspend, generation: j.Metadata.Generation}
		for _, c := range j.Status.Conditions {
			switch c.Type {
			case "Complete", "Failed", "SuccessCriteriaMet", "FailureTarget":
				sj.finished = sj.finished || c.Status == "True"
			}
		}
		o.jobs[j.Metadata.Name] = sj
	}
	var wls struct {
		Items []struct {
			Metadata struct {
				OwnerReferences []struct{ Kind, Name string }
			}
			Spec struct {
				Active           *bool
				Priority         *int32
				PriorityClassRef *struct{ Name string }
			}
			Status struct{ Admission *json.RawMessage }
		}
	}
	if out, err = kubectl("-n", kueueNS, "get", "workloads.kueue.x-k8s.io", "-o", "json"); err != nil {
		return o, err
	}
	if err := json.Unmarshal([]byte(out), &wls); err != nil {
		return o, err
	}
	for _, w := range wls.Items {
		for _, ref := range w.Metadata.OwnerReferences {
			if ref.Kind == "Job" {
				wl := workload{active: w.Spec.Active == nil || *w.Spec.Active, admitted: w.Status.Admission != nil, priority: w.Spec.Priority}
				if w.Spec.PriorityClassRef != nil {
					wl.pcName = w.Spec.PriorityClassRef.Name
				}
				o.workloads[ref.Name] = wl
			}
		}
	}
	var pods struct {
		Items []struct {
			Metadata struct {
				Name              string
				DeletionTimestamp *string
			}
			Status struct{ Phase string }
		}
	}
	if out, err = kubectl("-n", kueueNS, "get", "pods", "-o", "json"); err != nil {
		return o, err
	}
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		return o, err
	}
	for _, p := range pods.Items {
		if p.Status.Phase == "Running" && p.Metadata.DeletionTimestamp == nil {
			o.running = append(o.running, p.Metadata.Name)
		}
	}
	return o, nil
}

// eventCount sums the count of the events with reason about one object in the Kueue namespace.
func eventCount(t *testing.T, kind, name, reason string) int {
	t.Helper()
	var evs struct {
		Items []struct {
			Reason string
			Count  int
			Series *struct{ Count int }
		}
	}
	getJSON(t, &evs, "-n", kueueNS, "events", "--field-selector", "involvedObject.kind="+kind+",involvedObject.name="+name)
	n := 0
	for _, e := range evs.Items {
		if e.Reason == reason {
			n += max(e.Count, 1)
			if e.Series != nil {
				n = max(n, e.Series.Count)
			}
		}
	}
	return n
}

// TestKueueQueuesStagesAndSuspendsWithoutAFight runs two queued jobs through a ClusterQueue that admits one
// stage pod at a time, suspends the admitted one, and resumes it.
func TestKueueQueuesStagesAndSuspendsWithoutAFight(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	models := jsonpath(t, "pv", "dev-models", ".spec.hostPath.path")
	if models == "" {
		t.Fatal("the dev cluster's base-model volume dev-models is missing")
	}
	if _, err := kubectlIn(kueueFixtures(models), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	// A: slow teacher, one request at a time (60 x 400ms), so its annotation runs long enough to suspend.
	a := jobSpec{name: "kq-slow", teacher: "teacher-slow", inputs: 60, concurrency: 1, shards: 1, maxSteps: 10}
	b := jobSpec{name: "kq-high", teacher: "demo-teacher", inputs: 20, shards: 1, maxSteps: 10, concurrency: 8}
	for _, j := range []jobSpec{a, b} {
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := kubectl("-n", kueueNS, "get", "dj,jobs,workloads.kueue.x-k8s.io,pods", "-o", "wide")
				desc, _ := kubectl("-n", kueueNS, "describe", "dj", j.name)
				t.Logf("state at failure:\n%s\n%s", out, desc)
			}
			_, _ = kubectl("-n", kueueNS, "delete", "dj", j.name, "--ignore-not-found", "--wait=false")
			_, _ = kubectl("-n", kueueNS, "delete", "configmap", j.name+"-data", "--ignore-not-found", "--wait=false")
		})
	}

	// The quota holds throughout: never two stage Jobs admitted nor two stage pods running at once.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var overQuota []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if o, err := readKueueObjects(t); err == nil {
				var admitted []string
				for name, j := range o.jobs {
					if !j.suspend && !j.finished {
						admitted = append(admitted, name)
					}
				}
				if len(admitted) > 1 || len(o.running) > 1 {
					mu.Lock()
					overQuota = append(overQuota, fmt.Sprintf("%s: running Jobs %v, pods %v", time.Now().Format(time.TimeOnly), admitted, o.running))
					mu.Unlock()
				}
			}
			time.Sleep(time.Second)
		}
	}()
	t.Cleanup(func() {
		stop()
		wg.Wait()
		if len(overQuota) > 0 {
			t.Errorf("the ClusterQueue's quota (one stage pod) was exceeded:\n%s", strings.Join(overQuota, "\n"))
		}
	})

	applyIn := func(y string) {
		t.Helper()
		if _, err := kubectlIn(y, "-n", kueueNS, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	aAnnotate, bAnnotate := a.name+"-annotate", b.name+"-annotate"
	applyIn(datasetConfigMap(a.name, a.inputs))
	applyIn(queuedJob(t, a, ""))
	eventually(t, minutes(3), "Kueue to admit "+aAnnotate, func() string {
		o, err := readKueueObjects(t)
		if err != nil {
			return err.Error()
		}
		if j, ok := o.jobs[aAnnotate]; !ok || j.suspend || !o.workloads[aAnnotate].admitted || len(o.running) != 1 {
			return fmt.Sprintf("job %+v, workload %+v, running pods %v", o.jobs[aAnnotate], o.workloads[aAnnotate], o.running)
		}
		return ""
	})
	t.Logf("%s admitted and running after %s", aAnnotate, time.Since(t0).Round(time.Second))

	// B arrives while A holds the quota: its stage Job waits, suspended, for admission.
	applyIn(datasetConfigMap(b.name, b.inputs))
	applyIn(queuedJob(t, b, ", kueue.x-k8s.io/priority-class: "+kueueHighPC))
	eventually(t, minutes(1), bAnnotate+" queued behind "+aAnnotate, func() string {
		o, err := readKueueObjects(t)
		if err != nil {
			return err.Error()
		}
		w, ok := o.workloads[bAnnotate]
		if !ok || !o.jobs[bAnnotate].suspend || w.admitted {
			return fmt.Sprintf("job %+v, workload %+v (present %v)", o.jobs[bAnnotate], w, ok)
		}
		if r := jsonpathIn(t, "dj", b.name, `.status.conditions[?(@.type=="Annotated")].reason`); r != "Queued" {
			return fmt.Sprintf("%s Annotated reason %q, want Queued", b.name, r)
		}
		// The priority-class label reached Kueue through the stage Job.
		if w.pcName != kueueHighPC || w.priority == nil || *w.priority != kueueHighV {
			return fmt.Sprintf("workload priority class %q, priority %v; want %s = %d", w.pcName, w.priority, kueueHighPC, kueueHighV)
		}
		return ""
	})
	if s := jsonpathIn(t, "dj", a.name, ".status.stage"); s != "Annotating" {
		t.Fatalf("%s finished annotating before it could be suspended (stage %s): the test needs a slower annotation", a.name, s)
	}

	// Suspend the admitted A: its Workload is deactivated, Kueue suspends its Job and admits B.
	mustKubectl(t, "-n", kueueNS, "patch", "dj", a.name, "--type=merge", "-p", `{"spec":{"suspend":true}}`)
	var suspendedGen int64
	eventually(t, minutes(1), aAnnotate+" suspended through its Workload, and "+bAnnotate+" admitted", func() string {
		o, err := readKueueObjects(t)
		if err != nil {
			return err.Error()
		}
		ja, wa, jb := o.jobs[aAnnotate], o.workloads[aAnnotate], o.jobs[bAnnotate]
		if !ja.suspend || wa.active || jb.suspend {
			return fmt.Sprintf("%s %+v, its workload %+v; %s %+v", aAnnotate, ja, wa, bAnnotate, jb)
		}
		suspendedGen = ja.generation
		return ""
	})
	if s := jsonpathIn(t, "dj", a.name, ".status.stage"); s != "Suspended" {
		t.Errorf("%s stage = %q, want Suspended", a.name, s)
	}
	// No fight: over 10 s the Job stays suspended at the same generation, Kueue starts it no more, and
	// the operator reports the suspension once.
	started := eventCount(t, "Job", aAnnotate, "Started")
	suspendedEvents := eventCount(t, "DistillationJob", a.name, "Suspended")
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		o, err := readKueueObjects(t)
		if err != nil {
			t.Fatal(err)
		}
		if j := o.jobs[aAnnotate]; !j.suspend || j.generation != suspendedGen || o.workloads[aAnnotate].active {
			t.Fatalf("%s flapped: job %+v (generation when suspended %d), workload %+v", aAnnotate, j, suspendedGen, o.workloads[aAnnotate])
		}
	}
	if n := eventCount(t, "Job", aAnnotate, "Started"); n != started {
		t.Errorf("Kueue started the suspended %s again: %d Started events, %d before", aAnnotate, n, started)
	}
	if n := eventCount(t, "DistillationJob", a.name, "Suspended"); n != suspendedEvents || n != 1 {
		t.Errorf("the operator emitted %d Suspended events (%d before the wait), want exactly 1", n, suspendedEvents)
	}

	// Resume A: its Workload is queued again and admitted when B's stage frees the quota; both finish.
	mustKubectl(t, "-n", kueueNS, "patch", "dj", a.name, "--type=merge", "-p", `{"spec":{"suspend":false}}`)
	for _, j := range []string{a.name, b.name} {
		eventually(t, minutes(12), j+" to succeed", func() string {
			s := jsonpathIn(t, "dj", j, ".status.stage")
			if s == "Failed" {
				t.Fatalf("%s failed: %s", j, jsonpathIn(t, "dj", j, `.status.conditions[?(@.type=="Failed")].message`))
			}
			if s != "Succeeded" {
				return "stage " + s
			}
			return ""
		})
	}
	o, err := readKueueObjects(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{aAnnotate, a.name + "-train", bAnnotate, b.name + "-train"} {
		if _, ok := o.workloads[name]; !ok {
			t.Errorf("stage Job %s ran without a Kueue Workload", name)
		}
	}
	t.Logf("both queued jobs succeeded after %s", time.Since(t0).Round(time.Second))
}

// jsonpathIn reads one field of an object in the Kueue namespace.
func jsonpathIn(t *testing.T, kind, name, path string) string {
	t.Helper()
	out, _ := kubectl("-n", kueueNS, "get", kind, name, "-o", "jsonpath={"+path+"}")
	return strings.TrimSpace(out)
}

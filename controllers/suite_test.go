package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The envtest suite: one kube-apiserver + etcd for the package, with the CRDs installed and the real
// manager running both reconcilers. Nothing runs pods: tests write the child Jobs', Pods' and
// Deployments' status themselves, as the Job controller, the kubelet and the Deployment controller would.

// testImages are the operator's image flags in the suite.
var testImages = Config{AnnotatorImage: "annotator:test", TrainerImage: "student:test", PodStartGrace: 2 * time.Second}

var (
	k8sClient client.Client // uncached, for the tests
	// managerClient is the reconcilers' client (reads from the manager's cache), for a test's own reconciler.
	managerClient client.Client
	restConfig    *rest.Config // the envtest apiserver, for raw requests (tables)
	writes        = &writeCounter{byNamespace: map[string]int{}}
	envStart      time.Duration
)

// writeCounter counts the operator's API writes per namespace (the hot-loop test reads it).
type writeCounter struct {
	mu          sync.Mutex
	byNamespace map[string]int
}

func (w *writeCounter) add(ns string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byNamespace[ns]++
}

func (w *writeCounter) count(ns string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byNamespace[ns]
}

// podsNotCached are the namespaces whose pods the reconcilers' cache is made not to hold yet, as a cache
// whose pod watch lags (settle_test.go).
var podsNotCached sync.Map

// countingClient wraps the manager's client so every write the reconcilers make is counted, and pods of
// the namespaces in podsNotCached are left out of what it lists.
func countingClient(c client.WithWatch) client.WithWatch {
	return interceptor.NewClient(c, interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if err := c.List(ctx, list, opts...); err != nil {
				return err
			}
			if pods, ok := list.(*corev1.PodList); ok {
				pods.Items = slices.DeleteFunc(pods.Items, func(p corev1.Pod) bool {
					_, lagging := podsNotCached.Load(p.Namespace)
					return lagging
				})
			}
			return nil
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			writes.add(obj.GetNamespace())
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			writes.add(obj.GetNamespace())
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			writes.add(obj.GetNamespace())
			return c.Patch(ctx, obj, p, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			if o, ok := obj.(interface{ GetNamespace() *string }); ok && o.GetNamespace() != nil {
				writes.add(*o.GetNamespace())
			} else {
				writes.add("")
			}
			return c.Apply(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			writes.add(obj.GetNamespace())
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			writes.add(obj.GetNamespace())
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			writes.add(obj.GetNamespace())
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
	})
}

// noWatch lets the interceptor wrap the manager's client, which reads from the cache and never watches.
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, fmt.Errorf("the manager's client does not watch")
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Getenv("DISTILLERY_TEST_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets, _ = filepath.Abs(filepath.Join("..", "bin", "k8s"))
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	began := time.Now()
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest (KUBEBUILDER_ASSETS=%s): %v\n", assets, err)
		return 1
	}
	envStart, restConfig = time.Since(began), cfg
	fmt.Fprintf(os.Stderr, "envtest started in %s\n", envStart.Round(time.Millisecond))
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
		}
	}()

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "creating test client: %v\n", err)
		return 1
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptions(),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating manager: %v\n", err)
		return 1
	}
	c := countingClient(noWatch{mgr.GetClient()})
	managerClient = c
	if err := (&DistillationJobReconciler{
		Client: c, APIReader: mgr.GetAPIReader(), Config: testImages,
		Recorder: mgr.GetEventRecorderFor("distillationjob-controller"),
	}).SetupWithManager(mgr, 4); err != nil {
		fmt.Fprintf(os.Stderr, "setting up the DistillationJob controller: %v\n", err)
		return 1
	}
	if err := (&StudentModelReconciler{
		Client: c, Config: testImages, Recorder: mgr.GetEventRecorderFor("studentmodel-controller"),
	}).SetupWithManager(mgr, 4); err != nil {
		fmt.Fprintf(os.Stderr, "setting up the StudentModel controller: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		}
	}()
	return m.Run()
}

// kueueWorkloadCRD is Kueue's own Workload CRD, from the Kueue module hack/kueue pins (the Go module
// cache; downloaded once), so the suspend policy is tested against Kueue's real schema. Only the version
// the operator uses (v1beta2) is served, and only the Kueue tests install it (installWorkloadCRD): its
// schema (9,000 lines a version) keeps a 2-core machine's apiserver busy for a while.
func kueueWorkloadCRD() (*apiextensionsv1.CustomResourceDefinition, error) {
	cmd := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/kueue")
	cmd.Dir = filepath.Join("..", "hack", "kueue")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("finding the Kueue module of hack/kueue (go mod download): %v", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return nil, fmt.Errorf("finding the Kueue module of hack/kueue: %q: %v", out, err)
	}
	path := filepath.Join(mod.Dir, "config", "components", "crd", "bases", "kueue.x-k8s.io_workloads.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	var served []apiextensionsv1.CustomResourceDefinitionVersion
	for _, v := range crd.Spec.Versions {
		if v.Name == workloadGVK.Version {
			v.Storage = true
			served = append(served, v)
		}
	}
	if len(served) != 1 {
		return nil, fmt.Errorf("%s has no version %s", path, workloadGVK.Version)
	}
	crd.Spec.Versions = served
	return &crd, nil
}

// newNamespace creates a namespace of its own for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dt-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}
